"""Interval maps of page numbers, stored as runs so that state grows with extents, not pages.

A run maps keys ``start .. start+length-1`` to ``value, value+step, ...`` (step is +1 or -1,
or any non-zero step in a map made with ``any_step``; ``value`` may be None for "no value")
and carries an opaque ``tag`` (for example the owning domain). The buddy allocator hands out
pages of a split block from the top down, so runs in both directions occur naturally;
adjacent runs that continue each other are merged. Runs are kept in short sorted chunks, so
an insert or removal anywhere costs a search and a small shift, never a shift of the map.

A guest populated with extents carved from one block gets runs of one length whose gfns
rise while their MFNs fall: a :class:`Progression` holds such runs as one element, and a
change near one first lays it out as runs again, so readers and changes only ever see runs.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, NamedTuple, cast


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


class Progression(NamedTuple):
    """``times`` runs of ``length`` keys each, one right after another from ``start``, the
    i-th mapping its keys from ``value + stride*i`` by ``step``. The runs do not continue
    one another (else they would be one run)."""

    start: int
    length: int
    value: int
    step: int
    tag: Hashable
    times: int
    stride: int

    @property
    def end(self) -> int:
        return self.start + self.length * self.times

    def run(self, i: int) -> Run:
        """The i-th run."""
        return Run(
            self.start + i * self.length,
            self.length,
            self.value + i * self.stride,
            self.step,
            self.tag,
        )

    def runs(self) -> list[Run]:
        return [self.run(i) for i in range(self.times)]

    def part(self, lo: int, hi: int) -> Run | Progression:
        """Runs ``lo .. hi-1`` as one element: a run alone, or a progression."""
        if hi - lo == 1:
            return self.run(lo)
        start, value = self.start + lo * self.length, self.value + lo * self.stride
        return self._replace(start=start, value=value, times=hi - lo)

    def holding(self, start: int, end: int) -> range:
        """Which runs hold keys in ``[start, end)``, which must meet this progression."""
        lo = max(start - self.start, 0) // self.length
        return range(lo, min(-(-(end - self.start) // self.length), self.times))

    def laid_out(self, start: int, end: int) -> list[Run | Progression]:
        """This progression as elements where the runs holding keys in ``[start, end)``
        are runs, those before and after them progressions (or a run, if one)."""
        inside = self.holding(start, end)
        before = [self.part(0, inside.start)] if inside.start else []
        after = [self.part(inside.stop, self.times)] if inside.stop < self.times else []
        return [*before, *map(self.run, inside), *after]

    def followed_by(self, more: Progression) -> Progression | None:
        """This progression carried on by ``more``, which starts right after it, or None
        if ``more`` does not carry it on."""
        start, length, value, step, tag, times, stride = self
        if (
            more.start != start + length * times
            or more.value != value + times * stride
            or more.length != length
            or more.step != step
            or more.stride != stride
            or more.tag != tag
        ):
            return None
        return Progression(start, length, value, step, tag, times + more.times, stride)


def _as_progression(element: Run | Progression, stride: int) -> Progression | None:
    """A map element as a progression of ``stride`` (a run: of one run; None without a
    value)."""
    if isinstance(element, Progression):
        return element
    if element.value is None:
        return None
    return Progression(
        element.start, element.length, element.value, element.step, element.tag, 1, stride
    )


def _first(element: Run | Progression) -> Run:
    return element.run(0) if isinstance(element, Progression) else element


def _last(element: Run | Progression) -> Run:
    return element.run(element.times - 1) if isinstance(element, Progression) else element


def _continues(left: Run, right: Run, any_step: bool) -> int | None:
    """The common step if ``right`` continues ``left`` exactly, else None."""
    if left.start + left.length != right.start or left.tag != right.tag:
        return None
    if left.value is None or right.value is None:
        return 1 if left.value is None and right.value is None else None
    step = right.value - left.value - left.step * (left.length - 1)
    if step != 1 and step != -1 and (step == 0 or not any_step):
        return None
    if (left.length > 1 and left.step != step) or (right.length > 1 and right.step != step):
        return None
    return step


def _stride(a: Run, b: Run) -> tuple[int, int] | None:
    """How far ``b`` is from ``a`` in keys and values, if it repeats ``a``'s shape."""
    if a.length != b.length or a.step != b.step or (a.value is None) != (b.value is None):
        return None
    return b.start - a.start, 0 if a.value is None or b.value is None else b.value - a.value


