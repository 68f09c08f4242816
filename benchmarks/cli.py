"""Command line: ``python -m benchmarks {run,report,list}`` and ``python -m benchmarks --smoke``.

    python -m benchmarks run --dataset arxiv --engines vecdb,faiss-hnsw,exact --out results/arxiv
    python -m benchmarks report results/arxiv
    python -m benchmarks --smoke --out results/smoke          # bundled slice, small grid, run + report
    python -m benchmarks list                                 # datasets and engines (installed or not)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from . import engines as eng
from .datasets import DataOptions, dataset_names
from .report import report
from .results import command_line
from .runner import PROFILES, RunConfig, run
from .threads import cpu_count

log = logging.getLogger("benchmarks")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=DataOptions().data_dir,
                   help="the shared data folder (default: ../shared/data next to the repository)")
    p.add_argument("--cache-dir", type=Path, default=DataOptions().cache_dir,
                   help="where generated datasets are cached (default: ~/.cache/vecdb-bench)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description="Filtered vector search benchmarks.")
    ap.add_argument("--smoke", action="store_true", help="run the smoke benchmark (bundled slice) and report")
    ap.add_argument("--out", type=Path, default=None, help="results folder for --smoke (default results/smoke)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command")

    r = sub.add_parser("run", help="run a benchmark and store raw results (then report, unless --no-report)")
    r.add_argument("--dataset", required=True,
                   help="comma-separated names: " + ", ".join(dataset_names()) +
                        ", synthetic-<N>[k|m], hdf5:<file>, fvecs:<prefix>")
    r.add_argument("--engines", default="core", help="comma-separated engines or aliases (default: core)")
    r.add_argument("--out", type=Path, required=True, help="results folder (one sub-folder per dataset if several)")
    r.add_argument("--grid", choices=PROFILES, default="full", help="grid profile (default: full)")
    r.add_argument("--k", type=_ints, default=(10, 100), help="k values; the first gets the full grid (default 10,100)")
    r.add_argument("--threads", type=int, default=cpu_count(), help="threads for builds and batches")
    r.add_argument("--queries", type=int, default=None, help="use only the first N queries")
    r.add_argument("--ef", type=_ints, default=None, help="replace the ef values of HNSW grids")
    r.add_argument("--nprobe", type=_ints, default=None, help="replace the nprobe values of IVF grids")
    r.add_argument("--no-batch", action="store_true", help="skip the batch throughput pass")
    r.add_argument("--no-memory", action="store_true",
                   help="skip the resident-memory measurement (each saved build reopened in a fresh process)")
    r.add_argument("--calibrate-sample", action="store_true",
                   help="calibrate vecdb's builds on the dataset's held-out sample queries (Collection.calibrate; "
                        "synthetic datasets have them)")
    r.add_argument("--repeat", type=int, default=1,
                   help="latency passes per run, keeping each query's fastest, and timed calls per band's batch, "
                        "keeping the median (default 1)")
    r.add_argument("--run-timeout", type=float, default=60.0,
                   help="seconds after which a run's latency pass stops starting queries (0: none; default 60)")
    r.add_argument("--no-report", action="store_true", help="store raw results only")
    r.add_argument("--workdir", type=Path, default=None, help="where indexes are built (default: system temp)")
    _data_args(r)

    rep = sub.add_parser("report", help="score stored results; write summary.md, metrics/ and plots/")
    rep.add_argument("paths", type=Path, nargs="+", help="results folder(s), or a folder of results folders")
    rep.add_argument("--out", type=Path, default=None, help="where the combined summary goes (several folders)")
    rep.add_argument("--data-dir", type=Path, default=None, help="override the data folder stored in the results")
    rep.add_argument("--cache-dir", type=Path, default=None, help="override the cache folder stored in the results")

    sub.add_parser("list", help="list datasets and engines")
    mv = sub.add_parser("multivector", help="MUVERA vs exact Chamfer on a multi-vector data set", add_help=False)
    mv.add_argument("rest", nargs=argparse.REMAINDER)
    dist = sub.add_parser("distributed", help="sharded collections (vecdb.distributed, Ray) against one collection",
                          add_help=False)
    dist.add_argument("rest", nargs=argparse.REMAINDER)
    ch = sub.add_parser("changes", help="upsert throughput and compaction against a fresh build", add_help=False)
    ch.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def _run(args: argparse.Namespace, command: str) -> Path:
    names = [n.strip() for n in args.dataset.split(",") if n.strip()]
    overrides = {k: v for k, v in (("ef", args.ef), ("nprobe", args.nprobe)) if v}
    outs = []
    for name in names:
        out = args.out if len(names) == 1 else args.out / name.replace(":", "_").replace("/", "_")
        cfg = RunConfig(dataset=name, engines=tuple(eng.resolve(args.engines)), out=out, profile=args.grid,
                        ks=args.k, threads=args.threads, batch=not args.no_batch, memory=not args.no_memory,
                        overrides=overrides,
                        data=DataOptions(data_dir=args.data_dir, cache_dir=args.cache_dir, max_queries=args.queries),
                        workdir=args.workdir, command=command, run_timeout_s=args.run_timeout or None,
                        repeat=args.repeat, calibrate_sample=args.calibrate_sample)
        outs.append(run(cfg))
    if args.no_report:
        return args.out
    return report([args.out]) if len(names) > 1 else report(outs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks`` (and of ``vecdb bench``); returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["multivector"]:  # its own options: hand them over whole
        from .multivector import main as multivector_main

        return multivector_main(words[1:])
    if words[:1] == ["changes"]:
        from .changes import main as changes_main

        return changes_main(words[1:])
    if words[:1] == ["distributed"]:  # needs the ray extra
        from .distributed import main as distributed_main

        return distributed_main(words[1:])
    args = parser().parse_args(argv)
    # faiss logs every CPU build it tries at import (INFO, with a ModuleNotFoundError line per absent one):
    # shown with --verbose only (vecdb leaves the level alone once it is set: vecdb/indexes/_faiss.py)
    logging.getLogger("faiss.loader").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    command = command_line(argv)
    try:
        if args.smoke:
            t0 = time.perf_counter()
            out = args.out or Path("results/smoke")
            cfg = RunConfig(dataset="arxiv-slice", engines=tuple(eng.resolve("core")), out=out, profile="smoke",
                            threads=min(2, cpu_count()), warmup=3, command=command)
            summary = report([run(cfg)])
            log.info("smoke benchmark done in %.0f s", time.perf_counter() - t0)
        elif args.command == "run":
            summary = _run(args, command)
        elif args.command == "report":
            data = None
            if args.data_dir or args.cache_dir:
                default = DataOptions()
                data = DataOptions(data_dir=args.data_dir or default.data_dir, cache_dir=args.cache_dir or default.cache_dir)
            summary = report(args.paths, args.out, data)
        elif args.command == "list":
            print("datasets:", ", ".join(dataset_names()), "+ synthetic-<N>[k|m], hdf5:<file>, fvecs:<prefix>")
            for name, cls in eng.registry().items():
                state = "installed" if cls.available() else f"needs {', '.join(cls.requires)}"
                print(f"engine {name:<18} family {cls.family:<11} {state}{'; ' + cls.note if cls.note else ''}")
            return 0
        else:
            parser().print_help()
            return 2
    except (ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    print(summary)
    return 0
