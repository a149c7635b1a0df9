"""The page list behind the PoD cache and the paging pool, against a plain Python list."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hypervisor_model.pagelist import PageList

# (add first, count, step) or ("head",)
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 40),
            st.integers(1, 5),
            st.sampled_from([1, -1, 2, 512, -24]),
        ),
        st.tuples(st.just("head")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_page_list_keeps_list_order(script: list[tuple]) -> None:  # type: ignore[type-arg]
    pages, reference = PageList(), []
    for op in script:
        if op[0] == "add":
            _, first, count, step = op
            pages.add_tail_run(first, count, step)
            reference += [first + i * step for i in range(count)]
        else:
            assert pages.remove_head() == (reference.pop(0) if reference else None)
        assert list(pages) == reference
        assert len(pages) == len(reference)
        again = PageList.from_runs(pages.runs())
        assert (list(again), again.runs()) == (reference, pages.runs())


def test_regular_sequences_are_one_run() -> None:
    """Descending frames from a split block, or 2 MiB heads 512 apart, are one run each."""
    pages = PageList()
    for mfn in range(99, 89, -1):
        pages.add_tail(mfn)
    assert pages.runs() == [[99, 10, -1]]
    pages.add_tail_run(0x200, 4, 512)
    assert pages.runs() == [[99, 10, -1], [0x200, 4, 512]]
    assert list(pages.spans(512))[-1] == (0x200, 4 * 512)


def test_spans_cover_each_block_once() -> None:
    pages = PageList.from_runs([[10, 3, -1], [100, 2, 5]])
    assert sorted(pages.spans()) == [(8, 3), (100, 1), (105, 1)]
