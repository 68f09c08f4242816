"""Filters: one AST, three ways to write it, one way to evaluate it.

- SQL-like WHERE strings (``vecdb.filters.sql``): ``"'cs.LG' IN categories AND year >= 2025"``;
- JSON trees (``vecdb.filters.json_tree``): ``{"and": [{"contains": ["categories", "cs.LG"]}, ...]}``;
- the Python builder (``vecdb.filters.builder``): ``col("categories").contains("cs.LG") & (col("year") >= 2025)``.

All of them give an immutable ``Expr`` (``vecdb.filters.ast``); ``str(expr)`` is canonical SQL
and ``expr.to_json()`` the JSON tree. ``bind(expr, schema)`` checks it against an Arrow schema
and ``.evaluate(table)`` returns a numpy bool mask (``vecdb.filters.evaluate``).
"""

from __future__ import annotations

import functools
from typing import Any

from vecdb.errors import FilterError
from vecdb.filters.ast import (
    MAX_DEPTH,
    And,
    Between,
    ColumnCompare,
    Compare,
    Contains,
    ContainsAll,
    ContainsAny,
    Expr,
    In,
    IsBool,
    IsNull,
    Length,
    Like,
    Not,
    Or,
    Scalar,
)
from vecdb.filters.builder import Column, col
from vecdb.filters.evaluate import BoundFilter, bind
from vecdb.filters.json_tree import from_tree, loads
from vecdb.filters.sql import parse_sql

__all__ = [
    "MAX_DEPTH",
    "And",
    "Between",
    "BoundFilter",
    "Column",
    "ColumnCompare",
    "Compare",
    "Contains",
    "ContainsAll",
    "ContainsAny",
    "Expr",
    "FilterError",
    "In",
    "IsBool",
    "IsNull",
    "Length",
    "Like",
    "Not",
    "Or",
    "Scalar",
    "bind",
    "col",
    "parse",
]


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Expr | None:
    stripped = text.strip()
    if not stripped:
        return None
    if stripped[0] in "{[" or stripped == "null":
        return loads(text)
    return parse_sql(text)


def parse(where: Any) -> Expr | None:
    """Any accepted form of a filter -> ``Expr``, or ``None`` for no filter.

    ``None``, ``""`` (or only whitespace) and the JSON text ``"null"`` mean no filter; an
    ``Expr`` is returned as is; a ``dict`` is a JSON tree; a ``str`` starting with ``{`` or ``[``
    is the JSON text of a tree (a JSON array: the AND of the trees it holds), any other string a
    SQL-like WHERE clause. Strings are parsed once and cached.

    A Python ``list`` or ``tuple`` is never one filter: given as ``where`` to ``search`` / ``explain``
    it holds one filter per query, so ``parse`` refuses it (``FilterError``); combine the filters of
    one query with ``AND``, ``&`` or ``{"and": [...]}``.
    Raises ``FilterError`` for a malformed filter and ``TypeError`` for any other type.
    """
    if where is None or isinstance(where, Expr):
        return where
    if isinstance(where, str):
        return _parse_text(where)
    if isinstance(where, (list, tuple)):
        raise FilterError(
            f"a list of {len(where)} filters is one filter per query (search, explain); to combine filters "
            f"for one query use AND, '&' or {{\"and\": [...]}}")
    if isinstance(where, dict):
        return from_tree(where)
    raise TypeError(
        f"a filter must be a SQL-like string, a JSON tree (dict), an Expr or None, "
        f"got {type(where).__name__}"
    )
