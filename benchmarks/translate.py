"""vecdb filter ASTs -> the peers' filter languages: LanceDB SQL, Chroma ``where`` dicts, Qdrant ``Filter``s.

A construct a peer cannot express raises ``UnsupportedFilter`` (the query is then recorded as
unanswered), never a silently different filter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vecdb.filters import (And, Between, Compare, Contains, ContainsAll, ContainsAny, Expr, In, IsNull, Not,
                           Or, parse)
from vecdb.filters.ast import literal_sql

from .engines import UnsupportedFilter

_NEGATE = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _ident(name: str) -> str:
    return name if name.isidentifier() else f"`{name}`"


# ----------------------------------------------------------------------------- LanceDB (DataFusion SQL)
def to_lance_sql(where: str | None) -> str | None:
    """SQL for LanceDB's ``where``: list membership becomes ``array_has(col, v)``."""
    expr = parse(where)
    return None if expr is None else _lance(expr)


def _lance(e: Expr) -> str:
    if isinstance(e, Or):
        return "(" + " OR ".join(_lance(o) for o in e.operands) + ")"
    if isinstance(e, And):
        return "(" + " AND ".join(_lance(o) for o in e.operands) + ")"
    if isinstance(e, Not):
        return f"NOT ({_lance(e.operand)})"
    if isinstance(e, Contains):
        return f"array_has({_ident(e.column)}, {literal_sql(e.value)})"
    if isinstance(e, ContainsAll):
        return "(" + " AND ".join(f"array_has({_ident(e.column)}, {literal_sql(v)})" for v in e.values) + ")"
    if isinstance(e, ContainsAny):
        return "(" + " OR ".join(f"array_has({_ident(e.column)}, {literal_sql(v)})" for v in e.values) + ")"
    if isinstance(e, (Compare, Between, In, IsNull)):
        return e.to_sql()
    raise UnsupportedFilter(f"LanceDB: cannot translate {e}")


# ----------------------------------------------------------------------------- Chroma
def to_chroma(where: str | None) -> dict | None:
    """Chroma ``where``: ``$and``/``$or``, ``$eq``.. ``$lte``, ``$in``/``$nin``, ``$contains`` on array
    metadata. Chroma has no ``$not``: negations are pushed down to the leaves (De Morgan)."""
    expr = parse(where)
    return None if expr is None else _chroma(expr, False)


def _scalar(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.datetime)):
        raise UnsupportedFilter("Chroma: date literals are not supported (use an integer column)")
    return v


def _chroma(e: Expr, neg: bool) -> dict:
    if isinstance(e, Not):
        return _chroma(e.operand, not neg)
    if isinstance(e, And):  # Or subclasses And
        op = "$or" if isinstance(e, Or) != neg else "$and"
        parts = [_chroma(o, neg) for o in e.operands]
        return parts[0] if len(parts) == 1 else {op: parts}
    if isinstance(e, Compare):
        op = _NEGATE[e.op] if neg else e.op
        name = {"=": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}[op]
        return {e.column: {name: _scalar(e.value)}}
    if isinstance(e, Between):
        if neg:
            return {"$or": [{e.column: {"$lt": _scalar(e.low)}}, {e.column: {"$gt": _scalar(e.high)}}]}
        return {"$and": [{e.column: {"$gte": _scalar(e.low)}}, {e.column: {"$lte": _scalar(e.high)}}]}
    if isinstance(e, In):
        return {e.column: {"$nin" if e.negated != neg else "$in": [_scalar(v) for v in e.values]}}
    if isinstance(e, Contains):
        return {e.column: {"$not_contains" if neg else "$contains": _scalar(e.value)}}
    if isinstance(e, ContainsAny):
        each = [_chroma(Contains(e.column, v), neg) for v in e.values]
        any_op = "$or" if isinstance(e, ContainsAll) == neg else "$and"
        return each[0] if len(each) == 1 else {any_op: each}
    raise UnsupportedFilter(f"Chroma: cannot translate {e}")


# ----------------------------------------------------------------------------- Qdrant
def to_qdrant(where: str | None, models: Any) -> Any:
    """A ``qdrant_client.models.Filter``; ``models`` is the imported module (optional dependency)."""
    expr = parse(where)
    return None if expr is None else _qdrant_filter(expr, models)


def _qdrant_filter(e: Expr, m: Any) -> Any:
    if isinstance(e, Or):
        return m.Filter(should=[_qdrant_cond(o, m) for o in e.operands])
    if isinstance(e, And):
        return m.Filter(must=[_qdrant_cond(o, m) for o in e.operands])
    if isinstance(e, Not):
        return m.Filter(must_not=[_qdrant_cond(e.operand, m)])
    return m.Filter(must=[_qdrant_cond(e, m)])


def _qdrant_cond(e: Expr, m: Any) -> Any:
    if isinstance(e, (And, Not)):
        return _qdrant_filter(e, m)
    if isinstance(e, Compare):
        if e.op in ("=", "!="):
            cond = m.FieldCondition(key=e.column, match=m.MatchValue(value=e.value))
            return cond if e.op == "=" else m.Filter(must_not=[cond])
        key = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[e.op]
        return m.FieldCondition(key=e.column, range=m.Range(**{key: e.value}))
    if isinstance(e, Between):
        return m.FieldCondition(key=e.column, range=m.Range(gte=e.low, lte=e.high))
    if isinstance(e, In):
        cond = m.FieldCondition(key=e.column, match=m.MatchAny(any=list(e.values)))
        return m.Filter(must_not=[cond]) if e.negated else cond
    if isinstance(e, ContainsAll):
        return m.Filter(must=[m.FieldCondition(key=e.column, match=m.MatchValue(value=v)) for v in e.values])
    if isinstance(e, ContainsAny):
        return m.FieldCondition(key=e.column, match=m.MatchAny(any=list(e.values)))
    if isinstance(e, Contains):  # a match on an array payload passes when any element matches
        return m.FieldCondition(key=e.column, match=m.MatchValue(value=e.value))
    raise UnsupportedFilter(f"Qdrant: cannot translate {e}")
