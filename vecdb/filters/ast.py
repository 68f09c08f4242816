"""Filter expression nodes, their canonical SQL printing and their JSON tree form.

Every node is a frozen dataclass, so an expression is immutable, hashable and compares
structurally: ``parse(str(e)) == e``. Equality also compares the Python type of each literal,
so ``x = 1``, ``x = 1.0`` and ``x = TRUE`` are three different filters.

Nodes combine with ``&``, ``|`` and ``~``. Using one in a boolean context (``if expr:``,
``a and b``) raises ``TypeError``: Python cannot overload ``and``/``or``/``not``.

The canonical SQL is the form the shipped arXiv queries use: ``'cs.CL' IN categories`` for list
membership, ``NOT (...)`` always parenthesised, AND/OR nested inside another operator
parenthesised, ``col BETWEEN lo AND hi``.

Limits: a tree is at most ``MAX_DEPTH`` (2,000) nodes deep (``FilterError`` beyond, whichever
spelling built it); hash, equality and ``columns()`` are computed bottom-up when a node is made, and
the recursive walks (printing, binding, evaluating) run under ``deep_recursion()``, so every tree
that can be built can also be printed and evaluated. Integer literals have at most 4,000 digits;
strings must be valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import sys
import threading
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
    {"AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE", "DATE", "TIMESTAMP",
     "LIKE", "ILIKE", "ESCAPE", "SYMMETRIC"}
)

MAX_DEPTH = 2000
"""Deepest filter tree (and deepest nesting of parentheses / NOT in a SQL string) accepted."""

MAX_INT_DIGITS = 4000
"""Longest integer literal, in decimal digits (Python refuses to print ints past 4,300 digits)."""
_INT_LIMIT = 10**MAX_INT_DIGITS

_RECURSION = MAX_DEPTH * 8 + 2000  # frames a walk of a MAX_DEPTH-deep tree may need, with headroom
_recursion_lock = threading.Lock()
_recursion_users = 0
_recursion_saved = 0


class _DeepRecursion:
    """The context manager ``deep_recursion()`` returns (a class, not a generator: it wraps the parse
    of every filter a search sees for the first time, and ``contextlib.contextmanager`` cost ~6 us
    a parse there)."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _recursion_users, _recursion_saved
        with _recursion_lock:
            if _recursion_users == 0:
                _recursion_saved = sys.getrecursionlimit()
                if _recursion_saved < _RECURSION:
                    sys.setrecursionlimit(_RECURSION)
            _recursion_users += 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        global _recursion_users
        with _recursion_lock:
            _recursion_users -= 1
            if _recursion_users == 0 and sys.getrecursionlimit() == _RECURSION:
                sys.setrecursionlimit(_recursion_saved)
        if kind is not None and issubclass(kind, RecursionError):
            raise FilterError(f"filter too deeply nested (at most {MAX_DEPTH} levels)") from None
        return False


_DEEP_RECURSION = _DeepRecursion()


def deep_recursion() -> _DeepRecursion:
    """Run a recursive walk of a filter with the interpreter's recursion limit raised to what a
    ``MAX_DEPTH``-deep tree needs (Python 3.11+ keeps Python-to-Python calls off the C stack); the
    limit is restored when the last walk on any thread ends. A ``RecursionError`` inside becomes a
    ``FilterError``."""
    return _DEEP_RECURSION


def check_text(value: str, what: str) -> str:
    """``value`` if it is valid Unicode (encodable as UTF-8), else FilterError."""
    if value.isascii():  # O(1) in CPython: no encoding to try
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FilterError(f"{what} {value!r} is not valid Unicode: {exc.reason} at index {exc.start}") from None
    return value


