"""``python -m vecdb.cli``: the same as the ``vecdb`` console script."""

from . import main

raise SystemExit(main())
