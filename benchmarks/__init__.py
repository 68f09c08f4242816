"""vecdb's benchmark runner: filtered ANN search measured the ann-benchmarks way.

Define (dataset and engine registries, a grid of build x search settings x selectivity bands) ->
run (``benchmarks.runner``) -> store raw ids, scores and timings (``benchmarks.results``) -> score
afterwards (``benchmarks.metrics``) -> summary and plots (``benchmarks.report``, ``benchmarks.plots``).
See ``benchmarks/README.md`` for how to run one and how to read the output.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks ...`` / ``vecdb bench ...``: run, report or list; returns the exit status."""
    from .cli import main as _main

    return _main(argv)


__all__ = ["main"]