def check_literal(value: Any) -> Scalar:
    """Return ``value`` as a filter literal (numpy scalars become Python ones) or raise."""
    kind = type(value)
    if kind is str:  # the usual literals first, as the checks below would return them
        return check_text(value, "the string")
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return value
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
    if isinstance(value, int) and not isinstance(value, bool):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise FilterError(f"an integer literal has at most {MAX_INT_DIGITS} digits")
        return int(value)  # an int subclass (IntEnum, numpy bool aside) prints as a plain int
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return check_text(str(value), "the string")
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
    """Equality key of a literal (or tuple of literals) that tells ``1``, ``1.0`` and ``True`` apart."""
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return (type(value).__name__, value)


def _check_column(column: Any) -> None:
    if not isinstance(column, str) or not column:
        raise FilterError(f"a column name must be a non-empty string, got {column!r}")
    check_text(column, "the column name")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """The dataclass field names of a node class (``dataclasses.fields`` rebuilds the tuple per call)."""
    return tuple(f.name for f in fields(cls))


class Expr:
    """Base of every filter node. Combine with ``&`` (AND), ``|`` (OR) and ``~`` (NOT).

    Each node computes its hash, depth and column set when made, from its children's (no
    recursion); equality walks both trees with an explicit stack."""

    json_key: ClassVar[str] = ""
    _hash: int
    _depth: int
    _columns: frozenset[str]

    def _seal(self, children: tuple["Expr", ...] = (), columns: Iterable[str] = ()) -> None:
        """Finish a node: depth (FilterError past ``MAX_DEPTH``), hash and columns. (On the path of
        every filter a search sees for the first time: no generators, field names read once per class.)"""
        names = frozenset(columns)
        if children:
            depth = 1 + max([c._depth for c in children])
            if depth > MAX_DEPTH:
                raise FilterError(f"filter too deeply nested (at most {MAX_DEPTH} levels)")
            names = names.union(*[c._columns for c in children])
        else:
            depth = 1
        # the class and the fields as they are: a child hashes as its stored ``_hash`` (no recursion);
        # 1, 1.0 and TRUE hash alike, and ``__eq__`` tells them apart
        cls = type(self)
        key = (cls, *[getattr(self, name) for name in _field_names(cls)])
        object.__setattr__(self, "_depth", depth)
        object.__setattr__(self, "_columns", names)
        object.__setattr__(self, "_hash", hash(key))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Expr):
            return False
        stack = [(self, other)]
        while stack:
            a, b = stack.pop()
            if a is b:
                continue
            if type(a) is not type(b) or a._hash != b._hash:
                return False
            for name in _field_names(type(a)):
                x, y = getattr(a, name), getattr(b, name)
                if isinstance(x, Expr):
                    stack.append((x, y))
                elif isinstance(x, tuple) and x and isinstance(x[0], Expr):
                    if len(x) != len(y):
                        return False
                    stack.extend(zip(x, y))
                elif _typed(x) != _typed(y):
                    return False
        return True

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return self._hash

    @property
    def depth(self) -> int:
        """Nodes on the longest path from this node to a leaf (a leaf is 1)."""
        return self._depth

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
            with deep_recursion():
                cached = self.to_sql()
            object.__setattr__(self, "_sql", cached)
        return cached

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"

    def to_sql(self) -> str:
        """The canonical SQL-like WHERE string (what ``str()`` returns)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The JSON tree (a dict of one key)."""
        with deep_recursion():
            return self._json()

    def _json(self) -> dict[str, Any]:
        raise NotImplementedError

    def columns(self) -> frozenset[str]:
        """Names of the columns this filter reads."""
        return self._columns

    def _nested_sql(self) -> str:
        """SQL of this node as an operand of AND / OR / NOT."""
        return self.to_sql()


def _check_op(op: str) -> str:
    op = {"<>": "!=", "==": "="}.get(op, op)
    if op not in COMPARE_OPS:
        expected = ", ".join(COMPARE_OPS)
        raise FilterError(f"unknown comparison operator {op!r}; expected one of {expected}")
    return op


