"""Interval maps of page numbers, stored as runs so that state grows with extents, not pages.

A run maps keys ``start .. start+length-1`` to ``value, value+step, ...`` (step is +1 or -1;
``value`` may be None for "no value") and carries an opaque ``tag`` (for example the owning
domain). The buddy allocator hands out pages of a split block from the top down, so runs in
both directions occur naturally; adjacent runs that continue each other are merged.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterator
from typing import NamedTuple


class Run(NamedTuple):
    """``length`` keys from ``start`` mapped to ``value + step*i``, all carrying ``tag``."""

    start: int
    length: int
    value: int | None
    step: int
    tag: Hashable

    @property
    def end(self) -> int:
        return self.start + self.length

    def value_at(self, key: int) -> int | None:
        return None if self.value is None else self.value + self.step * (key - self.start)

    def piece(self, start: int, end: int) -> Run:
        """The part of this run covering keys ``[start, end)`` (clipped to the run)."""
        start, end = max(start, self.start), min(end, self.end)
        step = self.step if end - start > 1 else 1  # a single key has no direction
        return Run(start, end - start, self.value_at(start), step, self.tag)


def _continues(left: Run, right: Run) -> int | None:
    """The common step if ``right`` continues ``left`` exactly, else None."""
    if left.end != right.start or left.tag != right.tag:
        return None
    if left.value is None or right.value is None:
        return 1 if left.value is None and right.value is None else None
    step = right.value - left.value_at(left.end - 1)  # type: ignore[operator]
    if step not in (1, -1):
        return None
    if (left.length > 1 and left.step != step) or (right.length > 1 and right.step != step):
        return None
    return step


class RunMap:
    """A sorted, non-overlapping set of runs with point lookup, insertion and range removal."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._runs: dict[int, Run] = {}

    def __len__(self) -> int:
        return len(self._starts)

    def __iter__(self) -> Iterator[Run]:
        return (self._runs[s] for s in list(self._starts))

    def find(self, key: int) -> Run | None:
        """The run containing ``key``, if any."""
        i = bisect_right(self._starts, key) - 1
        if i < 0:
            return None
        run = self._runs[self._starts[i]]
        return run if key < run.end else None

    def overlapping(self, start: int, end: int) -> list[Run]:
        """The pieces of runs inside ``[start, end)``, in key order."""
        if end <= start:
            return []
        i = max(bisect_right(self._starts, start) - 1, 0)
        pieces = []
        while i < len(self._starts) and self._starts[i] < end:
            run = self._runs[self._starts[i]]
            if run.end > start:
                pieces.append(run.piece(start, end))
            i += 1
        return pieces

    def covered(self, start: int, end: int) -> int:
        """How many keys of ``[start, end)`` are mapped."""
        return sum(p.length for p in self.overlapping(start, end))

    def insert(self, start: int, length: int, value: int | None, step: int, tag: Hashable) -> None:
        """Map ``[start, start+length)``; the range must be unmapped. Neighbours that the
        new run continues are merged with it."""
        if length <= 0:
            return
        end = start + length
        starts, runs = self._starts, self._runs
        i = bisect_right(starts, start)  # starts[i - 1] <= start < starts[i]
        left = runs[starts[i - 1]] if i else None
        right = runs[starts[i]] if i < len(starts) else None
        if (left is not None and left.end > start) or (right is not None and right.start < end):
            raise ValueError(f"expected unmapped keys, got overlap at {start:#x}+{length:#x}")
        run = Run(start, length, value, step if length > 1 else 1, tag)
        if left is not None and (s := _continues(left, run)) is not None:
            run = Run(left.start, left.length + length, left.value, s, tag)
            i -= 1  # the merged run takes the left one's place
        else:
            left = None
        if right is not None and (s := _continues(run, right)) is not None:
            run = Run(run.start, run.length + right.length, run.value, s, tag)
            del runs[right.start]
            if left is None:
                starts[i] = run.start  # the merged run takes the right one's place
            else:
                del starts[i + 1]
        elif left is None:
            starts.insert(i, run.start)
        runs[run.start] = run

    def remove(self, start: int, end: int) -> list[Run]:
        """Unmap ``[start, end)`` and return the pieces that were mapped there."""
        pieces = self.overlapping(start, end)
        for piece in pieces:
            whole = self.find(piece.start)
            assert whole is not None
            self._drop(whole.start)
            if whole.start < piece.start:
                self._add(whole.piece(whole.start, piece.start))
            if piece.end < whole.end:
                self._add(whole.piece(piece.end, whole.end))
        return pieces

    def _add(self, run: Run) -> None:
        i = bisect_right(self._starts, run.start)
        self._starts.insert(i, run.start)
        self._runs[run.start] = run

    def _drop(self, start: int) -> None:
        i = bisect_right(self._starts, start) - 1
        del self._starts[i]
        del self._runs[start]
