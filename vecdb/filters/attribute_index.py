"""Attribute indexes: a filter costs about the number of rows it touches, not a pass over every column.

Per column, built by ``build_index`` and saved with the collection (``vecdb.storage.attribute_indexes``),
else on first use:

- ``InvertedIndex`` for strings, booleans and list columns (``list<string>`` labels): value -> sorted
  row ids in one CSR layout (``keys``, ``offsets``, ``rows``);
- ``SortedIndex`` for integers, floats, dates and timestamps: the non-null values sorted with their
  rows, so a range is two binary searches and a slice (a wide one: a mask of the rows whose rank lies
  in the span, one pass, ``SortedIndex.span``).

``AttributeIndex.select(bound)`` walks the bound filter's AST in SQL's three-valued logic, carrying
for each node the rows that are TRUE (a ``RowSet``: row numbers while few, a bool mask otherwise) and,
only under a NOT, the rows that are UNKNOWN (NULL). An AND lists its cheapest operands and tests the
surviving rows against range operands by rank instead of listing the ranges. Numbers compare exactly
(``vecdb.filters.numbers``: int64 / uint64 values are never rounded to floats; NaN sorts above every
number and equals itself). LIKE is answered from the distinct values: a literal prefix (``'abc%'``) is a
range of the sorted values, any other pattern is matched once per distinct value. Leaves no index can
answer (string ranges, column-to-column comparisons, list lengths) fall back to pyarrow for that leaf
alone. A row set never holds a row twice. ``estimate`` gives a selectivity from the same structures
without evaluating anything (for ``explain``).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import FilterError
from vecdb.filters import numbers
from vecdb.filters.ast import (And, Between, ColumnCompare, Compare, Contains, ContainsAll, ContainsAny, Expr, In,
                               IsBool, IsNull, Length, Like, Not, Or)
from vecdb.filters.evaluate import _SHALLOW, BoundFilter, _Binder, _Column, _scalar, bind, deep
from vecdb.filters.like import like_prefix, like_regex, successor

Tri = tuple["RowSet", "np.ndarray | None"]  # (TRUE rows, UNKNOWN rows mask or None)


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _null_mask(array: pa.Array) -> np.ndarray | None:
    if array.null_count == 0:
        return None
    return np.ascontiguousarray(pc.is_null(array).to_numpy(zero_copy_only=False), dtype=bool)


def _joined_nulls(old: np.ndarray | None, n_old: int, new: np.ndarray | None, n_new: int) -> np.ndarray | None:
    """The NULL mask of ``n_old`` rows followed by ``n_new`` (None: no NULL anywhere)."""
    if old is None and new is None:
        return None
    return np.concatenate([np.zeros(n_old, bool) if old is None else old,
                           np.zeros(n_new, bool) if new is None else new])


@dataclasses.dataclass
class InvertedIndex:
    """value -> rows holding it (for lists: rows whose list holds it), rows sorted per value."""

    keys: dict[Any, int]
    offsets: np.ndarray
    rows: np.ndarray
    nulls: np.ndarray | None
    _sorted: tuple[list, np.ndarray] | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, array: pa.Array) -> "InvertedIndex":
        n = len(array)
        is_list = pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
            or pa.types.is_fixed_size_list(array.type)
        values = pc.list_flatten(array) if is_list else array
        parents = (pc.list_parent_indices(array).to_numpy() if is_list else np.arange(n)).astype(np.int64)
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if pa.types.is_boolean(values.type):
            dictionary = [False, True]
            codes = pc.cast(values, pa.int8()).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            encoded = pc.dictionary_encode(values)
            dictionary = encoded.dictionary.to_pylist()
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        keep = codes >= 0
        pair = np.unique(codes[keep] * max(n, 1) + parents[keep])  # sorted by value, then row; deduped
        code, rows = np.divmod(pair, max(n, 1))
        offsets = np.zeros(len(dictionary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(code, minlength=len(dictionary)), out=offsets[1:])
        return cls({v: i for i, v in enumerate(dictionary)}, offsets, rows, _null_mask(array))

    def extended(self, array: pa.Array, start: int) -> "InvertedIndex":
        """A new index: this one's rows (``0 .. start - 1``) and ``array``'s as rows ``start ..``, without
        re-encoding the old rows (after an add). Each value's old rows keep their block, the new ones
        follow them, so every posting list stays sorted."""
        new = InvertedIndex.build(array)
        keys = dict(self.keys)
        new_to_all = np.array([keys.setdefault(key, len(keys)) for key in new.keys], dtype=np.int64)
        n_old_keys, n_keys = len(self.offsets) - 1, len(keys)
        old_count = np.zeros(n_keys, np.int64)
        old_count[:n_old_keys] = np.diff(self.offsets)
        new_count = np.zeros(n_keys, np.int64)
        new_count[new_to_all] = np.diff(new.offsets)
        offsets = np.zeros(n_keys + 1, np.int64)
        np.cumsum(old_count + new_count, out=offsets[1:])
        rows = np.empty(int(offsets[-1]), np.int64)
        old_code = np.repeat(np.arange(n_old_keys), old_count[:n_old_keys])
        rows[np.arange(len(self.rows)) + (offsets[:n_old_keys] - self.offsets[:-1])[old_code]] = self.rows
        new_code = np.repeat(new_to_all, np.diff(new.offsets))
        within = np.arange(len(new.rows)) - np.repeat(new.offsets[:-1], np.diff(new.offsets))
        rows[offsets[new_code] + old_count[new_code] + within] = new.rows + start
        return InvertedIndex(keys, offsets, rows, _joined_nulls(self.nulls, start, new.nulls, len(array)))

    def lookup(self, value: Any) -> np.ndarray:
        code = self.keys.get(value)
        if code is None:
            return self.rows[:0]
        return self.rows[self.offsets[code]: self.offsets[code + 1]]

    def count(self, value: Any) -> int:
        code = self.keys.get(value)
        return 0 if code is None else int(self.offsets[code + 1] - self.offsets[code])

    def sorted_keys(self) -> tuple[list, np.ndarray]:
        """The (string) keys in code-point order, with their codes; made on first use."""
        if self._sorted is None:
            pairs = sorted(self.keys.items())
            self._sorted = [k for k, _ in pairs], np.array([c for _, c in pairs], dtype=np.int64)
        return self._sorted

    def like_codes(self, expr: Like) -> np.ndarray:
        """Codes of the keys ``expr``'s pattern matches (ignoring NOT): a prefix is a range of the
        sorted keys, another pattern is matched once per key."""
        keys, codes = self.sorted_keys()
        prefix = None if expr.case_insensitive else like_prefix(expr.pattern, expr.escape)
        if prefix is not None:
            text, exact = prefix
            if exact:
                code = self.keys.get(text)
                return np.array([] if code is None else [code], dtype=np.int64)
            end = successor(text)
            lo = bisect.bisect_left(keys, text)
            hi = len(keys) if end is None else bisect.bisect_left(keys, end)
            return codes[lo:hi]
        if not keys:
            return codes
        hit = pc.match_substring_regex(pa.array(keys, pa.string()), pattern=like_regex(expr.pattern, expr.escape),
                                       ignore_case=expr.case_insensitive)
        return codes[np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)]

    def rows_of_codes(self, codes: np.ndarray, n: int) -> "RowSet":
        return _union([self.rows[self.offsets[c]: self.offsets[c + 1]] for c in codes.tolist()], n)


@dataclasses.dataclass
class SortedIndex:
    """Non-null values sorted, with their rows: a range is two binary searches."""

    values: np.ndarray
    rows: np.ndarray
    nulls: np.ndarray | None
    type: pa.DataType
    _rank: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, array: pa.Array) -> "SortedIndex | None":
        t = array.type
        if pa.types.is_dictionary(t):
            array, t = array.dictionary_decode(), t.value_type
        if pa.types.is_date32(t) or pa.types.is_date64(t) or pa.types.is_timestamp(t):
            nums = pc.cast(pc.cast(array, pa.int64()) if not pa.types.is_date32(t) else pc.cast(array, pa.int32()),
                              pa.int64())
        elif pa.types.is_floating(t):
            nums = pc.cast(array, pa.float64())
        elif pa.types.is_uint64(t):
            nums = array  # kept unsigned: values past int64's range stay exact
        else:
            nums = pc.cast(array, pa.int64())
        nulls = _null_mask(array)
        valid_rows = np.flatnonzero(~nulls) if nulls is not None else np.arange(len(array))
        vals = nums.drop_null().to_numpy(zero_copy_only=False)
        order = np.argsort(vals, kind="stable")  # NaN sorts last: above every number, as in SQL
        return cls(vals[order], valid_rows[order], nulls, t)

    def extended(self, array: pa.Array, start: int) -> "SortedIndex | None":
        """A new index: this one's rows (``0 .. start - 1``) and ``array``'s as rows ``start ..`` (after an
        add). Two sorted runs merged by a stable sort: equal values stay in row order, as a rebuild
        would leave them."""
        new = SortedIndex.build(array)
        if new is None:
            return None
        values = np.concatenate([self.values, new.values])
        order = np.argsort(values, kind="stable")
        rows = np.concatenate([self.rows, new.rows + start])[order]
        return SortedIndex(values[order], rows, _joined_nulls(self.nulls, start, new.nulls, len(array)), self.type)

    def number(self, scalar: pa.Scalar) -> float | int | None:
        """The literal in the index's number space, or None when it cannot be compared exactly."""
        t = self.type
        if pa.types.is_temporal(t):
            if scalar.type != t:
                return None  # e.g. a date column against a timestamp literal: pyarrow decides
            return int(pc.cast(pa.array([scalar.as_py()], t), pa.int64() if not pa.types.is_date32(t)
                               else pa.int32())[0].as_py())
        value = scalar.as_py()
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def positions(self, sides: numbers.Sides) -> tuple[int, int]:
        """``values[start:stop]`` are the values satisfying ``sides`` (``vecdb.filters.numbers``; NaN,
        sorted last, is in the span exactly when no side bounds it from above)."""
        return self.locate(self.searches(sides))

    def searches(self, sides: numbers.Sides) -> tuple | bool:
        """The binary searches ``positions`` makes for ``sides``: (lower bound?, the literal as the values'
        type, the side to search from) each; made once per filter by a prepared one."""
        if isinstance(sides, bool):
            return sides
        convert = self.values.dtype.type
        return tuple((op in (">=", ">"), convert(v), "left" if op in (">=", "<") else "right") for op, v in sides)

    def locate(self, searches: tuple | bool) -> tuple[int, int]:
        """``positions`` from its ``searches``."""
        values = self.values
        if searches is True or searches is False:
            return 0, len(values) if searches else 0
        a, b = 0, len(values)
        for lower, value, side in searches:  # (the array's own method: np.searchsorted's wrapper costs ~1 us)
            at = int(values.searchsorted(value, side))
            if lower:
                a = max(a, at)
            else:
                b = min(b, at)
        return a, max(a, b)

    def range(self, sides: numbers.Sides) -> np.ndarray:
        a, b = self.positions(sides)
        return self.rows[a:b]

    def span(self, start: int, stop: int, n: int) -> "RowSet":
        """The rows of ``values[start:stop]``: listed (in value order) while few, else the span of ranks,
        whose mask is one sequential pass over the ranks when read, instead of scattering the rows at
        random (1M rows, half of them passing: 0.17 against 0.84 ms)."""
        if (stop - start) * SPARSE_RATIO <= n:
            return RowSet(n, rows=self.rows[start:stop], ordered=False)
        return RowSet(n, span=(self.rank_by_row(), start, stop))

    def rank_by_row(self) -> np.ndarray:
        """Each row's position in ``values`` (-1 for NULL): tests a row against a range without listing it."""
        if self._rank is None:
            n = len(self.rows) + (0 if self.nulls is None else int(np.count_nonzero(self.nulls)))
            rank = np.full(n, -1, dtype=np.int32 if n < 2**31 else np.int64)
            rank[self.rows] = np.arange(len(self.rows), dtype=rank.dtype)
            self._rank = rank
        return self._rank


