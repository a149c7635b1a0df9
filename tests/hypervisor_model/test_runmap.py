"""The interval map behind ownership and physmaps, against a page-by-page reference."""

from __future__ import annotations

from itertools import pairwise
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypervisor_model import runmap as runmap_module
from hypervisor_model.runmap import Progression, Run, RunMap


def op_lists(steps: list[int]) -> st.SearchStrategy[list[tuple]]:
    """(insert start, length, value or None, step), (remove start, end), (many start,
    runs: each ``(gap, length, value, step)`` after the last), (progression start, count,
    length, value, step, stride) or (more count): the last progression carried on by
    ``count`` more runs; ``steps`` the strides an insert's values may take."""
    value = st.one_of(st.none(), st.integers(0, 60))
    insert = st.tuples(
        st.just("insert"), st.integers(0, 60), st.integers(1, 8), value, st.sampled_from(steps)
    )
    remove = st.tuples(st.just("remove"), st.integers(0, 60), st.integers(0, 70))
    piece = st.tuples(st.integers(0, 3), st.integers(1, 4), value, st.sampled_from(steps))
    many = st.tuples(st.just("many"), st.integers(0, 60), st.lists(piece, max_size=12))
    progression = st.tuples(
        st.just("progression"),
        st.integers(0, 60),
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(0, 60),
        st.sampled_from(steps),
        st.integers(-6, 6),
    )
    more = st.tuples(st.just("more"), st.integers(1, 3))
    return st.lists(st.one_of(insert, remove, many, progression, more), max_size=40)


ops = op_lists([1, -1])


def many_runs(start: int, pieces: list[tuple]) -> list[Run]:
    """The runs of an insert_many op: each ``gap`` keys after the one before."""
    runs = []
    for gap, length, value, step in pieces:
        start += gap
        runs.append(Run(start, length, value, step, None))
        start += length
    return runs


def check_against_pages(sequence: list[tuple], runmap: RunMap) -> None:
    """Every key maps to the value it was given; runs never overlap, are sorted, and two
    neighbours that continue each other are always merged (state grows with extents)."""
    pages: dict[int, int | None] = {}
    last: Progression | None = None
    for op in sequence:
        if op[0] in ("progression", "more"):
            if op[0] == "progression":
                last = Progression(op[1], op[3], op[4], op[5], None, op[2], op[6])
            elif last is not None:
                last = last._replace(
                    start=last.end, value=last.value + last.times * last.stride, times=op[1]
                )
            else:
                continue
            runs = last.runs()
            if any(k in pages for r in runs for k in range(r.start, r.end)):
                before = list(runmap)
                with pytest.raises(ValueError):
                    runmap.insert_progression(last)
                assert list(runmap) == before
                continue
            runmap.insert_progression(last)
            for r in runs:
                for k in range(r.start, r.end):
                    pages[k] = r.value_at(k)
        elif op[0] == "insert":
            _, start, length, value, step = op
            keys = range(start, start + length)
            if any(k in pages for k in keys):
                with pytest.raises(ValueError):
                    runmap.insert(start, length, value, step, None)
                continue
            runmap.insert(start, length, value, step, None)
            for i, k in enumerate(keys):
                pages[k] = None if value is None else value + step * i
        elif op[0] == "many":  # only over unmapped keys: an overlap may leave a part in
            runs = many_runs(op[1], op[2])
            mapped = any(k in pages for r in runs for k in range(r.start, r.end))
            assert runmap.meets(runs) == mapped
            if mapped:
                continue
            runmap.insert_many(runs)
            for r in runs:
                for k in range(r.start, r.end):
                    pages[k] = r.value_at(k)
        else:
            _, start, end = op
            removed = runmap.remove(start, end)
            assert sum(p.length for p in removed) == sum(start <= k < end for k in pages)
            for k in range(start, end):
                pages.pop(k, None)
        runs = list(runmap)
        assert len(runmap) == len(runs) and runmap.stored() <= len(runs)
        assert {k: r.value_at(k) for r in runs for k in range(r.start, r.end)} == pages
        for k in range(-1, 100):  # each key's run, and the pieces of each window of 8 keys
            assert runmap.find(k) == next((r for r in runs if r.start <= k < r.end), None)
            window = [r.piece(k, k + 8) for r in runs if r.start < k + 8 and r.end > k]
            assert runmap.overlapping(k, k + 8) == window
        for left, right in pairwise(runs):
            assert left.end <= right.start
            continued = left.end == right.start and ((left.value is None) == (right.value is None))
            if continued and left.value is not None and right.value is not None:
                step = right.value - left.value_at(left.end - 1)  # type: ignore[operator]
                steps = (1, -1) if not runmap.any_step else (step,) if step else ()
                continued = step in steps and all(
                    r.length == 1 or r.step == step for r in (left, right)
                )
            assert not continued, f"{left} and {right} should have merged"
        assert RunMap.from_runs(runs, any_step=runmap.any_step).overlapping(0, 1 << 10) == runs
        saved = runmap.saved()  # saved and read back: the same runs, in no more rows
        assert list(RunMap.from_saved(saved, any_step=runmap.any_step)) == runs
        assert len(saved) <= len(runs) and RunMap.saved_length(saved) == len(runs)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_runmap_maps_each_key_as_a_dict_of_pages_would(sequence: list[tuple]) -> None:
    check_against_pages(sequence, RunMap())


