"""``vecdb explain``: the plan the planner would run for a filter, how many rows pass, and why."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from .common import parse_key_values
from .output import write_text
from .search import PLANS

EPILOG = """examples: from the repository root, after 'vecdb build --help's first example
  vecdb explain scratch/arxiv.vdb --where "'cs.LG' IN categories AND year >= 2025"
  vecdb explain scratch/arxiv.vdb --where "primary_category = 'cs.SE'" -k 100 --format json
"""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", parents=parents, help="the plan a filtered search would take, and its selectivity",
                       description="Show the plan the planner would choose for a filter: exact scan, filtered "
                                   "index search or post-filter, the matching rows, the selectivity and why.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="the collection directory")
    p.add_argument("--where", metavar="FILTER", help="SQL-like filter (default: none)")
    p.add_argument("-k", type=int, default=10, help="hits per query the plan is for (default 10)")
    p.add_argument("--params", action="append", metavar="KEY=VALUE", help="search options, as for search")
    p.add_argument("--plan", choices=PLANS, help="force a plan (to see its parameters)")
    p.add_argument("--field", metavar="NAME", help="the vector field (needed when the collection has several)")
    p.add_argument("--index", metavar="NAME", help="explain the plan through this index of the field")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import vecdb

    params = parse_key_values(args.params, "--params")
    if args.plan:
        params["plan"] = args.plan
    coll = vecdb.open(args.path)
    plan = coll.explain(where=args.where, k=args.k, field=args.field, index=args.index, **params)
    muvera = _muvera(_index_info(coll, args.field), plan)
    if args.format == "json":
        data = dataclasses.asdict(plan) | {"selectivity": plan.selectivity}
        if muvera is not None:  # the plan's own index is the inner one, over the encodings
            data |= {"index": "muvera", "inner_index": muvera["inner"], "inner_index_used": plan.index is not None}
        write_text(json.dumps(data, indent=2) + "\n", None)
    else:
        lines = str(plan).split("\n")
        if muvera is not None:
            lines = [muvera["line"] if line.startswith("index: ") else line for line in lines]
        write_text("\n".join(lines) + "\n", None)
    return 0


def _index_info(coll: Any, name: str | None) -> dict[str, Any] | None:
    """The newest index of field ``name`` (or the only field), as ``Collection.index_info`` gives it."""
    from ..fields import resolve

    field = resolve(coll.snapshot.fields, name)
    spec = field.spec.indexes[-1] if field.spec.indexes else None
    return None if spec is None else field.views[spec.label].index_info(spec)


def _muvera(info: dict[str, Any] | None, plan: Any) -> dict[str, Any] | None:
    """A multi-vector collection's index as explain shows it: MUVERA, and the inner index its plan ran
    on the fixed-dimensional encodings (``Plan.index`` names only the inner one)."""
    if info is None or info.get("kind") != "muvera":
        return None
    inner = (info.get("inner") or {}).get("kind") or plan.index or "flat"
    what = (f"muvera ({info.get('fde_dim', '?')}-d encodings in an inner {inner} index, "
            f"candidates reranked by exact Chamfer)")
    if plan.index is None:
        what += "; not used by this plan"
    elif plan.params:
        what += f" {plan.params}"
    return {"inner": inner, "line": f"index: {what}"}