class AttributeIndex:
    """Lazily built per-column indexes over one table (rebuild it when the table changes)."""

    def __init__(self, table: pa.Table, columns: dict[str, InvertedIndex | SortedIndex | None] | None = None):
        """``columns``: column indexes already at hand (read from disk, see
        ``vecdb.storage.attribute_indexes``), used as the cache as given (not copied: a dict subclass
        that materialises a column on first access keeps loading lazy); None for a column means
        "left to pyarrow". Columns it lacks are built on first use as usual."""
        self.table = table
        self.n = table.num_rows
        self._binder = _Binder(table.schema)
        self._columns: dict[str, InvertedIndex | SortedIndex | None] = {} if columns is None else columns
        self._bounds_of: dict[Expr, tuple | None] = {}  # range leaf -> its bounds, see ``_bounds``
        self._prepared: dict[Expr, Callable[[], RowSet] | None] = {}  # filter -> its lookups, see ``_prepare``

    def _key(self, info: _Column, value: Any) -> Any:
        """``value`` as a key of ``info``'s inverted index (the binder converts each literal once).
        Numbers stay Python numbers: a dict compares ints and floats exactly; a string is its own key
        in a string column (what its Arrow scalar's ``as_py()`` gives back)."""
        if info.kind in ("int", "float") and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if info.kind == "string" and isinstance(value, str):
            return value
        return self._binder.scalar(info, value).as_py()

    def _bounds(self, expr: Between | Compare, info: _Column, index: SortedIndex) -> tuple | None:
        """``_range_bounds``, once per filter node: the same filters come back query after query."""
        bounds = self._bounds_of.get(expr, _MISSING)
        if bounds is _MISSING:
            if len(self._bounds_of) >= _MAX_LITERALS:
                self._bounds_of.clear()
            bounds = self._bounds_of[expr] = _range_bounds(expr, info, index)
        return bounds

    def column(self, name: str) -> InvertedIndex | SortedIndex | None:
        try:
            return self._columns[name]  # (one lookup: a saved one not made yet is made by ``__missing__``)
        except KeyError:
            pass
        info = self._binder.column(name)
        array = _array(self.table.column(name))
        if info.is_list or info.kind in ("string", "bool"):
            self._columns[name] = InvertedIndex.build(array)
        else:
            self._columns[name] = SortedIndex.build(array)
        return self._columns[name]

    def extended(self, table: pa.Table) -> "AttributeIndex":
        """The index of ``table``: this index's table with rows appended, same schema (after an add). The
        column indexes made so far are extended by the new rows instead of rebuilt on the next filter;
        the binder and the bounds memo carry over (they depend on the schema only)."""
        start = self.n
        out = AttributeIndex(table)
        out._binder, out._bounds_of = self._binder, self._bounds_of
        for name, index in list(dict.items(self._columns)):  # made ones only (saved ones may be pending)
            if index is not None:
                index = index.extended(_array(table.column(name).slice(start)), start)
            out._columns[name] = index
        return out

    def build_all(self) -> dict[str, InvertedIndex | SortedIndex | None]:
        """Build every column's index now instead of on first use (to save them with the collection's
        indexes); returns them by column name. Columns filters cannot use (unsupported types, or an
        index Arrow cannot build) are left out, and stay as they were: an error when a filter names them."""
        built: dict[str, InvertedIndex | SortedIndex | None] = {}
        for name in self.table.column_names:
            try:
                built[name] = self.column(name)
            except (FilterError, pa.ArrowException):
                continue
        return built

    # ------------------------------------------------------------------ evaluation
    def bind(self, expr: Expr) -> BoundFilter:
        """``expr`` checked against this table's schema by the binder this index keeps (columns and
        literals converted once, shared with the index lookups)."""
        return BoundFilter(expr, self.table.schema, self._binder)

    def evaluate(self, bound: BoundFilter) -> np.ndarray:
        """The filter's rows as a bool mask (NULL -> False), equal to ``bound.evaluate(table)``."""
        return self.select(bound).mask

    def select(self, bound: BoundFilter) -> "RowSet":
        """The filter's rows (NULL -> False) as a ``RowSet``: sorted row numbers when few pass."""
        expr = bound.expr
        run = self._prepared.get(expr, _MISSING)
        if run is _MISSING:
            if len(self._prepared) >= _MAX_LITERALS:
                self._prepared.clear()
            run = self._prepared[expr] = self._prepare(expr) if expr.depth <= _SHALLOW else None
        if run is not None:
            return run()
        with deep(expr):
            return self._eval(expr, False)[0]

    def _prepare(self, expr: Expr) -> "Callable[[], RowSet] | None":
        """``expr``'s TRUE rows as a call that runs only its index lookups, for the usual shapes (a key
        of an inverted index or a few, a range of a sorted column, AND and OR of them); None for any
        other (``_eval`` walks it). The call does what ``_eval`` does for the node, in the same order
        with the same helpers, and returns the same rows, but the tests that pick each step (node and
        index types, the column's binding, the literal's key, the range's sides: ~35-45% of a small
        filter's 2-14 us on arxiv) are made once per filter and index, at its first evaluation, as a
        prepared statement keeps its plan. Nothing read from the rows is kept: every call looks up
        its keys and ranges again. The calls hold the column indexes, not this object (no cycle keeps
        an old snapshot's indexes alive until the collector runs)."""
        n = self.n
        pairs = self._postings(expr)
        if pairs is not None:  # keys of inverted indexes (an OR of them too): the union of their rows
            if len(pairs) == 1:
                index, key = pairs[0]
                return lambda: RowSet(n, rows=index.lookup(key))
            return lambda: _union([index.lookup(key) for index, key in pairs], n)
        if isinstance(expr, Or):
            runs = [self._prepare(op) for op in expr.operands]
            if any(run is None for run in runs):
                return None
            return lambda: _or([(run(), None) for run in runs], n)[0]
        if isinstance(expr, And):  # as ``_and_known``: ranges tested by rank against the others' rows
            ranges, others = [], []
            for op in expr.operands:
                sides = self._range_sides(op)
                if sides is not None:
                    ranges.append(sides)
                    continue
                run = self._prepare(op)
                if run is None:
                    return None
                others.append(run)

            searches = [(index, index.searches(bounds)) for index, bounds in ranges]

            def run_and() -> RowSet:
                leaves = [_RangeLeaf(index, *index.locate(search), n) for index, search in searches]
                return _and_ranges([(run(), None) for run in others], leaves, n)
            return run_and
        if type(expr) not in _COLUMN_LEAVES or (isinstance(expr, Between) and expr.symmetric) \
                or isinstance(expr, (Like, IsBool, ContainsAll)) or (isinstance(expr, In) and not expr.values):
            return None
        if isinstance(self.column(expr.column), InvertedIndex):
            return None  # (its positive forms are ``_postings``)
        sides = self._range_sides(expr)
        if sides is None:
            return None
        sorted_index, search = sides[0], sides[0].searches(sides[1])
        return lambda: sorted_index.span(*sorted_index.locate(search), n)

    def _postings(self, expr: Expr) -> "list[tuple[InvertedIndex, Any]] | None":
        """The (inverted index, key) pairs whose rows' union is ``expr``'s TRUE rows (as ``_rows``: a
        positive ``=``, a list's ``IN``, ``IN (...)``, ``ANY``), or of an OR of such tests of one key each,
        on any columns; None for any other node. An OR of lookups is then one union of their row lists, not a set per
        operand merged by ``_or`` (arxiv, two keys of 58 and 15 rows: ~11 -> ~7 us)."""
        if isinstance(expr, Or):  # of one key each: ``_or`` would take the union of the same row lists
            pairs: list[tuple[InvertedIndex, Any]] = []
            for op in expr.operands:
                found = None if isinstance(op, Or) else self._postings(op)
                if found is None or len(found) != 1:
                    return None
                pairs += found
            return pairs
        kind = type(expr)
        if kind not in (Compare, Contains, In, ContainsAny) or kind is Compare and expr.op != "=" \
                or kind is In and (expr.negated or not expr.values):
            return None
        info = self._binder.column(expr.column)
        index = self.column(expr.column)
        if not isinstance(index, InvertedIndex):
            return None
        return [(index, key) for key in self._keys(expr, info)]

    def _range_sides(self, expr: Expr) -> "tuple[SortedIndex, numbers.Sides] | None":
        """(index, sides) when ``expr`` is a positive comparison on a sorted column (``_range_leaf``)."""
        if not isinstance(expr, (Between, Compare)) or (isinstance(expr, Compare) and expr.op == "!=") \
                or (isinstance(expr, Between) and expr.symmetric):
            return None
        info = self._binder.column(expr.column)
        index = self.column(expr.column)
        if not isinstance(index, SortedIndex):
            return None
        bounds = self._bounds(expr, info, index)
        return None if bounds is None else (index, bounds)

    def _fallback(self, expr: Expr) -> Tri:
        result = bind(expr, self.table.schema).evaluate_arrow(self.table)
        true = np.ascontiguousarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)
        return RowSet(self.n, mask=true), _null_mask(result)

    def _eval(self, expr: Expr, unknown: bool) -> Tri:
        """(rows TRUE, rows UNKNOWN or None). The TRUE rows never depend on the operands' UNKNOWN rows;
        only NOT needs them, so ``unknown=False`` skips that work (the UNKNOWN part is then None)."""
        if type(expr) in _COLUMN_LEAVES:  # the usual node, without walking the tests below (~1 us a node)
            return self._leaf(expr, unknown)
        if isinstance(expr, And) and not isinstance(expr, Or) and not unknown:
            return self._and_known(expr), None
        if isinstance(expr, And):  # And and Or (Or subclasses And)
            parts = [self._eval(op, unknown) for op in expr.operands]
            return _or(parts, self.n) if isinstance(expr, Or) else _and(parts, self.n)
        if isinstance(expr, Not):
            true, unknown_rows = self._eval(expr.operand, True)
            false = ~true.mask if unknown_rows is None else ~(true.mask | unknown_rows)
            return RowSet(self.n, mask=false), unknown_rows
        if isinstance(expr, IsNull):
            self._binder.column(expr.column)
            nulls = _null_mask(_array(self.table.column(expr.column)))
            nulls = np.zeros(self.n, bool) if nulls is None else nulls
            return RowSet(self.n, mask=~nulls if expr.negated else nulls), None
        if isinstance(expr, (ColumnCompare, Length)):
            return self._fallback(expr)
        return self._leaf(expr, unknown)

    def _leaf(self, expr: Expr, unknown: bool) -> Tri:
        """``_eval`` of a test of one column against literals (``_COLUMN_LEAVES``)."""
        if isinstance(expr, Between) and expr.symmetric:
            return self._eval(expr.asymmetric(), unknown)
        info = self._binder.column(expr.column)
        if isinstance(expr, In) and not expr.values:  # non-NULL: IN () false, NOT IN () true; NULL: NULL
            nulls = _null_mask(_array(self.table.column(expr.column)))
            if not expr.negated:
                true = RowSet.none(self.n)
            else:
                true = RowSet.all(self.n) if nulls is None else RowSet(self.n, mask=~nulls)
            return true, nulls if unknown else None
        index = self.column(expr.column)
        if isinstance(expr, IsBool) and isinstance(index, InvertedIndex):  # never NULL
            true = RowSet(self.n, rows=index.lookup(expr.value))
            return (RowSet(self.n, mask=~true.mask) if expr.negated else true), None
        if index is None:
            return self._fallback(expr)
        rows = self._rows(expr, info, index)
        if rows is None:
            return self._fallback(expr)
        true, negate = rows
        if negate:  # != / NOT IN: the non-null rows that are not in ``true``
            true = RowSet(self.n, mask=~true.mask if index.nulls is None else ~(true.mask | index.nulls))
        return true, index.nulls if unknown else None

    def _and_known(self, expr: And) -> "RowSet":
        """AND when only its TRUE rows are wanted: list the operands an index answers cheaply (or the
        narrowest range), then test the surviving rows against the other ranges by rank, so a wide
        range costs the rows that reach it, not the rows it holds."""
        parts: list[Tri] = []
        ranges: list[_RangeLeaf] = []
        for op in expr.operands:
            leaf = self._range_leaf(op)
            if leaf is None:
                parts.append(self._eval(op, False))
            else:
                ranges.append(leaf)
        return _and_ranges(parts, ranges, self.n)

    def _range_leaf(self, expr: Expr) -> "_RangeLeaf | None":
        """``expr`` as a not-yet-listed range when it is a positive comparison on a sorted column."""
        sides = self._range_sides(expr)
        if sides is None:
            return None
        index, bounds = sides
        return _RangeLeaf(index, *index.positions(bounds), self.n)

    def _keys(self, expr: Compare | Contains | In | ContainsAny | ContainsAll, info: _Column) -> list:
        """The inverted-index keys ``expr`` names, each once (one for ``=`` / ``!=`` and ``Contains``)."""
        if isinstance(expr, (Compare, Contains)):
            return [self._key(info, expr.value)]
        return list(dict.fromkeys(self._key(info, v) for v in expr.values))

    def _rows(self, expr: Expr, info: _Column, index: InvertedIndex | SortedIndex) -> tuple["RowSet", bool] | None:
        """(rows matching the positive form of ``expr``, whether to negate) or None (fallback)."""
        n = self.n
        if isinstance(index, InvertedIndex):
            if isinstance(expr, Compare) and expr.op in ("=", "!=") or isinstance(expr, Contains):
                # one key (the usual list filter: 'cs.CL' IN categories)
                negate = isinstance(expr, Compare) and expr.op == "!="
                return RowSet(n, rows=index.lookup(self._keys(expr, info)[0])), negate
            if isinstance(expr, ContainsAll):
                keys = self._keys(expr, info)
                if not keys:
                    return (RowSet.all(n) if index.nulls is None else RowSet(n, mask=~index.nulls)), False
                return _and([(RowSet(n, rows=index.lookup(key)), None) for key in keys], n)[0], False
            if isinstance(expr, (In, ContainsAny)):
                rows = _union([index.lookup(key) for key in self._keys(expr, info)], n)
                return rows, isinstance(expr, In) and expr.negated
            if isinstance(expr, Like):
                return index.rows_of_codes(index.like_codes(expr), n), expr.negated
            return None
        if isinstance(expr, (Between, Compare)):
            bounds = self._bounds(expr, info, index)
            if bounds is None:
                return None
            return index.span(*index.positions(bounds), n), isinstance(expr, Compare) and expr.op == "!="
        if isinstance(expr, In):
            parts = []
            for v in dict.fromkeys(_member(info, index, v) for v in expr.values):
                if v is _MISSING:
                    return None
                if v is not None:
                    parts.append(index.range(((">=", v), ("<=", v))))
            if not parts:
                return RowSet.none(n), expr.negated
            rows = parts[0] if len(parts) == 1 else _distinct(np.concatenate(parts))  # a row once, however listed
            return RowSet.unsorted(n, rows), expr.negated
        return None

    # ------------------------------------------------------------------ estimation
    def estimate(self, expr: Expr) -> float:
        """Estimated fraction of rows passing, from counts in the indexes (independence for AND/OR)."""
        if self.n == 0:
            return 0.0
        with deep(expr):
            return self._estimate(expr)

    def _estimate(self, expr: Expr) -> float:
        if isinstance(expr, (ColumnCompare, Length, Like, IsBool)):
            return 1.0 / 3.0
        if isinstance(expr, Between) and expr.symmetric:
            return self._estimate(expr.asymmetric())
        if isinstance(expr, Or):
            miss = 1.0
            for op in expr.operands:
                miss *= 1.0 - self._estimate(op)
            return 1.0 - miss
        if isinstance(expr, And):
            return float(np.prod([self._estimate(op) for op in expr.operands]))
        if isinstance(expr, Not):
            return 1.0 - self._estimate(expr.operand)
        try:
            index = self.column(expr.column) if not isinstance(expr, IsNull) else None
            info = self._binder.column(expr.column)
        except Exception:  # noqa: BLE001 - an estimate never raises; binding reports errors
            return 0.5
        if isinstance(index, InvertedIndex):
            if isinstance(expr, Compare) and expr.op in ("=", "!="):
                f = index.count(_scalar(info, expr.value).as_py()) / self.n
                return 1.0 - f if expr.op == "!=" else f
            if isinstance(expr, (Contains, ContainsAny, In)):
                values = (expr.value,) if isinstance(expr, Contains) else expr.values
                f = min(1.0, sum(index.count(_scalar(info, v).as_py()) for v in values) / self.n)
                return 1.0 - f if isinstance(expr, In) and expr.negated else f
        if isinstance(index, SortedIndex) and isinstance(expr, (Between, Compare)):
            try:
                return self._eval(expr, False)[0].count / self.n
            except Exception:  # noqa: BLE001
                return 0.5
        return 1.0 / 3.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _member(info: _Column, index: SortedIndex, value: Any) -> Any:
    """An IN value in the index's number space; None when no value can equal it, _MISSING when the index
    cannot tell (pyarrow decides)."""
    if info.kind in ("int", "float") and _is_number(value):
        return numbers.member(info.kind, info.value_type, value)
    number = index.number(_scalar(info, value))
    return _MISSING if number is None else number