@settings(max_examples=200, deadline=None)
@given(ops)
def test_small_chunks_split_and_empty_as_one_map(sequence: list[tuple]) -> None:
    """The same with chunks of two runs, so inserts and removals cross chunk boundaries."""
    with patch.object(runmap_module, "CHUNK", 1):
        check_against_pages(sequence, RunMap())


any_step_ops = op_lists([1, -1, 2, -2, 3])


@settings(max_examples=200, deadline=None)
@given(any_step_ops)
def test_a_map_of_labels_merges_runs_of_any_step(sequence: list[tuple]) -> None:
    with patch.object(runmap_module, "CHUNK", 2):
        check_against_pages(sequence, RunMap(any_step=True))


def test_a_frame_map_refuses_other_steps() -> None:
    """Where values are frames, a run is a contiguous range: only steps of 1 and -1."""
    with pytest.raises(ValueError):
        RunMap().insert(0, 2, 10, 2, None)
    with pytest.raises(ValueError):
        RunMap.from_runs([Run(0, 2, 10, 2, None)])


def test_saved_runs_load_merged_and_in_order() -> None:
    """from_runs merges runs that continue each other and refuses overlap or disorder."""
    loaded = RunMap.from_runs([Run(0, 2, 9, -1, None), Run(2, 1, 7, -1, None)])
    assert list(loaded) == [Run(0, 3, 9, -1, None)]
    for bad in ([Run(4, 2, None, 1, None), Run(0, 1, None, 1, None)], [Run(0, 3, 1, 1, None)] * 2):
        with pytest.raises(ValueError):
            RunMap.from_runs(bad)