def _row(run: Run) -> list[Any]:
    return [run.start, run.length, run.value, run.step]


def _rows(first: Run, count: int, stride: tuple[int, int]) -> list[list[Any]]:
    """The saved rows of ``count`` runs repeating ``first`` at ``stride``."""
    if count >= 3:
        return [[*_row(first), count, *stride]]
    rows = [_row(first)]
    if count == 2:
        value = None if first.value is None else first.value + stride[1]
        rows.append([first.start + stride[0], first.length, value, first.step])
    return rows


def _unsaved(rows: Iterable[Sequence[Any]]) -> Iterator[Run]:
    """The runs of saved rows, a progression's one by one."""
    for row in rows:
        if len(row) == 4:
            yield Run(row[0], row[1], row[2], row[3], None)
            continue
        start, length, value, step, count, key_stride, value_stride = row
        for i in range(count):
            at = None if value is None else value + i * value_stride
            yield Run(start + i * key_stride, length, at, step, None)


def _start(run: Run) -> int:
    return run.start


def _coalesce(runs: Iterable[Run], any_step: bool) -> list[Run]:
    """Runs given in key order, those that continue one another merged; ValueError if
    they overlap, are out of order, or have no keys or a step the map does not allow."""
    merged: list[Run] = []
    last_end = None
    for run in runs:
        start, length, step = run.start, run.length, run.step
        if length <= 0 or step == 0 or (step != 1 and step != -1 and not any_step):
            raise ValueError(f"expected a run of 1 or more keys and step 1 or -1, got {run}")
        if length == 1 and step != 1:
            run = run._replace(step=1)
        if last_end is not None and start < last_end:
            raise ValueError(f"expected runs in order, got {start:#x} after {merged[-1]}")
        if start == last_end and (s := _continues(merged[-1], run, any_step)) is not None:
            last = merged[-1]
            merged[-1] = Run(last.start, last.length + length, last.value, s, run.tag)
        else:
            merged.append(run)
        last_end = start + length
    return merged


_reading = threading.Lock()
CHUNK = 256  # runs per chunk: a chunk splits in two when it reaches twice this


