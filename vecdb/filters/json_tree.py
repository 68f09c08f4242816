"""The JSON tree form of a filter (the ``filter_json`` of the shipped queries) -> expression.

A node is a dict with exactly one key::

    {"eq"|"ne"|"lt"|"le"|"gt"|"ge": [col, v]}      {"between": [col, lo, hi]}
    {"in"|"not_in": [col, [v, ...]]}              {"is_null"|"is_not_null": [col]}
    {"contains": [col, v]}                        {"contains_any"|"contains_all": [col, [v, ...]]}
    {"and"|"or": [f, ...]}                        {"not": f}
    {"between_symmetric": [col, lo, hi]}          {"is_true"|"is_false"|"is_not_true"|"is_not_false": [col]}
    {"like"|"not_like"|"ilike"|"not_ilike": [col, pattern] or [col, pattern, escape]}
    {"eq"|...: [col, {"col": other}]}  (two columns)   {"eq"|...: [{"len": col}, n]}  (list length)

A value is a string, number or boolean, or ``{"date": "YYYY-MM-DD"}`` /
``{"timestamp": "YYYY-MM-DD HH:MM:SS"}`` (JSON has no date type; a plain ``'YYYY-MM-DD'``
string also works against a date column, it is converted when the filter is bound).
``{"and": [f]}`` is just ``f``. Errors name the path of the bad node, e.g. ``filter.and[1]``.
A tree is at most ``MAX_DEPTH`` (2,000) filters deep.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from vecdb.errors import FilterError
from vecdb.filters.ast import (
    COMPARE_OPS,
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
    check_literal,
    deep_recursion,
)

_OP_OF_KEY = {key: op for op, key in COMPARE_OPS.items()}
_SHAPES: dict[str, str] = {
    **{key: "[column, value]" for key in _OP_OF_KEY},
    "contains": "[column, value]",
    "between": "[column, low, high]",
    "between_symmetric": "[column, low, high]",
    "like": "[column, pattern] or [column, pattern, escape]",
    "not_like": "[column, pattern] or [column, pattern, escape]",
    "ilike": "[column, pattern] or [column, pattern, escape]",
    "not_ilike": "[column, pattern] or [column, pattern, escape]",
    "is_true": "[column]",
    "is_false": "[column]",
    "is_not_true": "[column]",
    "is_not_false": "[column]",
    "in": "[column, [values]]",
    "not_in": "[column, [values]]",
    "contains_any": "[column, [values]]",
    "contains_all": "[column, [values]]",
    "is_null": "[column]",
    "is_not_null": "[column]",
    "and": "[filter, ...]",
    "or": "[filter, ...]",
    "not": "filter",
}


def _value(raw: Any, path: str) -> Scalar:
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("date", "timestamp"):
        kind, text = next(iter(raw.items()))
        try:
            if not isinstance(text, str):
                raise ValueError(text)
            return dt.date.fromisoformat(text) if kind == "date" else dt.datetime.fromisoformat(text)
        except ValueError:
            raise FilterError(f"invalid {kind} {text!r} at {path}; expected an ISO-8601 string") from None
    if raw is None:
        raise FilterError(f"null value at {path}: use {{\"is_null\": [column]}} to test for NULL")
    if isinstance(raw, (dict, list)):
        raise FilterError(
            f"expected a value (string, number, boolean, {{\"date\": ...}}) at {path}, got {json.dumps(raw)}"
        )
    try:
        return check_literal(raw)
    except FilterError as exc:
        raise FilterError(f"{exc} at {path}") from None


def _values(raw: Any, path: str) -> tuple[Scalar, ...]:
    if not isinstance(raw, list):
        raise FilterError(f"expected a list of values at {path}, got {json.dumps(raw, default=str)}")
    return tuple(_value(v, f"{path}[{i}]") for i, v in enumerate(raw))


def _column(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise FilterError(f"expected a column name (string) at {path}, got {json.dumps(raw, default=str)}")
    return raw


def from_json(tree: Any, path: str = "filter", depth: int = 1) -> Expr:
    """Convert a JSON tree (dicts and lists, as ``json.loads`` returns) to an expression."""
    if depth > MAX_DEPTH:
        raise FilterError(f"filter too deeply nested (at most {MAX_DEPTH} levels) at {path[:60]}...")
    if depth == 1:
        with deep_recursion():
            return _node(tree, path, depth)
    return _node(tree, path, depth)


def _node(tree: Any, path: str, depth: int) -> Expr:
    if not isinstance(tree, dict) or len(tree) != 1:
        got = json.dumps(tree, default=str)
        raise FilterError(f"expected a filter node (an object with one key, e.g. \"eq\") at {path}, got {got}")
    key, args = next(iter(tree.items()))
    if key not in _SHAPES:
        raise FilterError(f"unknown filter node {key!r} at {path}; expected one of {', '.join(_SHAPES)}")
    here = f"{path}.{key}"
    if key == "not":
        if isinstance(args, list) and len(args) == 1:
            args = args[0]
        return Not(from_json(args, here, depth + 1))
    if key in ("like", "not_like", "ilike", "not_ilike"):
        if not isinstance(args, list) or len(args) not in (2, 3) or not all(isinstance(a, str) for a in args[1:]):
            raise FilterError(f"expected {_SHAPES[key]} (strings) at {here}, got {json.dumps(args, default=str)}")
        escape = args[2] if len(args) == 3 else None
        try:
            return Like(_column(args[0], f"{here}[0]"), args[1], key.startswith("not_"), "ilike" in key, escape)
        except FilterError as exc:
            raise FilterError(f"{exc} at {here}") from None
    arity = {"[column]": 1, "[column, low, high]": 3}.get(_SHAPES[key], 2)
    if key in ("and", "or"):
        if not isinstance(args, list) or not args:
            raise FilterError(f"expected {_SHAPES[key]} (a non-empty list of filters) at {here}")
        operands = tuple([from_json(f, f"{here}[{i}]", depth + 1) for i, f in enumerate(args)])
        if len(operands) == 1:
            return operands[0]
        return And(operands) if key == "and" else Or(operands)
    if not isinstance(args, list) or len(args) != arity:
        raise FilterError(
            f"expected {_SHAPES[key]} at {here}, got {json.dumps(args, default=str)}"
        )
    if key in _OP_OF_KEY and isinstance(args[0], dict) and list(args[0]) == ["len"]:
        return Length(_column(args[0]["len"], f"{here}[0].len"), _OP_OF_KEY[key], _value(args[1], f"{here}[1]"))
    column = _column(args[0], f"{here}[0]")
    if key in _OP_OF_KEY:
        if isinstance(args[1], dict) and list(args[1]) == ["col"]:
            return ColumnCompare(column, _OP_OF_KEY[key], _column(args[1]["col"], f"{here}[1].col"))
        return Compare(column, _OP_OF_KEY[key], _value(args[1], f"{here}[1]"))
    if key in ("between", "between_symmetric"):
        low, high = _value(args[1], f"{here}[1]"), _value(args[2], f"{here}[2]")
        return Between(column, low, high, key == "between_symmetric")
    if key.startswith("is_") and key.endswith(("_true", "_false")):
        return IsBool(column, key.endswith("_true"), key.startswith("is_not_"))
    if key == "contains":
        return Contains(column, _value(args[1], f"{here}[1]"))
    if key in ("is_null", "is_not_null"):
        return IsNull(column, key == "is_not_null")
    values = _values(args[1], f"{here}[1]")
    if key in ("in", "not_in"):
        return In(column, values, key == "not_in")
    return (ContainsAny if key == "contains_any" else ContainsAll)(column, values)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _nesting(text: str) -> tuple[int, int]:
    """Deepest bracket nesting of JSON text outside strings, and the offset where it is reached."""
    depth = deepest = where = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(lambda m: "s" * len(m.group()), text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, match.start()
        else:
            depth -= 1
    return deepest, where


def loads(text: str) -> Expr | None:
    """Parse JSON text of a tree; ``null`` gives ``None`` and a top-level list is an AND."""
    deepest, where = _nesting(text)
    if deepest > 2 * MAX_DEPTH + 2:  # a filter level is a {} and at most one []
        raise FilterError(f"filter too deeply nested (at most {MAX_DEPTH} levels)", position=where, text=text)
    try:
        with deep_recursion():
            tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"invalid JSON filter: {exc.msg}", position=exc.pos, text=text) from None
    return from_tree(tree)


def from_tree(tree: Any) -> Expr | None:
    """A decoded tree: ``None`` -> ``None``, a list -> AND of its filters, a dict -> one node."""
    if tree is None:
        return None
    if isinstance(tree, list):
        if not tree:
            raise FilterError("an empty list is not a filter; use None for no filter")
        return from_json({"and": tree})
    return from_json(tree)
