"""The interval map behind ownership and physmaps, against a page-by-page reference."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypervisor_model.runmap import Run, RunMap

# (insert start, length, value or None, step) or (remove start, end)
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("insert"),
            st.integers(0, 60),
            st.integers(1, 8),
            st.one_of(st.none(), st.integers(0, 60)),
            st.sampled_from([1, -1]),
        ),
        st.tuples(st.just("remove"), st.integers(0, 60), st.integers(0, 70)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_runmap_maps_each_key_as_a_dict_of_pages_would(sequence: list[tuple]) -> None:
    """Every key maps to the value it was given; runs never overlap, are sorted, and two
    neighbours that continue each other are always merged (state grows with extents)."""
    runmap, pages = RunMap(), {}
    for op in sequence:
        if op[0] == "insert":
            _, start, length, value, step = op
            keys = range(start, start + length)
            if any(k in pages for k in keys):
                with pytest.raises(ValueError):
                    runmap.insert(start, length, value, step, None)
                continue
            runmap.insert(start, length, value, step, None)
            for i, k in enumerate(keys):
                pages[k] = None if value is None else value + step * i
        else:
            _, start, end = op
            removed = runmap.remove(start, end)
            assert sum(p.length for p in removed) == sum(start <= k < end for k in pages)
            for k in range(start, end):
                pages.pop(k, None)
        runs = list(runmap)
        assert {k: r.value_at(k) for r in runs for k in range(r.start, r.end)} == pages
        for left, right in pairwise(runs):
            assert left.end <= right.start
            continued = left.end == right.start and ((left.value is None) == (right.value is None))
            if continued and left.value is not None and right.value is not None:
                step = right.value - left.value_at(left.end - 1)  # type: ignore[operator]
                continued = step in (1, -1) and all(
                    r.length == 1 or r.step == step for r in (left, right)
                )
            assert not continued, f"{left} and {right} should have merged"


def test_top_down_pages_become_one_descending_run() -> None:
    """Order-0 pages come from the top of a block down (the buddy keeps the upper half), so
    gfns 0, 1, 2 on MFNs 9, 8, 7 are one run with step -1."""
    p2m = RunMap()
    for gfn, mfn in enumerate([9, 8, 7]):
        p2m.insert(gfn, 1, mfn, 1, None)
    assert list(p2m) == [Run(0, 3, 9, -1, None)]
    assert p2m.remove(1, 2) == [Run(1, 1, 8, 1, None)]
    assert list(p2m) == [Run(0, 1, 9, 1, None), Run(2, 1, 7, 1, None)]
