"""A page list as Xen keeps one (page_list_add_tail / page_list_remove_head), stored as
arithmetic runs so that it grows with extents, not pages.

Xen threads the pages of a pool (the PoD cache, a paging pool) on a list and takes them from
the head; which frame goes back to the heap first depends on that order. Pages are usually
added in long regular sequences (the buddy allocator hands out descending frames, a
superpage's heads step by 512), so ``[first, count, step]`` runs keep the order exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator


class PageList:
    """Frame numbers in list order; runs ``[first, count, step]`` hold them compactly."""

    def __init__(self) -> None:
        self._runs: deque[list[int]] = deque()
        self._len = 0

    @classmethod
    def from_runs(cls, runs: Iterable[Iterable[int]]) -> PageList:
        """A list from :meth:`runs`, run for run (a saved list reads back the same)."""
        pages = cls()
        for first, count, step in runs:
            if count < 1 or step == 0:
                raise ValueError(f"expected a run [first, count >= 1, step != 0], got {count}")
            pages._runs.append([int(first), int(count), int(step) if count > 1 else 1])
            pages._len += count
        return pages

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        for first, count, step in self._runs:
            yield from range(first, first + count * step, step)

    def spans(self, size: int = 1) -> Iterator[tuple[int, int]]:
        """The frames of the listed blocks of ``size`` pages as ``(lowest, pages)`` ranges;
        a run of adjacent blocks is one range."""
        for first, count, step in self._runs:
            if step in (size, -size) or count == 1:
                yield min(first, first + (count - 1) * step), count * size
            else:
                yield from ((first + i * step, size) for i in range(count))

    def runs(self) -> list[list[int]]:
        """The list as ``[first, count, step]`` runs (for saving)."""
        return [list(run) for run in self._runs]

    def add_tail(self, value: int) -> None:
        self.add_tail_run(value, 1, 1)

    def add_tail_run(self, first: int, count: int, step: int = 1) -> None:
        """Append ``first, first+step, ...`` (``count`` values)."""
        if count <= 0:
            return
        if count == 1:
            step = 1
        self._len += count
        if self._runs:
            last = self._runs[-1]
            gap = first - (last[0] + (last[1] - 1) * last[2])
            if gap and (last[1] == 1 or gap == last[2]) and (count == 1 or step == gap):
                last[2] = gap
                last[1] += count
                return
        self._runs.append([first, count, step])

    def remove_head(self) -> int | None:
        """Take the first value (page_list_remove_head); None when empty."""
        if not self._runs:
            return None
        run = self._runs[0]
        value = run[0]
        if run[1] == 1:
            self._runs.popleft()
        else:
            run[0] += run[2]
            run[1] -= 1
            if run[1] == 1:
                run[2] = 1  # a single value has no step, as when it was added
        self._len -= 1
        return value