def test_pages_of_alternating_nodes_are_two_runs() -> None:
    """A PV guest's 4 KiB pages from two nodes in turn: gfn 0, 2, 4... on one node's frames
    top down, 1, 3, 5... on the other's. Per node the frames ascend as the gfns descend by 2,
    so 8 pages are two runs of step -2, not eight runs."""
    pages = RunMap(any_step=True)
    for gfn in range(8):
        node_base = 100 if gfn % 2 == 0 else 200
        pages.insert(node_base + 3 - gfn // 2, 1, gfn, 1, None)  # mfn -> gfn
    assert list(pages) == [Run(100, 4, 6, -2, None), Run(200, 4, 7, -2, None)]


def test_top_down_pages_become_one_descending_run() -> None:
    """Order-0 pages come from the top of a block down (the buddy keeps the upper half), so
    gfns 0, 1, 2 on MFNs 9, 8, 7 are one run with step -1."""
    p2m = RunMap()
    for gfn, mfn in enumerate([9, 8, 7]):
        p2m.insert(gfn, 1, mfn, 1, None)
    assert list(p2m) == [Run(0, 3, 9, -1, None)]
    assert p2m.remove(1, 2) == [Run(1, 1, 8, 1, None)]
    assert list(p2m) == [Run(0, 1, 9, 1, None), Run(2, 1, 7, 1, None)]


def test_a_saved_map_is_read_when_first_used() -> None:
    """from_saved keeps the rows until the map is used; then it is the map from_runs makes
    (merged), and rows that overlap are a ValueError at that first use."""
    saved = RunMap.from_saved([[0, 2, 9, -1], [2, 1, 7, 1]], any_step=False)
    assert "_saved" in vars(saved)  # nothing read yet
    assert list(saved) == [Run(0, 3, 9, -1, None)] and len(saved) == 1
    damaged = RunMap.from_saved([[0, 3, None, 1], [1, 1, None, 1]])
    with pytest.raises(ValueError):
        damaged.find(0)
    with pytest.raises(ValueError):  # still damaged, still unread
        len(damaged)


def test_extents_from_alternating_nodes_save_as_one_row_per_node() -> None:
    """A PV guest's 2 MiB extents (here 4 pages) taken from two nodes in turn: gfns 0-3 on
    node A's frames 100-103, gfns 4-7 on node B's 200-203, gfns 8-11 on A's 104-107... Per
    node, each run is 4 frames and 8 gfns on from the last: five runs, one saved row each."""
    pages = RunMap(any_step=True)
    for extent in range(10):
        node_base = 100 if extent % 2 == 0 else 200
        pages.insert(node_base + 4 * (extent // 2), 4, 4 * extent, 1, None)  # mfn -> gfn
    assert len(pages) == 10
    assert pages.saved() == [[100, 4, 0, 1, 5, 4, 8], [200, 4, 4, 1, 5, 4, 8]]
    assert RunMap.saved_length(pages.saved()) == 10
    assert list(RunMap.from_saved(pages.saved(), any_step=True)) == list(pages)


def test_a_progression_starts_where_it_is_longest() -> None:
    """Keys 0, 5, 7, 9 (values 10, 20, 30, 40): 0 -> 5 is a stride of 5 keys, but 5 -> 7 -> 9
    recur at 2 keys and 10 values, so 0 stays a plain row and the other three are one. Two
    runs alone are two plain rows (a row of 7 would save nothing), and runs without values
    recur with a value stride of 0."""
    runs = RunMap()
    for key, value in ((0, 10), (5, 20), (7, 30), (9, 40)):
        runs.insert(key, 1, value, 1, None)
    assert runs.saved() == [[0, 1, 10, 1], [5, 1, 20, 1, 3, 2, 10]]
    pair = RunMap.from_runs([Run(0, 2, 5, -1, None), Run(4, 2, 9, -1, None)])
    assert pair.saved() == [[0, 2, 5, -1], [4, 2, 9, -1]]
    holes = RunMap.from_runs([Run(k, 1, None, 1, None) for k in (1, 3, 5, 7)])
    assert holes.saved() == [[1, 1, None, 1, 4, 2, 0]]
    assert list(RunMap.from_saved(holes.saved())) == list(holes)


def test_a_saved_progression_that_overlaps_is_refused_when_read() -> None:
    """Three runs of 4 keys every 2 keys overlap: a ValueError at first use, as for rows."""
    damaged = RunMap.from_saved([[0, 4, 0, 1, 3, 2, 8]])
    with pytest.raises(ValueError):
        len(damaged)


progressions = st.lists(  # (count, length, value or None, key gap after each run, value stride)
    st.tuples(
        st.integers(1, 6),
        st.integers(1, 4),
        st.one_of(st.none(), st.integers(0, 1000)),
        st.integers(0, 3),
        st.integers(-5, 5),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(progressions)
def test_runs_that_recur_save_and_load_as_they_were(groups: list[tuple]) -> None:
    """Runs laid out as progressions (and mixtures of them) come back from their saved rows
    as the same map, in no more rows than runs."""
    pages = RunMap(any_step=True)
    key = 0
    for count, length, value, gap, value_stride in groups:
        for i in range(count):
            at = None if value is None else value + 200 * length + i * value_stride
            pages.insert(key, length, at, 1, None)
            key += length + gap
    saved = pages.saved()
    assert list(RunMap.from_saved(saved, any_step=True)) == list(pages)
    assert len(saved) <= len(pages) and RunMap.saved_length(saved) == len(pages)


def test_insert_many_refuses_mapped_keys() -> None:
    """Keys 5..9 are mapped: runs at 0..1 and 8..10 meet them at 8, and the map is left as
    it was (both runs fall in its one chunk, which is spliced only once checked)."""
    runmap = RunMap()
    runmap.insert(5, 5, 100, 1, None)
    with pytest.raises(ValueError):
        runmap.insert_many([Run(0, 2, None, 1, None), Run(8, 3, None, 1, None)])
    assert list(runmap) == [Run(5, 5, 100, 1, None)]


def test_extents_carved_from_one_block_are_one_element() -> None:
    """Three batches of four 4-page extents at gfns 0, 4, 8... on MFNs falling by 4 from
    1000 (a block split from the top): twelve runs, none continuing the next (1000..1003
    is followed by 996..999), held as one element. Unmapping gfn 21 cuts run 5 (gfns
    20..23, MFNs 980..983) in two: 20 -> 980 and 22..23 -> 982..983."""
    p2m = RunMap()
    for batch in range(3):
        p2m.insert_progression(Progression(16 * batch, 4, 1000 - 16 * batch, 1, None, 4, -4))
    runs = [Run(4 * i, 4, 1000 - 4 * i, 1, None) for i in range(12)]
    assert list(p2m) == runs and len(p2m) == 12 and p2m.stored() == 1
    assert p2m.find(21) == Run(20, 4, 980, 1, None)
    assert p2m.overlapping(6, 9) == [Run(6, 2, 998, 1, None), Run(8, 1, 992, 1, None)]
    assert p2m.remove(21, 22) == [Run(21, 1, 981, 1, None)]
    assert list(p2m) == [*runs[:5], Run(20, 1, 980, 1, None), Run(22, 2, 982, 1, None), *runs[6:]]


def test_a_progression_whose_runs_continue_is_one_run() -> None:
    """Runs of 2 keys whose values go on by 2 continue one another, and the run before
    them: keys 0..5 map to 10..15, one run."""
    p2m = RunMap()
    p2m.insert(0, 2, 10, 1, None)
    p2m.insert_progression(Progression(2, 2, 12, 1, None, 2, 2))
    assert list(p2m) == [Run(0, 6, 10, 1, None)] and p2m.stored() == 1
