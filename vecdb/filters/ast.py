"""Filter expression nodes, their canonical SQL printing and their JSON tree form.

Every node is a frozen dataclass, so an expression is immutable, hashable and compares
structurally: ``parse(str(e)) == e``. Equality also compares the Python type of each literal,
so ``x = 1``, ``x = 1.0`` and ``x = TRUE`` are three different filters.

Nodes combine with ``&``, ``|`` and ``~``. Using one in a boolean context (``if expr:``,
``a and b``) raises ``TypeError``: Python cannot overload ``and``/``or``/``not``.

The canonical SQL is the form the shipped arXiv queries use: ``'cs.CL' IN categories`` for list
membership, ``NOT (...)`` always parenthesised, AND/OR nested inside another operator
parenthesised, ``col BETWEEN lo AND hi``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Iterable, Union

from vecdb.errors import FilterError

Scalar = Union[bool, int, float, str, dt.date, dt.datetime]
"""A literal value: bool, int, finite float, str, date (``DATE '...'``) or datetime."""

COMPARE_OPS: dict[str, str] = {"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
"""SQL comparison operator -> JSON tree key."""

FLIPPED_OPS: dict[str, str] = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
"""``lit op col`` is ``col FLIPPED_OPS[op] lit``."""

KEYWORDS = frozenset(
    {"AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE", "DATE", "TIMESTAMP"}
)


def check_literal(value: Any) -> Scalar:
    """Return ``value`` as a filter literal (numpy scalars become Python ones) or raise."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if value is None:
        raise FilterError("NULL is only allowed in IS NULL / IS NOT NULL (use is_null())")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"a filter literal must be a finite number, got {value!r}")
    if not isinstance(value, (bool, int, float, str, dt.date)):
        raise FilterError(
            f"a filter literal must be a bool, int, float, str, date or datetime, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def check_values(values: Iterable[Any]) -> tuple[Scalar, ...]:
    """A tuple of literals from any iterable (a set is sorted so the result is deterministic)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise FilterError(f"expected a list of values, got {type(values).__name__} {values!r}")
    if isinstance(values, (set, frozenset)):
        values = sorted(values, key=lambda v: (type(v).__name__, v))
    return tuple(check_literal(v) for v in values)


def literal_sql(value: Scalar) -> str:
    """A literal in canonical SQL."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return f"DATE '{value.isoformat()}'"


def literal_json(value: Scalar) -> Any:
    """A literal in the JSON tree: dates become ``{"date": ...}`` / ``{"timestamp": ...}``."""
    if isinstance(value, dt.datetime):
        return {"timestamp": value.isoformat(sep=" ")}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    return value


def column_sql(name: str) -> str:
    """A column name, double-quoted unless it is a plain identifier that is not a keyword."""
    plain = (
        name
        and (name[0].isascii() and (name[0].isalpha() or name[0] == "_"))
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        and name.upper() not in KEYWORDS
    )
    return name if plain else '"' + name.replace('"', '""') + '"'


def _typed(value: Any) -> Any:
    """Equality key that tells ``1``, ``1.0`` and ``True`` apart, recursively."""
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    if isinstance(value, Expr):
        return value._key()
    return (type(value).__name__, value)


def _check_column(column: Any) -> None:
    if not isinstance(column, str) or not column:
        raise FilterError(f"a column name must be a non-empty string, got {column!r}")


class Expr:
    """Base of every filter node. Combine with ``&`` (AND), ``|`` (OR) and ``~`` (NOT)."""

    json_key: ClassVar[str] = ""

    def _key(self) -> tuple[Any, ...]:
        values = tuple(_typed(getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]
        return (type(self).__name__,) + values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        cached = self.__dict__.get("_hash")
        if cached is None:  # nodes are immutable: hash once (filters are dict keys on every search)
            cached = hash(self._key())
            object.__setattr__(self, "_hash", cached)
        return cached

    def __and__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return And((self, other))

    def __or__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return Or((self, other))

    def __invert__(self) -> Expr:
        return Not(self)

    def __bool__(self) -> bool:
        raise TypeError(
            "a filter expression has no truth value: combine filters with & (and), | (or) "
            "and ~ (not), with parentheses, e.g. (col('a') > 1) & ~(col('b') == 'x')"
        )

    def __str__(self) -> str:
        cached = self.__dict__.get("_sql")
        if cached is None:
            cached = self.to_sql()
            object.__setattr__(self, "_sql", cached)
        return cached

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.to_sql()}>"

    def to_sql(self) -> str:
        """The canonical SQL-like WHERE string (what ``str()`` returns)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The JSON tree (a dict of one key)."""
        raise NotImplementedError

    def columns(self) -> frozenset[str]:
        """Names of the columns this filter reads."""
        raise NotImplementedError

    def _nested_sql(self) -> str:
        """SQL of this node as an operand of AND / OR / NOT."""
        return self.to_sql()


@dataclass(frozen=True, eq=False, repr=False)
class Compare(Expr):
    """``column op value`` with op one of ``= != < <= > >=``."""

    column: str
    op: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_column(self.column)
        op = "!=" if self.op == "<>" else self.op
        if op not in COMPARE_OPS:
            expected = ", ".join(COMPARE_OPS)
            raise FilterError(f"unknown comparison operator {self.op!r}; expected one of {expected}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "value", check_literal(self.value))

    def to_sql(self) -> str:
        return f"{column_sql(self.column)} {self.op} {literal_sql(self.value)}"

    def to_json(self) -> dict[str, Any]:
        return {COMPARE_OPS[self.op]: [self.column, literal_json(self.value)]}

    def columns(self) -> frozenset[str]:
        return frozenset((self.column,))


@dataclass(frozen=True, eq=False, repr=False)
class Between(Expr):
    """``column BETWEEN low AND high``, both ends inclusive."""

    column: str
    low: Scalar
    high: Scalar

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "low", check_literal(self.low))
        object.__setattr__(self, "high", check_literal(self.high))

    def to_sql(self) -> str:
        return f"{column_sql(self.column)} BETWEEN {literal_sql(self.low)} AND {literal_sql(self.high)}"

    def to_json(self) -> dict[str, Any]:
        return {"between": [self.column, literal_json(self.low), literal_json(self.high)]}

    def columns(self) -> frozenset[str]:
        return frozenset((self.column,))


@dataclass(frozen=True, eq=False, repr=False)
class In(Expr):
    """``column [NOT] IN (v1, v2, ...)`` on a scalar column; an empty list is always false."""

    column: str
    values: tuple[Scalar, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "values", check_values(self.values))
        object.__setattr__(self, "negated", bool(self.negated))

    def to_sql(self) -> str:
        keyword = "NOT IN" if self.negated else "IN"
        return f"{column_sql(self.column)} {keyword} ({', '.join(literal_sql(v) for v in self.values)})"

    def to_json(self) -> dict[str, Any]:
        return {"not_in" if self.negated else "in": [self.column, [literal_json(v) for v in self.values]]}

    def columns(self) -> frozenset[str]:
        return frozenset((self.column,))


@dataclass(frozen=True, eq=False, repr=False)
class IsNull(Expr):
    """``column IS [NOT] NULL``."""

    column: str
    negated: bool = False

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "negated", bool(self.negated))

    def to_sql(self) -> str:
        return f"{column_sql(self.column)} IS {'NOT NULL' if self.negated else 'NULL'}"

    def to_json(self) -> dict[str, Any]:
        return {"is_not_null" if self.negated else "is_null": [self.column]}

    def columns(self) -> frozenset[str]:
        return frozenset((self.column,))