def _range_bounds(expr: Between | Compare, info: _Column, index: SortedIndex) -> numbers.Sides | None:
    """The ``Sides`` of the positive form (``!=`` -> ``=``) in the index's number space, None when the
    literal cannot be compared exactly there."""
    if info.kind in ("int", "float"):
        if isinstance(expr, Between):
            if not (_is_number(expr.low) and _is_number(expr.high)):
                return None
            return numbers.between_sides(info.kind, info.value_type, expr.low, expr.high)  # type: ignore[arg-type]
        if not _is_number(expr.value):
            return None
        return numbers.sides(info.kind, info.value_type, "=" if expr.op == "!=" else expr.op, expr.value)  # type: ignore[arg-type]
    if isinstance(expr, Between):
        low, high = index.number(_scalar(info, expr.low)), index.number(_scalar(info, expr.high))
        return None if low is None or high is None else ((">=", low), ("<=", high))
    value = index.number(_scalar(info, expr.value))
    if value is None:
        return None
    op = "=" if expr.op == "!=" else expr.op
    return ((">=", value), ("<=", value)) if op == "=" else ((op, value),)


class RowSet:
    """The rows a filter node is TRUE for: row numbers while few pass, else a bool mask over all ``n``
    rows, or (a wide range over a sorted column) the span of ranks ``[start, stop)`` the rows must hold;
    each form is made from the others on first use. Few rows make AND, OR and the exact scan cost
    about the rows touched, not ``n``. Row numbers from a range come in value order and are sorted only
    if something needs them sorted (the exact scan does not). A span becomes a mask only when one is
    read: a batch's filtered graph walk packs its bits straight from the ranks (``bits``). Never
    mutated in place: masks may be shared with the column indexes."""

    __slots__ = ("n", "_rows", "_mask", "_span", "_ordered", "_count")

    def __init__(self, n: int, *, rows: np.ndarray | None = None, mask: np.ndarray | None = None,
                 span: tuple[np.ndarray, int, int] | None = None, ordered: bool = True,
                 count: int | None = None):
        """``count``: the number of rows set in ``mask``, when the caller knows it (else counted once,
        on first use: ~80 us for a mask over 1M rows). ``span``: ``(rank, start, stop)``, the rows whose
        ``rank`` lies in ``[start, stop)`` (a NULL row's rank is -1: never inside)."""
        if span is not None:
            count = span[2] - span[1]
        self.n, self._rows, self._mask, self._span, self._ordered, self._count = n, rows, mask, span, ordered, count

    @classmethod
    def all(cls, n: int) -> "RowSet":
        return cls(n, mask=np.ones(n, dtype=bool))

    @classmethod
    def none(cls, n: int) -> "RowSet":
        return cls(n, rows=np.empty(0, dtype=np.int64))

    @classmethod
    def unsorted(cls, n: int, rows: np.ndarray) -> "RowSet":
        """From distinct row numbers in any order: kept as they are while sparse, else scattered into a mask."""
        if rows.shape[0] * SPARSE_RATIO <= n:
            return cls(n, rows=rows, ordered=False)
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        return cls(n, mask=mask)

    @property
    def sparse(self) -> bool:
        """Held as row numbers (the cheap form for intersections and the exact scan)."""
        return self._rows is not None

    @property
    def rows(self) -> np.ndarray:
        """Sorted int64 row numbers."""
        if self._rows is None:
            self._rows = np.flatnonzero(self.mask)
        elif not self._ordered:
            self._rows, self._ordered = np.sort(self._rows), True
        return self._rows

    def listed(self) -> np.ndarray:
        """The row numbers, in whatever order is at hand, without keeping a list made from the mask (the
        set stays in its form): what a scan of the rows reads."""
        return self._rows if self._rows is not None else np.flatnonzero(self.mask)

    @property
    def any_order(self) -> np.ndarray:
        """The row numbers in whatever order is at hand (no sort)."""
        return self._rows if self._rows is not None else self.rows

    @property
    def mask(self) -> np.ndarray:
        if self._mask is None:
            if self._span is not None:
                self._mask = _masks().rank_mask(*self._span)
            else:
                mask = np.zeros(self.n, dtype=bool)
                mask[self._rows] = True
                self._mask = mask
        return self._mask

    def bits(self, n: int, out: np.ndarray) -> None:
        """The first ``n`` rows' membership packed into ``out`` (``np.packbits(mask[:n], bitorder="little")``;
        ``out``: ``ceil(n / 8)`` bytes). A span is packed from its ranks without making a mask (at 1M rows,
        half passing: 0.16 against 0.22 ms, and no 1 MB mask to fault in)."""
        from vecdb.kernels.masks import pack_bits, rank_bits

        if self._mask is None and self._span is not None:
            rank_bits(*self._span, n, out)
        else:
            pack_bits(self.mask, n, out)

    @property
    def count(self) -> int:
        if self._rows is not None:
            return int(self._rows.shape[0])
        if self._count is None:
            self._count = int(np.count_nonzero(self._mask))
        return self._count

    def __and__(self, mask: np.ndarray) -> "RowSet":
        """These rows that are also set in ``mask`` (e.g. the live rows)."""
        if self._rows is not None:
            return RowSet(self.n, rows=self._rows[mask[self._rows]], ordered=self._ordered)
        return RowSet(self.n, mask=self.mask & mask)


