"""Huge pages for FAISS' graph memory (``vecdb.pages``): only whole 2 MiB pages inside an array are
advised, collapse first, the background hint where the kernel has no collapse; content and answers unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb import pages
from vecdb.indexes.faiss_indexes import HNSWIndex
from vecdb.indexes.gpu import CagraIndex

from .conftest import small_table


class _Recorder:
    def __init__(self, refuse: set[int] = frozenset()):
        self.calls: list[tuple[int, int, int]] = []
        self.refuse = refuse

    def __call__(self, start: int, length: int, advice: int) -> int:
        self.calls.append((start, length, advice))
        return -1 if advice in self.refuse else 0


@pytest.fixture
def recorder(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(pages, "_madvise", lambda: rec)
    monkeypatch.setattr(pages.sys, "platform", "linux")
    monkeypatch.delenv("VECDB_HUGE_PAGES", raising=False)
    return rec


@pytest.mark.parametrize("offset", [0, 4096, 12_345 * 4])
def test_only_whole_huge_pages_inside_the_array_are_advised(recorder, offset):
    base = np.zeros(5 * pages.HUGE_PAGE // 4 + offset, np.float32)
    array = base[offset // 4:]
    address = array.__array_interface__["data"][0]
    advised = pages.back_with_huge_pages(array)
    (start, length, advice), = recorder.calls
    assert advice == pages.MADV_COLLAPSE
    assert start % pages.HUGE_PAGE == 0 and length % pages.HUGE_PAGE == 0 and advised == length
    assert address <= start and start + length <= address + array.nbytes  # nothing outside the array
    assert start - address < pages.HUGE_PAGE and address + array.nbytes - (start + length) < pages.HUGE_PAGE
    assert length >= 4 * pages.HUGE_PAGE


def test_the_background_hint_where_the_kernel_cannot_collapse(recorder):
    recorder.refuse = {pages.MADV_COLLAPSE}
    array = np.zeros(4 * pages.HUGE_PAGE, np.uint8)
    assert pages.back_with_huge_pages(array) > 0
    assert [c[2] for c in recorder.calls] == [pages.MADV_COLLAPSE, pages.MADV_HUGEPAGE]
    recorder.calls.clear()
    recorder.refuse = {pages.MADV_COLLAPSE, pages.MADV_HUGEPAGE}  # THP not built in: no error, nothing advised
    assert pages.back_with_huge_pages(array) == 0


def test_small_arrays_another_system_or_switched_off_advise_nothing(recorder, monkeypatch):
    assert pages.back_with_huge_pages(np.zeros(pages.HUGE_PAGE // 2, np.uint8)) == 0
    monkeypatch.setenv("VECDB_HUGE_PAGES", "0")
    assert pages.back_with_huge_pages(np.zeros(4 * pages.HUGE_PAGE, np.uint8)) == 0
    monkeypatch.delenv("VECDB_HUGE_PAGES")
    monkeypatch.setattr(pages.sys, "platform", "darwin")
    assert pages.back_with_huge_pages(np.zeros(4 * pages.HUGE_PAGE, np.uint8)) == 0
    assert recorder.calls == []


def test_the_real_call_leaves_the_content_as_it_was():
    rng = np.random.default_rng(0)
    array = rng.standard_normal(3 * pages.HUGE_PAGE // 4).astype(np.float32)
    before = array.copy()
    advised = pages.back_with_huge_pages(array)
    assert advised % pages.HUGE_PAGE == 0 and advised <= array.nbytes
    np.testing.assert_array_equal(array, before)


def _spans(rec: _Recorder) -> list[tuple[int, int]]:
    return [(start, start + length) for start, length, _ in rec.calls]


def _inside(spans: list[tuple[int, int]], array: np.ndarray) -> bool:
    address = array.__array_interface__["data"][0]
    return any(address <= a and b <= address + array.nbytes for a, b in spans)


@pytest.mark.parametrize("make", [lambda: HNSWIndex(64, "l2", M=32, ef_construction=40),
                                  lambda: CagraIndex(64, "l2", graph_degree=64, ef_construction=40, device="cpu")],
                         ids=["hnsw", "cagra-on-cpu"])
def test_graph_indexes_advise_their_rows_and_neighbour_lists_on_build_add_and_load(recorder, tmp_path, make):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((20_000, 64)).astype(np.float32)  # 5 MiB of rows, ~5 MiB of neighbour lists
    index = make()
    index.build(vectors)
    rows, neighbors = index.held_rows(), index.graph_arrays()[1]
    assert _inside(_spans(recorder), rows) and _inside(_spans(recorder), neighbors)
    recorder.calls.clear()
    index.add(rng.standard_normal((2000, 64)).astype(np.float32))
    assert _inside(_spans(recorder), index.held_rows())  # where the rows are now (they may have moved)
    recorder.calls.clear()
    loaded = type(index).load(index.save(tmp_path / "g"), 64, "l2", index.config(), np.empty((0, 64), np.float32))
    assert _inside(_spans(recorder), loaded.held_rows()) and _inside(_spans(recorder), loaded.graph_arrays()[1])


def test_answers_are_the_same_with_and_without_huge_pages(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    n, d = 6000, 384
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    path = tmp_path / "c.vdb"
    col = vecdb.create(path, dim=d, metric="cosine")
    col.add(vectors, small_table(rng, n))
    col.build_index("hnsw", M=16, ef_construction=40)
    col.close()
    queries = rng.standard_normal((40, d)).astype(np.float32)
    found = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("VECDB_HUGE_PAGES", setting)
        with vecdb.open(path) as c:
            plain = c.search(queries, 10)
            filtered = c.search(queries, 10, where="tag = 'b' AND year >= 2010")
            found[setting] = (plain.ids, plain.scores, filtered.ids, filtered.scores)
    for a, b in zip(found["0"], found["1"]):
        np.testing.assert_array_equal(a, b)