@dataclass(frozen=True, eq=False, repr=False)
class Compare(Expr):
    """``column op value`` with op one of ``= != < <= > >=`` (``<>`` and ``==`` are accepted)."""

    column: str
    op: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "op", _check_op(self.op))
        object.__setattr__(self, "value", check_literal(self.value))
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        return f"{column_sql(self.column)} {self.op} {literal_sql(self.value)}"

    def _json(self) -> dict[str, Any]:
        return {COMPARE_OPS[self.op]: [self.column, literal_json(self.value)]}


@dataclass(frozen=True, eq=False, repr=False)
class ColumnCompare(Expr):
    """``left op right``: two columns of comparable types (numbers are compared exactly)."""

    left: str
    op: str
    right: str

    def __post_init__(self) -> None:
        _check_column(self.left)
        _check_column(self.right)
        object.__setattr__(self, "op", _check_op(self.op))
        self._seal(columns=(self.left, self.right))

    def to_sql(self) -> str:
        return f"{column_sql(self.left)} {self.op} {column_sql(self.right)}"

    def _json(self) -> dict[str, Any]:
        return {COMPARE_OPS[self.op]: [self.left, {"col": self.right}]}


@dataclass(frozen=True, eq=False, repr=False)
class Length(Expr):
    """``len(column) op value``: the number of elements of a list column (NULL list: NULL)."""

    column: str
    op: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "op", _check_op(self.op))
        value = check_literal(self.value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FilterError(f"len({self.column}) is compared with a number, got {literal_sql(value)}")
        object.__setattr__(self, "value", value)
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        return f"len({column_sql(self.column)}) {self.op} {literal_sql(self.value)}"

    def _json(self) -> dict[str, Any]:
        return {COMPARE_OPS[self.op]: [{"len": self.column}, literal_json(self.value)]}


@dataclass(frozen=True, eq=False, repr=False)
class Between(Expr):
    """``column BETWEEN [SYMMETRIC] low AND high``, both ends inclusive; SYMMETRIC swaps the ends
    when ``low > high`` (it is the OR of the two orders)."""

    column: str
    low: Scalar
    high: Scalar
    symmetric: bool = False

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "low", check_literal(self.low))
        object.__setattr__(self, "high", check_literal(self.high))
        object.__setattr__(self, "symmetric", bool(self.symmetric))
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        keyword = "BETWEEN SYMMETRIC" if self.symmetric else "BETWEEN"
        return f"{column_sql(self.column)} {keyword} {literal_sql(self.low)} AND {literal_sql(self.high)}"

    def _json(self) -> dict[str, Any]:
        key = "between_symmetric" if self.symmetric else "between"
        return {key: [self.column, literal_json(self.low), literal_json(self.high)]}

    def asymmetric(self) -> Expr:
        """The same filter without SYMMETRIC: ``(c BETWEEN lo AND hi) OR (c BETWEEN hi AND lo)``."""
        if not self.symmetric:
            return self
        return Or((Between(self.column, self.low, self.high), Between(self.column, self.high, self.low)))


@dataclass(frozen=True, eq=False, repr=False)
class In(Expr):
    """``column [NOT] IN (v1, v2, ...)`` on a scalar column. With an empty list (as in DuckDB) a
    non-NULL value is never IN and always NOT IN; a NULL one gives NULL either way."""

    column: str
    values: tuple[Scalar, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "values", check_values(self.values))
        object.__setattr__(self, "negated", bool(self.negated))
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        keyword = "NOT IN" if self.negated else "IN"
        return f"{column_sql(self.column)} {keyword} ({', '.join(literal_sql(v) for v in self.values)})"

    def _json(self) -> dict[str, Any]:
        return {"not_in" if self.negated else "in": [self.column, [literal_json(v) for v in self.values]]}


@dataclass(frozen=True, eq=False, repr=False)
class IsNull(Expr):
    """``column IS [NOT] NULL``."""

    column: str
    negated: bool = False

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "negated", bool(self.negated))
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        return f"{column_sql(self.column)} IS {'NOT NULL' if self.negated else 'NULL'}"

    def _json(self) -> dict[str, Any]:
        return {"is_not_null" if self.negated else "is_null": [self.column]}


