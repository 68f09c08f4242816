"""``faiss``, imported with its loader quiet.

At import, the ``faiss`` package logs at INFO through the ``faiss.loader`` logger every CPU build it
tries, including a ``ModuleNotFoundError`` line for each one that is absent: noise that reads like a
failure in any program whose root logger shows INFO (the benchmark runner's does). That one logger is
set to WARNING here, unless the application already chose its level (``vecdb --debug`` and
``python -m benchmarks --verbose`` set it to DEBUG before importing vecdb); the root logger is untouched.
"""

from __future__ import annotations

import logging

LOADER = "faiss.loader"

_loader = logging.getLogger(LOADER)
if _loader.level == logging.NOTSET:
    _loader.setLevel(logging.WARNING)

import faiss  # noqa: E402  (after the logger's level is set)

__all__ = ["faiss", "LOADER"]