@dataclasses.dataclass
class _RangeLeaf:
    """A range over a sorted column not yet listed: ``count`` is known from two binary searches, and
    rows already selected by other operands of an AND are tested by rank instead of listing the range."""

    index: SortedIndex
    start: int
    stop: int
    n: int

    @property
    def count(self) -> int:
        return self.stop - self.start

    def select(self) -> RowSet:
        return self.index.span(self.start, self.stop, self.n)

    def keep(self, rows: np.ndarray) -> np.ndarray:
        # one pass: numpy's gather, compares and take ~3x slower
        return _masks().rows_in_span(rows, self.index.rank_by_row(), self.start, self.stop)


_MISSING = object()


@functools.cache
def _masks() -> Any:
    """``vecdb.kernels.masks``, imported on first use (importing vecdb does not import numba; an import
    statement in a call on a small filter's path cost ~1.5 us)."""
    from vecdb.kernels import masks

    return masks


_COLUMN_LEAVES = frozenset({Compare, Between, In, Contains, ContainsAny, ContainsAll, Like, IsBool})
_MAX_LITERALS = 65536  # memoised range bounds (and prepared filters) per table before a memo starts over

SPARSE_RATIO = 16  # row numbers while at most 1/16 of the rows pass (8 bytes a row vs 1 a row in a mask)


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rows of ``a`` (unique, any order) that are in ``b`` (sorted, unique), in ``a``'s order."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return a[:0]
    pos = np.searchsorted(b, a)
    np.minimum(pos, b.shape[0] - 1, out=pos)
    return a[b[pos] == a]


