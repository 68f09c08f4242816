"""The ``vecdb`` console script: ``build``, ``search``, ``info``, ``explain``, ``delete``, ``upsert``,
``compact``, ``calibrate``, ``versions``, ``verify`` and ``bench``, thin over the library.

Every failure the user can cause (a missing file, a bad filter, an unknown column, ...) ends as one line
``vecdb: error: ...`` on stderr and a non-zero exit status (1; 2 for a malformed command line; 130 when
interrupted); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn, Sequence

from . import bench, build, explain, info, maintain, search
from .common import CliError

EPILOG = """examples: from the repository root, on the bundled slice (scratch/ is git-ignored)
  vecdb build --vectors data/arxiv-slice/base.f16.npy --attributes data/arxiv-slice/attributes.parquet --id-column id --out scratch/arxiv.vdb
  vecdb search scratch/arxiv.vdb --row 7 -k 5 --where "year >= 2026" --columns title
  vecdb info scratch/arxiv.vdb
  vecdb delete scratch/arxiv.vdb --where "n_authors > 100"
  vecdb compact scratch/arxiv.vdb
  vecdb calibrate scratch/arxiv.vdb --queries data/arxiv-slice/queries.f32.npy
  vecdb versions scratch/arxiv.vdb
  vecdb verify scratch/arxiv.vdb
  vecdb explain scratch/arxiv.vdb --where "'cs.LG' IN categories"
  vecdb bench --smoke --out results/smoke

'vecdb COMMAND --help' describes each command.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line ``vecdb: error: ...`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"vecdb: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="vecdb", description="Filtered vector search collections from the shell.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vecdb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (build, search, info, explain, maintain, bench):
        module.add_parser(sub, [common])
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.strerror}: {exc.filename!r}"
    return " ".join(text.split())


class _Formatter(logging.Formatter):
    """``vecdb: warning: ...``, in the lower case of the error lines."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.levelname = record.levelname.lower()
        return super().format(record)


_LOGGERS = ("vecdb", "faiss")  # faiss' own logger only with --debug: its loader's INFO lines are noise


def _logging(debug: bool) -> tuple[logging.Handler, dict[str, int]]:
    """Library warnings (e.g. a GPU asked for but absent) as ``vecdb: warning: ...`` on stderr; with
    ``--debug``, vecdb's debug lines and faiss' (``faiss.loader`` is quiet otherwise: ``indexes/_faiss.py``)."""
    from ..indexes._faiss import LOADER, faiss

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("vecdb: %(levelname)s: %(message)s"))
    names = _LOGGERS if debug else _LOGGERS[:1]
    old_levels = {name: logging.getLogger(name).level for name in (*names, LOADER)}
    for name in names:
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("vecdb").setLevel(logging.DEBUG if debug else logging.WARNING)
    if debug:  # faiss was imported with vecdb, before the command line was read: say what it loaded
        logging.getLogger(LOADER).setLevel(logging.DEBUG)
        options = getattr(faiss, "get_compile_options", lambda: "unknown")()
        logging.getLogger("vecdb.cli").debug("faiss %s loaded (compile options: %s)",
                                             getattr(faiss, "__version__", "?"), options)
    return handler, old_levels


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vecdb`` command line; returns the exit status."""
    import pyarrow as pa

    from ..errors import VecdbError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler, old_levels = _logging(args.debug)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        if args.debug:
            raise
        sys.stderr.write("vecdb: interrupted\n")
        return 130
    except BrokenPipeError:  # `vecdb search ... | head`: the reader left; say nothing
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except (CliError, VecdbError, OSError, pa.ArrowException, MemoryError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"vecdb: error: {_one_line(exc)}\n")
        return 1
    except Exception as exc:  # a bug: still one line, with the way to the traceback
        if args.debug:
            raise
        sys.stderr.write(f"vecdb: error: internal error {type(exc).__name__}: {_one_line(exc)} "
                         f"(run with --debug for the traceback)\n")
        return 1
    finally:
        for name, level in old_levels.items():
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(level)
