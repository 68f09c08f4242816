"""Per-shard column statistics and the pruning rule that reads them.

A shard's statistics describe a superset of its live rows: built from its rows at build time and only
ever widened by writes (a delete leaves them as they were; ``ShardedCollection.refresh_stats`` tightens
them again). Per column: ``rows`` and ``nulls``; for ordered columns (integers, floats without NaN,
strings, dates) ``min`` / ``max``; the complete set of distinct ``values`` when there are at most
``max_distinct`` of them (for ``list<string>`` columns: the distinct elements). Timestamps, NaN-holding
floats and other types keep only the counts.

``may_pass(expr, stats)`` is False only when the statistics prove that no row of the shard can pass
``expr`` (SQL three-valued logic: a comparison with a null never passes); anything it cannot decide
(an unknown column, a literal of another type, LIKE, column-to-column comparisons, ...) keeps the shard.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from vecdb.filters import (And, Between, Compare, Contains, ContainsAll, ContainsAny, Expr, In, IsBool, IsNull,
                           Not, Or)

MAX_DISTINCT = 256
ColumnStats = dict  # JSON-ready: {"type", "rows", "nulls", optional "min", "max", "values"}

_NEGATED = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


# ----------------------------------------------------------------- computing
def table_stats(table: pa.Table, *, max_distinct: int = MAX_DISTINCT,
                full_distinct: tuple[str, ...] = ()) -> dict[str, ColumnStats]:
    """Statistics of every column of ``table``; columns in ``full_distinct`` (the partition column) keep
    their distinct values whatever their number."""
    return {name: column_stats(table.column(name), max_distinct=None if name in full_distinct else max_distinct)
            for name in table.column_names}


def column_stats(column: pa.ChunkedArray, *, max_distinct: int | None = MAX_DISTINCT) -> ColumnStats:
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    out: ColumnStats = {"type": _kind_of_type(t), "rows": len(column), "nulls": column.null_count}
    kind = out["type"]
    if kind == "other" or len(column) == column.null_count:
        return out
    if kind == "list":
        elements = pc.list_flatten(column)
        if elements.null_count:
            return out  # a null element: membership tests are not decidable from the values alone
        distinct = pc.unique(elements)
        if max_distinct is None or len(distinct) <= max_distinct:
            out["values"] = _sorted([_encode(v) for v in distinct.to_pylist()])
        return out
    if kind == "float" and pc.any(pc.is_nan(column)).as_py():
        out["type"] = "other"
        return out
    if kind != "bool":
        lo_hi = pc.min_max(column)
        out["min"], out["max"] = _encode(lo_hi["min"].as_py()), _encode(lo_hi["max"].as_py())
    distinct = pc.unique(column.drop_null() if hasattr(column, "drop_null") else pc.drop_null(column))
    if max_distinct is None or len(distinct) <= max_distinct:
        out["values"] = _sorted([_encode(v) for v in distinct.to_pylist()])
    return out


def merge_stats(a: Mapping[str, ColumnStats], b: Mapping[str, ColumnStats], *,
                max_distinct: int = MAX_DISTINCT, full_distinct: tuple[str, ...] = ()) -> dict[str, ColumnStats]:
    """Statistics covering the rows of both (a widening); a column in only one of them loses its bounds
    (the other side's rows are not described)."""
    out: dict[str, ColumnStats] = {}
    for name in set(a) | set(b):
        if name not in a or name not in b:
            one = a.get(name) or b[name]
            out[name] = {"type": "other", "rows": one["rows"], "nulls": one["nulls"]}
            continue
        x, y = a[name], b[name]
        merged: ColumnStats = {"type": x["type"] if x["type"] == y["type"] else "other",
                               "rows": x["rows"] + y["rows"], "nulls": x["nulls"] + y["nulls"]}
        if merged["type"] != "other":
            x_empty, y_empty = x["rows"] == x["nulls"], y["rows"] == y["nulls"]
            if x_empty or y_empty:  # one side has no non-null value: the other's bounds describe both
                for key in ("min", "max", "values"):
                    src = y if x_empty else x
                    if key in src:
                        merged[key] = src[key]
            else:
                if "min" in x and "min" in y:
                    merged["min"] = min(x["min"], y["min"], key=_decode)
                    merged["max"] = max(x["max"], y["max"], key=_decode)
                if "values" in x and "values" in y:
                    values = _sorted(list({_key(v): v for v in x["values"] + y["values"]}.values()))
                    if name in full_distinct or len(values) <= max_distinct:
                        merged["values"] = values
        out[name] = merged
    return out


def _kind_of_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_date(t):
        return "date"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
            pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        return "list"
    return "other"


def _encode(value: Any) -> Any:
    """A JSON-ready value: dates as ``{"date": iso}``."""
    if isinstance(value, dt.datetime):
        raise TypeError("timestamps carry no statistics")
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return dt.date.fromisoformat(value["date"])
    return value


def _key(value: Any) -> Any:
    return (type(value).__name__, str(value)) if isinstance(value, dict) else (type(value).__name__, value)


def _sorted(values: list[Any]) -> list[Any]:
    return sorted(values, key=lambda v: (type(v).__name__, _decode(v)))


# ----------------------------------------------------------------- pruning
def may_pass(expr: Expr | None, stats: Mapping[str, ColumnStats]) -> bool:
    """False only when no row described by ``stats`` can pass ``expr``; True when unsure."""
    if expr is None:
        return True
    return _may(expr, stats, False)


def _may(e: Expr, stats: Mapping[str, ColumnStats], neg: bool) -> bool:
    # NOT pushed to the leaves: in three-valued logic NOT x is TRUE exactly where x is FALSE, and a row
    # making NOT (a AND b) TRUE makes NOT a or NOT b TRUE, so any / all stay over-approximations
    if isinstance(e, Not):
        return _may(e.operand, stats, not neg)
    if isinstance(e, Or):
        parts = (_may(o, stats, neg) for o in e.operands)
        return all(parts) if neg else any(parts)
    if isinstance(e, And):
        parts = (_may(o, stats, neg) for o in e.operands)
        return any(parts) if neg else all(parts)
    s = stats.get(getattr(e, "column", None) or "")
    if s is None:
        return True  # a column without statistics (or none at all: the shard reports the error)
    non_null = s["rows"] - s["nulls"]
    if isinstance(e, IsBool):
        return True  # "x IS NOT TRUE" passes null rows too: not decided here
    if isinstance(e, IsNull):  # two-valued: NOT is exact
        want_null = e.negated == neg
        return s["nulls"] > 0 if want_null else non_null > 0
    if non_null == 0:
        return False  # every other leaf is NULL (or FALSE) on a null value
    if isinstance(e, Compare):
        return _compare(s, _NEGATED[e.op] if neg else e.op, e.value)
    if isinstance(e, Between):
        if e.symmetric:
            return _may(e.asymmetric(), stats, neg)
        if neg:
            return _compare(s, "<", e.low) or _compare(s, ">", e.high)
        return _between(s, e.low, e.high)
    if isinstance(e, In):
        if e.negated != neg:  # NOT IN: some non-null value outside the list
            if "values" not in s or not _same_kind(s, e.values):
                return True
            listed = {_key(_encode(v)) for v in e.values}
            return any(_key(v) not in listed for v in s["values"])
        return any(_compare(s, "=", v) for v in e.values)
    if isinstance(e, (Contains, ContainsAny)) and s["type"] == "list" and not neg:
        if "values" not in s:
            return True
        held = {_key(v) for v in s["values"]}
        wanted = [e.value] if isinstance(e, Contains) else list(e.values)
        if not all(isinstance(v, str) for v in wanted):
            return True
        found = [_key(v) in held for v in wanted]
        return all(found) if isinstance(e, ContainsAll) else any(found)
    return True


def _literal_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    return "other"


_COLUMN_KINDS = {"int": "num", "float": "num", "string": "string", "date": "date", "bool": "bool"}


def _same_kind(s: ColumnStats, values: Any) -> bool:
    kind = _COLUMN_KINDS.get(s["type"])
    vals = values if isinstance(values, (tuple, list)) else (values,)
    return kind is not None and all(_literal_kind(v) == kind for v in vals)


def _compare(s: ColumnStats, op: str, value: Any) -> bool:
    """Whether some non-null value ``x`` of the column can make ``x op value`` TRUE."""
    if not _same_kind(s, value):
        return True  # another type: the shard decides (or raises)
    if "values" in s:
        xs = [_decode(v) for v in s["values"]]
        return any(_holds(x, op, value) for x in xs)
    if "min" not in s:
        return True
    lo, hi = _decode(s["min"]), _decode(s["max"])
    if op == "=":
        return lo <= value <= hi
    if op == "!=":
        return not (lo == hi == value)
    if op in ("<", "<="):
        return _holds(lo, op, value)
    return _holds(hi, op, value)


def _between(s: ColumnStats, low: Any, high: Any) -> bool:
    if not (_same_kind(s, low) and _same_kind(s, high)):
        return True
    if "values" in s:
        return any(low <= _decode(x) <= high for x in s["values"])
    if "min" not in s:
        return True
    return _decode(s["max"]) >= low and _decode(s["min"]) <= high


def _holds(x: Any, op: str, v: Any) -> bool:
    return {"=": x == v, "!=": x != v, "<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]


__all__ = ["MAX_DISTINCT", "column_stats", "merge_stats", "may_pass", "table_stats"]