def _distinct(rows: np.ndarray) -> np.ndarray:
    """``np.unique(rows)`` for row numbers (numpy's hash-based ``unique`` cost ~100 us for a thousand
    rows, on the path of OR and IN filters)."""
    return _masks().distinct_rows(rows)


def _union(parts: list[np.ndarray], n: int) -> RowSet:
    """Sorted row lists (each unique) -> their union."""
    if not parts:
        return RowSet.none(n)
    if len(parts) == 1:
        return RowSet(n, rows=parts[0])
    total = sum(p.shape[0] for p in parts)
    if total * SPARSE_RATIO <= n:
        return RowSet(n, rows=_distinct(np.concatenate(parts)))  # sorts
    mask = np.zeros(n, dtype=bool)
    for p in parts:
        mask[p] = True
    return RowSet(n, mask=mask)


def _and(parts: list[Tri], n: int) -> Tri:
    sets = [t for t, _ in parts]
    sparse = [s for s in sets if s.sparse]
    if sparse:  # start from the fewest rows and keep those every other operand has
        first = min(sparse, key=lambda s: s.count)
        rows, ordered = first.any_order, first._ordered
        for s in sets:
            if s is not first:
                rows = _intersect(rows, s.rows) if s.sparse else rows[s.mask[rows]]
        true = RowSet(n, rows=rows, ordered=ordered)
    else:
        mask = sets[0].mask & sets[1].mask if len(sets) > 1 else sets[0].mask
        for s in sets[2:]:
            mask &= s.mask
        true = RowSet(n, mask=mask)
    if all(u is None for _, u in parts):
        return true, None
    false = np.zeros(n, dtype=bool)
    for t, u in parts:
        false |= ~t.mask if u is None else ~(t.mask | u)
    return true, ~(true.mask | false)


