"""``vecdb bench``: the benchmark runner (``python -m benchmarks``), from the same console script."""

from __future__ import annotations

import argparse
from typing import Any

from .common import CliError

EPILOG = """examples:
  vecdb bench --smoke --out results/smoke
  vecdb bench run --dataset arxiv --engines core --out results/arxiv
  vecdb bench report results/arxiv
  vecdb bench list
"""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", parents=parents, help="run the benchmark runner (recall / QPS per selectivity band)",
                       description="Run benchmarks/: every argument after 'bench' goes to "
                                   "'python -m benchmarks' ('vecdb bench --help-runner' shows its help).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--help-runner", action="store_true", help="show the benchmark runner's own help")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark runner")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import benchmarks
    except ImportError as exc:  # installed without the benchmarks package
        raise CliError(f"the benchmark runner is not installed ({exc}); run from a source checkout") from None
    return int(benchmarks.main(["--help"] if args.help_runner else list(args.rest)))
