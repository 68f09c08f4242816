"""The Python expression builder: ``col("year") >= 2020``, combined with ``&``, ``|`` and ``~``.

``col(name)`` is a column reference, not a filter: comparing it with a value, or calling one of
its methods, gives a filter node (``vecdb.filters.ast``)::

    (col("year") >= 2020) & col("categories").contains("cs.LG") & ~col("title").is_null()
    col("primary_category").isin(["cs.CL", "cs.CV"]) | col("n_authors").between(3, 5)
    col("title").like("Deep%") & (col("categories").len() >= 2) & (col("year") < col("month"))

Python evaluates ``a & b == c`` as ``a & (b == c)``, so parenthesise comparisons.
"""

from __future__ import annotations

from typing import Any, Iterable

from vecdb.filters.ast import (
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
)


class _Comparisons:
    """``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` build filter nodes through ``_compare`` (not truth values)."""

    def _compare(self, op: str, value: Any) -> Expr:
        raise NotImplementedError

    def __eq__(self, value: Any) -> Expr:  # type: ignore[override]
        return self._compare("=", value)

    def __ne__(self, value: Any) -> Expr:  # type: ignore[override]
        return self._compare("!=", value)

    def __lt__(self, value: Any) -> Expr:
        return self._compare("<", value)

    def __le__(self, value: Any) -> Expr:
        return self._compare("<=", value)

    def __gt__(self, value: Any) -> Expr:
        return self._compare(">", value)

    def __ge__(self, value: Any) -> Expr:
        return self._compare(">=", value)

    __hash__ = None  # type: ignore[assignment]


class Column(_Comparisons):
    """A reference to one column; its operators and methods build filter expressions."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise TypeError(f"a column name must be a non-empty string, got {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"col({self.name!r})"

    def __bool__(self) -> bool:
        raise TypeError(
            f"col({self.name!r}) has no truth value; compare it with a value, e.g. col({self.name!r}) == 1, "
            "and combine filters with & | ~"
        )

    def _compare(self, op: str, value: Any) -> Expr:
        if isinstance(value, Column):
            return ColumnCompare(self.name, op, value.name)
        if isinstance(value, ListLength):
            raise TypeError(f"comparing a column with {value!r} is not supported")
        return Compare(self.name, op, value)


    def isin(self, values: Iterable[Any]) -> Expr:
        """``column IN (values)``; an empty list matches nothing."""
        return In(self.name, values)  # type: ignore[arg-type]

    def not_in(self, values: Iterable[Any]) -> Expr:
        """``column NOT IN (values)``; NULL stays NULL (excluded), an empty list matches every row."""
        return In(self.name, values, True)  # type: ignore[arg-type]

    def between(self, low: Any, high: Any, *, symmetric: bool = False) -> Expr:
        """``column BETWEEN [SYMMETRIC] low AND high`` (inclusive; symmetric: either order)."""
        return Between(self.name, low, high, symmetric)

    def like(self, pattern: str, *, escape: str | None = None) -> Expr:
        """``column LIKE pattern``: ``%`` any run of characters, ``_`` one character."""
        return Like(self.name, pattern, False, False, escape)

    def not_like(self, pattern: str, *, escape: str | None = None) -> Expr:
        """``column NOT LIKE pattern``."""
        return Like(self.name, pattern, True, False, escape)

    def ilike(self, pattern: str, *, escape: str | None = None) -> Expr:
        """``column ILIKE pattern`` (LIKE ignoring case)."""
        return Like(self.name, pattern, False, True, escape)

    def not_ilike(self, pattern: str, *, escape: str | None = None) -> Expr:
        """``column NOT ILIKE pattern``."""
        return Like(self.name, pattern, True, True, escape)

    def is_true(self) -> Expr:
        """``column IS TRUE`` (NULL rows: false)."""
        return IsBool(self.name, True)

    def is_false(self) -> Expr:
        """``column IS FALSE`` (NULL rows: false)."""
        return IsBool(self.name, False)

    def is_not_true(self) -> Expr:
        """``column IS NOT TRUE`` (NULL rows: true)."""
        return IsBool(self.name, True, True)

    def is_not_false(self) -> Expr:
        """``column IS NOT FALSE`` (NULL rows: true)."""
        return IsBool(self.name, False, True)

    def len(self) -> "ListLength":
        """The number of elements of a list column, to compare with a number: ``col("c").len() >= 2``."""
        return ListLength(self.name)

    def is_null(self) -> Expr:
        """``column IS NULL``."""
        return IsNull(self.name)

    def is_not_null(self) -> Expr:
        """``column IS NOT NULL``."""
        return IsNull(self.name, True)

    def contains(self, value: Any) -> Expr:
        """List membership, ``value IN column``."""
        return Contains(self.name, value)

    def contains_any(self, values: Iterable[Any]) -> Expr:
        """The list column holds at least one of ``values``."""
        return ContainsAny(self.name, values)  # type: ignore[arg-type]

    def contains_all(self, values: Iterable[Any]) -> Expr:
        """The list column holds every one of ``values``."""
        return ContainsAll(self.name, values)  # type: ignore[arg-type]


class ListLength(_Comparisons):
    """``len(column)`` in the builder: comparing it with a number gives a ``Length`` filter."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"col({self.name!r}).len()"

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} has no truth value; compare it with a number, e.g. {self!r} >= 2")

    def _compare(self, op: str, value: Any) -> Expr:
        if isinstance(value, (Column, ListLength)):
            raise TypeError(f"comparing {self!r} with {value!r} is not supported; compare it with a number")
        return Length(self.name, op, value)



def col(name: str) -> Column:
    """A column reference for the expression builder."""
    return Column(name)
