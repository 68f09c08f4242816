"""``python -m benchmarks``."""

from . import main

raise SystemExit(main())