@dataclass(frozen=True, eq=False, repr=False)
class Contains(Expr):
    """List membership ``'v' IN column`` (= ``array_contains(column, 'v')``)."""

    column: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "value", check_literal(self.value))

    def to_sql(self) -> str:
        return f"{literal_sql(self.value)} IN {column_sql(self.column)}"

    def to_json(self) -> dict[str, Any]:
        return {"contains": [self.column, literal_json(self.value)]}

    def columns(self) -> frozenset[str]:
        return frozenset((self.column,))


@dataclass(frozen=True, eq=False, repr=False)
class ContainsAny(Expr):
    """``array_contains_any(column, (v1, ...))``: the list holds at least one of the values."""

    column: str
    values: tuple[Scalar, ...]
    function: ClassVar[str] = "array_contains_any"
    json_key: ClassVar[str] = "contains_any"

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "values", check_values(self.values))

    def to_sql(self) -> str:
        items = ", ".join(literal_sql(v) for v in self.values)
        return f"{self.function}({column_sql(self.column)}, ({items}))"

    def to_json(self) -> dict[str, Any]:
        return {self.json_key: [self.column, [literal_json(v) for v in self.values]]}

    def columns(self) -> frozenset[str]:
        return frozenset((self.column,))


@dataclass(frozen=True, eq=False, repr=False)
class ContainsAll(ContainsAny):
    """``array_contains_all(column, (v1, ...))``: the list holds every one of the values."""

    function: ClassVar[str] = "array_contains_all"
    json_key: ClassVar[str] = "contains_all"


@dataclass(frozen=True, eq=False, repr=False)
class And(Expr):
    """Conjunction of two or more filters (nested ANDs are flattened)."""

    operands: tuple[Expr, ...]
    keyword: ClassVar[str] = "AND"

    def __post_init__(self) -> None:
        flat: list[Expr] = []
        for operand in self.operands:
            if not isinstance(operand, Expr):
                raise FilterError(f"{self.keyword} operands must be filters, got {operand!r}")
            same = type(operand) is type(self)
            flat.extend(operand.operands if same else (operand,))  # type: ignore[attr-defined]
        if len(flat) < 2:
            raise FilterError(f"{self.keyword} needs at least two operands, got {len(flat)}")
        object.__setattr__(self, "operands", tuple(flat))

    def to_sql(self) -> str:
        return f" {self.keyword} ".join(op._nested_sql() for op in self.operands)

    def _nested_sql(self) -> str:
        return f"({self.to_sql()})"

    def to_json(self) -> dict[str, Any]:
        return {self.keyword.lower(): [op.to_json() for op in self.operands]}

    def columns(self) -> frozenset[str]:
        return frozenset().union(*(op.columns() for op in self.operands))


@dataclass(frozen=True, eq=False, repr=False)
class Or(And):
    """Disjunction of two or more filters (nested ORs are flattened)."""

    keyword: ClassVar[str] = "OR"


@dataclass(frozen=True, eq=False, repr=False)
class Not(Expr):
    """Negation; ``NOT NULL`` is NULL (three-valued logic)."""

    operand: Expr

    def __post_init__(self) -> None:
        if not isinstance(self.operand, Expr):
            raise FilterError(f"NOT needs a filter, got {self.operand!r}")

    def to_sql(self) -> str:
        return f"NOT ({self.operand.to_sql()})"

    def to_json(self) -> dict[str, Any]:
        return {"not": self.operand.to_json()}

    def columns(self) -> frozenset[str]:
        return self.operand.columns()