class RunMap:
    """A sorted, non-overlapping set of runs with point lookup, insertion and range removal.

    ``any_step`` lets runs step by any non-zero amount (a map whose values are only labels,
    such as a PV guest's frame numbers, where pages taken from alternating nodes step by 2);
    otherwise a run's values are a contiguous range (step +1 or -1).
    """

    def __init__(self, *, any_step: bool = False) -> None:
        self.any_step = any_step
        self._starts: list[list[int]] = []  # each chunk's run starts, ascending
        self._runs: list[list[Run | Progression]] = []  # each chunk's elements, in order
        self._firsts: list[int] = []  # the first start of each chunk
        self._count = 0  # runs, a progression's each counted
        self._progressions = 0

    def __len__(self) -> int:
        return self._count

    def __getattr__(self, name: str) -> Any:
        """Called only while a saved map waits to be read (:meth:`from_saved`): read it."""
        if name not in ("_starts", "_runs", "_firsts", "_count", "_progressions"):
            raise AttributeError(name)
        with _reading:  # two threads may reach a waiting map at once: one reads it
            if "_saved" in vars(self):  # ValueError if damaged; it stays unread then
                rows = _unsaved(vars(self)["_saved"])
                vars(self).update(vars(RunMap.from_runs(rows, any_step=self.any_step)))
                del vars(self)["_saved"]
        return vars(self)[name]

    def stored(self) -> int:
        """How many elements hold the runs (a progression is one): the map's size."""
        return sum(map(len, self._runs))

    def __iter__(self) -> Iterator[Run]:
        """The runs in key order; the map may change between chunks of the iteration."""
        for chunk in list(self._runs):
            for element in list(chunk):
                if isinstance(element, Progression):
                    yield from element.runs()
                else:
                    yield element

    # -- positions: (chunk, index) ----------------------------------------------------------

    def _before(self, key: int) -> tuple[int, int]:
        """The position of the last run starting at or before ``key``; (-1, -1) if none."""
        c = bisect_right(self._firsts, key) - 1
        if c < 0:
            return -1, -1
        return c, bisect_right(self._starts[c], key) - 1

    def _after(self, c: int, i: int) -> tuple[int, int]:
        """The position following ``(c, i)`` ((-1, -1): the first), or (-1, -1) at the end."""
        if c < 0:
            return (0, 0) if self._runs else (-1, -1)
        if i + 1 < len(self._runs[c]):
            return c, i + 1
        return (c + 1, 0) if c + 1 < len(self._runs) else (-1, -1)

    def _put(self, c: int, i: int, run: Run | Progression) -> None:
        """Replace the run at ``(c, i)``, whose neighbours keep it in order."""
        self._runs[c][i] = run
        self._starts[c][i] = run.start
        if i == 0:
            self._firsts[c] = run.start

    def _add_after(self, c: int, i: int, run: Run | Progression) -> None:
        """Insert a run after position ``(c, i)`` ((-1, -1): before every run)."""
        if c < 0:  # before every run: the front of the first chunk, or a first chunk
            if not self._runs:
                self._runs.append([])
                self._starts.append([])
                self._firsts.append(run.start)
            c, i = 0, -1
        starts, runs = self._starts[c], self._runs[c]
        starts.insert(i + 1, run.start)
        runs.insert(i + 1, run)
        self._firsts[c] = starts[0]
        self._count += 1
        if len(runs) >= 2 * CHUNK:
            self._starts[c + 1 : c + 1] = [starts[CHUNK:]]
            self._runs[c + 1 : c + 1] = [runs[CHUNK:]]
            self._firsts.insert(c + 1, starts[CHUNK])
            del starts[CHUNK:], runs[CHUNK:]

    def _recut(self, c: int) -> int:
        """Cut chunk ``c`` in chunks of CHUNK elements once it holds twice that; return
        how many chunks it is now."""
        chunk, starts = self._runs[c], self._starts[c]
        if len(chunk) < 2 * CHUNK:
            return 1
        cuts = range(0, len(chunk), CHUNK)
        self._runs[c : c + 1] = [chunk[k : k + CHUNK] for k in cuts]
        self._starts[c : c + 1] = [starts[k : k + CHUNK] for k in cuts]
        self._firsts[c : c + 1] = [starts[k] for k in cuts]
        return len(cuts)

    def _open(self, start: int, end: int) -> None:
        """Lay out as runs the runs of progressions that hold keys in ``[start, end)``, so
        that a change there and at its edges meets only runs."""
        if not self._progressions or end <= start:
            return
        c, i = self._before(start)
        c, i = (0, 0) if c < 0 else (c, i)
        while c < len(self._runs):
            chunk, starts = self._runs[c], self._starts[c]
            while i < len(chunk) and chunk[i].start < end:
                element = chunk[i]
                if isinstance(element, Progression) and element.end > start:
                    parts = element.laid_out(start, end)
                    chunk[i : i + 1] = parts
                    starts[i : i + 1] = [r.start for r in parts]
                    self._progressions += sum(isinstance(p, Progression) for p in parts) - 1
                    i += len(parts)
                else:
                    i += 1
            ended = i < len(chunk)  # at a key from ``end`` on
            c, i = c + self._recut(c), 0
            if ended:
                return

    def _laid_out(self, c: int) -> list[Run]:
        """Chunk ``c`` where :meth:`_open` has laid out the stretch being changed: runs."""
        return cast(list[Run], self._runs[c])

    def _delete(self, c: int, i: int) -> None:
        starts, runs = self._starts[c], self._runs[c]
        del starts[i], runs[i]
        self._count -= 1
        if not runs:
            del self._starts[c], self._runs[c], self._firsts[c]
        elif i == 0:
            self._firsts[c] = starts[0]

    # -- the map ----------------------------------------------------------------------------

    def find(self, key: int) -> Run | None:
        """The run containing ``key``, if any."""
        c, i = self._before(key)
        if c < 0:
            return None
        run = self._runs[c][i]
        if key >= run.end:
            return None
        if isinstance(run, Progression):
            return run.run((key - run.start) // run.length)
        return run

    def overlapping(self, start: int, end: int) -> list[Run]:
        """The pieces of runs inside ``[start, end)``, in key order."""
        if end <= start or not self._runs:
            return []
        c, i = self._before(start)
        if c < 0:
            c, i = 0, 0
        pieces: list[Run] = []
        while c < len(self._runs):
            runs = self._runs[c]
            while i < len(runs):
                run = runs[i]
                if run.start >= end:
                    return pieces
                if run.end <= start:
                    pass
                elif isinstance(run, Progression):
                    pieces += [run.run(k).piece(start, end) for k in run.holding(start, end)]
                else:
                    pieces.append(run.piece(start, end))
                i += 1
            c, i = c + 1, 0
        return pieces

    def meets(self, runs: Sequence[Run]) -> bool:
        """True if any of ``runs`` (in key order, disjoint) covers a mapped key."""
        if not runs or not self._runs or runs[0].start >= self._runs[-1][-1].end:
            return False  # none, or all beyond the last mapped key (a guest filled in order)
        c, i = self._before(runs[0].start)
        c, i = (0, 0) if c < 0 else (c, i)
        k, end = 0, runs[-1].start + runs[-1].length
        for chunk in islice(self._runs, c, None):
            for run in islice(chunk, i, None):
                if run.start >= end:
                    return False
                while runs[k].start + runs[k].length <= run.start:
                    k += 1  # ends before the mapped run: the last new run does not
                if runs[k].start < run.end:
                    return True
            i = 0
        return False

    def covered(self, start: int, end: int) -> int:
        """How many keys of ``[start, end)`` are mapped."""
        return sum(p.length for p in self.overlapping(start, end))

    def insert(self, start: int, length: int, value: int | None, step: int, tag: Hashable) -> None:
        """Map ``[start, start+length)``; the range must be unmapped. Neighbours that the
        new run continues are merged with it."""
        if length <= 0:
            return
        if step != 1 and step != -1 and (step == 0 or not self.any_step):
            raise ValueError(f"expected a step of 1 or -1, got {step}")
        end = start + length
        if self._progressions:
            self._open(start - 1, end + 1)
        elif self._runs:
            # The common case, frames carved one after another from a block's top: the
            # new run continues the map's first run from below.
            first = cast(Run, self._runs[0][0])
            if first.start == end:
                run = Run(start, length, value, step if length > 1 else 1, tag)
                if (s := _continues(run, first, self.any_step)) is not None:
                    self._put(0, 0, Run(start, length + first.length, value, s, tag))
                    return
        lc, li = self._before(start)
        rc, ri = self._after(lc, li)
        left = cast(Run, self._runs[lc][li]) if lc >= 0 else None  # laid out by _open
        right = cast(Run, self._runs[rc][ri]) if rc >= 0 else None
        if (left is not None and left.start + left.length > start) or (
            right is not None and right.start < end
        ):
            raise ValueError(f"expected unmapped keys, got overlap at {start:#x}+{length:#x}")
        run = Run(start, length, value, step if length > 1 else 1, tag)
        if left is not None and (s := _continues(left, run, self.any_step)) is not None:
            run = Run(left.start, left.length + length, left.value, s, tag)
        else:
            left = None
        if right is not None and (s := _continues(run, right, self.any_step)) is not None:
            run = Run(run.start, run.length + right.length, run.value, s, tag)
            if left is not None:  # the merged run takes the left one's place
                self._put(lc, li, run)
                self._delete(rc, ri)
            else:  # ... or the right one's, starting earlier
                self._put(rc, ri, run)
        elif left is not None:
            self._put(lc, li, run)
        else:
            self._add_after(lc, li, run)

    def insert_many(self, runs: Sequence[Run]) -> None:
        """:meth:`insert` each of ``runs``, given in key order over unmapped keys, a chunk
        at a time: the new runs that fall in one chunk are merged with the chunk's runs
        among them in one pass and one splice. ValueError on overlap, which leaves the
        chunks before the one that has it with their new runs."""
        if not self._runs:
            vars(self).update(vars(RunMap.from_runs(runs, any_step=self.any_step)))
            return
        if runs:
            self._open(runs[0].start - 1, runs[-1].start + runs[-1].length + 1)
        i = 0
        while i < len(runs):
            c, left = self._before(runs[i].start)
            c = max(c, 0)  # before every run: the first chunk
            j = len(runs)
            if c + 1 < len(self._runs):  # the runs before the next chunk go in this one
                j = bisect_left(runs, self._firsts[c + 1], i + 1, key=_start)
            self._splice(c, left + 1, runs[i:j])
            i = j

    def insert_progression(self, batch: Progression) -> None:
        """:meth:`insert_many` the runs of ``batch`` (ValueError, with nothing changed, if a
        key is mapped). Where neither they nor their neighbours continue one another they
        stay one element, which carries on the progression just before them if it can: so a
        guest populated in order with extents carved from one block costs one element."""
        if batch.times >= 2 and self._runs:  # the common case: carrying on the last element
            c, i = len(self._runs) - 1, len(self._runs[-1]) - 1
            last = self._runs[c][i]
            if isinstance(last, Progression) and last.times >= 2:
                grown = last.followed_by(batch)
                if grown is not None:  # its runs meet as that progression's do: no merges
                    self._put(c, i, grown)
                    self._count += batch.times
                    return
        step = batch.step
        if (
            batch.length <= 0
            or batch.times <= 0
            or step == 0
            or (step != 1 and step != -1 and not self.any_step)
        ):
            raise ValueError(f"expected runs of 1 or more keys and step 1 or -1, got {batch}")
        if batch.length == 1:
            batch = batch._replace(step=1)  # a single key has no direction
        lc, li = self._before(batch.start)
        rc, ri = self._after(lc, li)
        left = self._runs[lc][li] if lc >= 0 else None
        right = self._runs[rc][ri] if rc >= 0 else None
        if (left is not None and left.end > batch.start) or (
            right is not None and right.start < batch.end
        ):
            raise ValueError(f"expected unmapped keys, got overlap at {batch.start:#x}")
        before = None if left is None else _as_progression(left, batch.stride)
        grown = None if before is None else before.followed_by(batch)
        # Runs that continue one another merge: such a batch is laid out one by one. Carrying
        # on a progression of two or more runs, its runs meet one another and the one before
        # them as the runs of that progression do, which do not continue one another.
        any_step, merges = self.any_step, batch.times < 2
        if not merges and (grown is None or grown.times - batch.times < 2):
            first = batch.run(0)
            merges = _continues(first, batch.run(1), any_step) is not None or (
                left is not None
                and left.end == batch.start
                and _continues(_last(left), first, any_step) is not None
            )
        if not merges and right is not None and right.start == batch.end:
            last = batch.run(batch.times - 1)
            merges = _continues(last, _first(right), any_step) is not None
        if merges:
            self.insert_many(batch.runs())
            return
        if grown is not None:
            self._put(lc, li, grown)
            self._progressions += isinstance(left, Run)
        else:
            self._add_after(lc, li, batch)
            self._count -= 1  # counted below, as its runs
            self._progressions += 1
        self._count += batch.times

    def _splice(self, c: int, lo: int, runs: Sequence[Run]) -> None:
        """Put ``runs`` (in key order, none before the run at ``(c, lo - 1)``) into chunk
        ``c`` from index ``lo``, among its runs there, merging runs that continue one
        another and the neighbours on either side."""
        chunk, starts = self._laid_out(c), self._starts[c]
        hi = bisect_left(starts, runs[-1].start + runs[-1].length, lo)
        combined = sorted([*chunk[lo:hi], *runs], key=_start) if hi > lo else runs
        merged = _coalesce(combined, self.any_step)
        if not merged:
            return
        if lo and chunk[lo - 1].start + chunk[lo - 1].length > merged[0].start:
            raise ValueError(f"expected unmapped keys, got overlap at {merged[0].start:#x}")
        if hi < len(chunk):
            rc, ri = c, hi
        else:
            rc, ri = (c + 1, 0) if c + 1 < len(self._runs) else (-1, -1)
        right = self._laid_out(rc)[ri] if rc >= 0 else None
        end = merged[-1].start + merged[-1].length
        if right is not None and right.start < end:
            raise ValueError(f"expected unmapped keys, got overlap at {right.start:#x}")
        any_step = self.any_step
        if right is not None and (s := _continues(merged[-1], right, any_step)) is not None:
            last = merged[-1]
            merged[-1] = Run(last.start, last.length + right.length, last.value, s, last.tag)
            if rc == c:
                hi += 1
            else:
                self._delete(rc, ri)  # the next chunk: this one's positions stay
        if lo and (s := _continues(chunk[lo - 1], merged[0], any_step)) is not None:
            left, head = chunk[lo - 1], merged[0]
            merged[0] = Run(left.start, left.length + head.length, left.value, s, left.tag)
            lo -= 1
        chunk[lo:hi] = merged
        starts[lo:hi] = [r.start for r in merged]
        self._firsts[c] = starts[0]
        self._count += len(merged) - (hi - lo)
        self._recut(c)

    def remove(self, start: int, end: int) -> list[Run]:
        """Unmap ``[start, end)`` and return the pieces that were mapped there."""
        self._open(start - 1, end + 1)
        pieces = self.overlapping(start, end)
        for piece in pieces:
            c, i = self._before(piece.start)
            whole = self._laid_out(c)[i]
            self._delete(c, i)
            # What is left of the run goes back through insert: a remainder of one key has
            # no direction of its own and may now continue its neighbour.
            for rest in (whole.piece(whole.start, piece.start), whole.piece(piece.end, whole.end)):
                if rest.length > 0:
                    self.insert(rest.start, rest.length, rest.value, rest.step, rest.tag)
        return pieces

    def saved(self) -> list[list[Any]]:
        """The runs as rows to save: ``[start, length, value, step]``, and where three or more
        runs of one length and step recur at fixed strides of keys and values (extents taken
        from alternating nodes), one row ``[start, length, value, step, count, key stride,
        value stride]`` for them all (value stride 0 when there is no value)."""
        rows: list[list[Any]] = []
        first: Run | None = None  # the first run of the progression being gathered
        count, stride, prev = 0, (0, 0), None
        for run in self:
            s = _stride(prev, run) if prev is not None else None
            if s is not None and (count == 1 or s == stride):
                count, stride = count + 1, s
            elif s is not None and count == 2:  # prev may start a longer one with this run
                rows.append(_row(first))  # type: ignore[arg-type]
                first, stride = prev, s
            else:
                if first is not None:
                    rows += _rows(first, count, stride)
                first, count = run, 1
            prev = run
        if first is not None:
            rows += _rows(first, count, stride)
        return rows

    @staticmethod
    def saved_length(rows: Sequence[Sequence[Any]]) -> int:
        """How many runs saved rows stand for (before any merging), to bound a load."""
        if sum(map(len, rows)) == 4 * len(rows):  # plain runs only: no walk in Python
            return len(rows)
        return sum(row[4] if len(row) == 7 else 1 for row in rows)

    @classmethod
    def from_saved(cls, rows: Sequence[Sequence[Any]], *, any_step: bool = False) -> RunMap:
        """A map of rows :meth:`saved` made, read when first used, so a command that never
        looks at it pays nothing; then as :meth:`from_runs` (ValueError if the runs overlap
        or are out of order)."""
        made = cls.__new__(cls)
        made.any_step = any_step
        vars(made)["_saved"] = rows
        return made

    @classmethod
    def from_runs(cls, runs: Iterable[Run], *, any_step: bool = False) -> RunMap:
        """A map of runs given in key order (a saved map), merged where they continue;
        ValueError if they overlap or are out of order."""
        merged = _coalesce(runs, any_step)
        made = cls(any_step=any_step)
        for at in range(0, len(merged), CHUNK):
            chunk: list[Run | Progression] = [*merged[at : at + CHUNK]]
            made._runs.append(chunk)
            made._starts.append([r.start for r in chunk])
            made._firsts.append(chunk[0].start)
        made._count = len(merged)
        return made