def _and_ranges(parts: list[Tri], ranges: "list[_RangeLeaf]", n: int) -> RowSet:
    """The rows of every part that lie in every range (``AttributeIndex._and_known``): the parts
    intersected (or the narrowest range listed, without parts), then the rows kept by rank, narrowest
    range first."""
    if len(ranges) > 1:
        ranges.sort(key=lambda leaf: leaf.count)
    if not parts:
        parts.append((ranges.pop(0).select(), None))
    true = parts[0][0] if len(parts) == 1 else _and(parts, n)[0]
    for leaf in ranges:
        if true.sparse:
            true = RowSet(n, rows=leaf.keep(true.any_order), ordered=true._ordered)
        else:
            true = _and([(true, None), (leaf.select(), None)], n)[0]
    return true


def _or(parts: list[Tri], n: int) -> Tri:
    sets = [t for t, _ in parts]
    if all(s.sparse for s in sets):
        true = _union([s.rows for s in sets], n)
    else:
        mask = np.zeros(n, dtype=bool)
        for s in sets:
            if s.sparse:
                mask[s.any_order] = True
            else:
                mask |= s.mask
        true = RowSet(n, mask=mask)
    if all(u is None for _, u in parts):
        return true, None
    unknown = np.zeros(n, dtype=bool)
    for _, u in parts:
        if u is not None:
            unknown |= u
    return true, unknown & ~true.mask


__all__ = ["AttributeIndex", "InvertedIndex", "RowSet", "SortedIndex"]