@dataclass(frozen=True, eq=False, repr=False)
class IsBool(Expr):
    """``column IS [NOT] TRUE|FALSE`` on a boolean column: never NULL (``NULL IS NOT TRUE`` holds)."""

    column: str
    value: bool
    negated: bool = False

    def __post_init__(self) -> None:
        _check_column(self.column)
        if not isinstance(self.value, bool):
            raise FilterError(f"IS [NOT] TRUE|FALSE needs a boolean, got {self.value!r}")
        object.__setattr__(self, "negated", bool(self.negated))
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        return f"{column_sql(self.column)} IS {'NOT ' if self.negated else ''}{literal_sql(self.value)}"

    def _json(self) -> dict[str, Any]:
        key = f"is_{'not_' if self.negated else ''}{'true' if self.value else 'false'}"
        return {key: [self.column]}


@dataclass(frozen=True, eq=False, repr=False)
class Like(Expr):
    """``column [NOT] LIKE|ILIKE 'pattern' [ESCAPE 'c']``: ``%`` any run of characters, ``_`` one
    character; no escape character unless ESCAPE names one (as in DuckDB and the SQL standard).
    ILIKE ignores case (Unicode simple case folding)."""

    column: str
    pattern: str
    negated: bool = False
    case_insensitive: bool = False
    escape: str | None = None

    def __post_init__(self) -> None:
        _check_column(self.column)
        if not isinstance(self.pattern, str):
            raise FilterError(f"a LIKE pattern must be a string, got {self.pattern!r}")
        check_text(self.pattern, "the LIKE pattern")
        if self.escape is not None:
            if not isinstance(self.escape, str) or len(self.escape) != 1:
                raise FilterError(f"ESCAPE must be a single character, got {self.escape!r}")
            check_text(self.escape, "the ESCAPE character")
        object.__setattr__(self, "negated", bool(self.negated))
        object.__setattr__(self, "case_insensitive", bool(self.case_insensitive))
        self._seal(columns=(self.column,))

    @property
    def keyword(self) -> str:
        return ("NOT " if self.negated else "") + ("ILIKE" if self.case_insensitive else "LIKE")

    def to_sql(self) -> str:
        escape = "" if self.escape is None else f" ESCAPE {literal_sql(self.escape)}"
        return f"{column_sql(self.column)} {self.keyword} {literal_sql(self.pattern)}{escape}"

    def _json(self) -> dict[str, Any]:
        key = self.keyword.lower().replace(" ", "_")
        return {key: [self.column, self.pattern] + ([] if self.escape is None else [self.escape])}


@dataclass(frozen=True, eq=False, repr=False)
class Contains(Expr):
    """List membership ``'v' IN column`` (= ``list_contains(column, 'v')``)."""

    column: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_column(self.column)
        object.__setattr__(self, "value", check_literal(self.value))
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        return f"{literal_sql(self.value)} IN {column_sql(self.column)}"

    def _json(self) -> dict[str, Any]:
        return {"contains": [self.column, literal_json(self.value)]}


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
        self._seal(columns=(self.column,))

    def to_sql(self) -> str:
        items = ", ".join(literal_sql(v) for v in self.values)
        return f"{self.function}({column_sql(self.column)}, ({items}))"

    def _json(self) -> dict[str, Any]:
        return {self.json_key: [self.column, [literal_json(v) for v in self.values]]}


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
        self._seal(children=self.operands)

    def to_sql(self) -> str:
        return f" {self.keyword} ".join([op._nested_sql() for op in self.operands])

    def _nested_sql(self) -> str:
        return f"({self.to_sql()})"

    def _json(self) -> dict[str, Any]:
        return {self.keyword.lower(): [op._json() for op in self.operands]}


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
        self._seal(children=(self.operand,))

    def to_sql(self) -> str:
        return f"NOT ({self.operand.to_sql()})"

    def _json(self) -> dict[str, Any]:
        return {"not": self.operand._json()}
