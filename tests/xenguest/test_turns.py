"""Builders taking turns (xenguest/storm.py ``Turns``): one runs at a time, the turn passes
at hypercall entries and continuation points in an order drawn from a seed, so a storm's
seed replays its interleaving and its outcome.

Host: two nodes of 2048 MiB (dom0 none; node 1 has 524288 free pages). A 512 MiB HVM guest
populates (512 - 8) MiB * 256 - 32 (VGA hole) = 128992 pages, so node 1 holds four of them
(515968 <= 524288 < 644960) and six pinned there race for four places.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import hypervisor_model
from xenguest.storm import BuildRequest, StormReport, Turns, boot_storm

PINNED = [BuildRequest(f"p{i}", 512, vnuma=((1, 512),)) for i in range(6)]


def storm(mode: str, seed: int | None, **how: Any) -> StormReport:
    hv = hypervisor_model.boot(nodes=[2048, 2048])
    report = boot_storm(hv, PINNED, mode, seed=seed, **how)  # type: ignore[arg-type]
    hv.check_invariants()
    assert hv.scheduler is None  # the host's threads run free again
    return report


@pytest.mark.parametrize("mode", ["off", "legacy", "numa"])
def test_the_same_seed_replays_the_same_storm(mode: str) -> None:
    """Two storms with seed 1 on fresh hosts: the same turns in the same order, so the same
    table (outcomes, domids, where each failed and how much it had populated)."""
    first, again = storm(mode, 1), storm(mode, 1)
    assert (first.seed, again.seed) == (1, 1)
    assert first.turns == again.turns
    assert len(first.turns) > 6 * 10  # each build has dozens of switch points: interleaved
    assert first.table() == again.table()
    assert first.table().splitlines()[-1] == "turns: seed 1 (the same seed replays this storm)"


def test_other_seeds_interleave_otherwise() -> None:
    """Without claims, who wins the race for node 1 depends on the turns: seed 3 lets
    three of the six through, seed 0 four (found by running them; any pair that differs
    would do). Each loser had populated memory before failing: part-way."""
    three, four = storm("off", 3), storm("off", 0)
    assert three.turns != four.turns
    assert (three.count("admitted"), three.count("part-way")) == (3, 3)
    assert (four.count("admitted"), four.count("part-way")) == (4, 2)


@pytest.mark.parametrize("seed", range(4))
def test_numa_claims_admit_what_fits_whatever_the_seed(seed: int) -> None:
    """numa mode claims {1: 128992} before populating: four claims fit on node 1, a fifth
    is refused while four are held, and a claimed build always finishes. So every seed
    admits four and refuses two before they touch memory."""
    report = storm("numa", seed)
    assert (report.count("admitted"), report.count("refused"), report.count("part-way")) == (
        4,
        2,
        0,
    )
    assert all(r.populated_pages == 0 for r in report.results if r.outcome == "refused")


def test_without_a_seed_one_is_drawn_and_reported() -> None:
    report = storm("numa", None)
    assert report.seed is not None
    assert report.table().splitlines()[-1] == (
        f"turns: seed {report.seed} (the same seed replays this storm)"
    )
    assert storm("numa", report.seed).turns == report.turns


def held(lock: Any) -> bool:
    """Whether anyone holds ``lock`` (an RLock its owner could take again)."""
    if getattr(lock, "_is_owned", lambda: False)():
        return True
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


def model_locks(hv: hypervisor_model.Hypervisor) -> list[Any]:
    """Every lock of the host, its parts and its domains."""
    lock_types = (type(threading.Lock()), type(threading.RLock()))
    parts = [hv, hv.heap, hv.console, hv.faults, hv.arena, *hv.domain_list()]
    values = [v for part in parts for v in attributes(part)]
    return [v for v in values if isinstance(v, lock_types)]


def attributes(obj: object) -> list[Any]:
    """The values of an object's attributes, kept in its ``__dict__`` or in slots."""
    if hasattr(obj, "__dict__"):
        return list(vars(obj).values())
    return [getattr(obj, name) for name in obj.__slots__]  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["off", "legacy", "numa"])
def test_no_turn_passes_while_a_model_lock_is_held(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """At every switch point of every builder, with the turn passing at each one, none of
    the model's locks is held: so a builder given the turn never waits for a lock held by
    one without it. The storms include failed builds, destroyed with continuations."""
    hv = hypervisor_model.boot(nodes=[2048, 2048])
    points = []
    preempt = Turns.preempt

    def checked(self: Turns) -> None:
        points.append([lock for lock in model_locks(hv) if held(lock)])
        preempt(self)

    monkeypatch.setattr(Turns, "preempt", checked)
    report = boot_storm(hv, PINNED, mode, seed=2, turn_every=1)  # type: ignore[arg-type]
    assert len(points) > 6 * 50
    assert not any(points)
    assert report.count("admitted") == 4 if mode == "numa" else report.count("part-way") >= 1


def test_many_builders_passing_the_turn_at_every_point_finish() -> None:
    """48 builders of 16 MiB HVM guests ((16 - 8) * 256 - 32 = 2016 pages each, 96768 in
    all: they fit many times over) with the turn drawn again at every switch point all
    finish, admitted, within the watchdog's time."""
    hv = hypervisor_model.boot(nodes=[2048, 2048])
    requests = [BuildRequest(f"s{i}", 16) for i in range(48)]
    done: list[StormReport] = []
    run = threading.Thread(
        target=lambda: done.append(boot_storm(hv, requests, "legacy", seed=3, turn_every=1)),
        daemon=True,  # its builders too: a deadlock must not outlive the test
    )
    run.start()
    run.join(timeout=120)
    assert done, "the storm did not finish: deadlocked"
    assert done[0].count("admitted") == 48
    hv.check_invariants()


def test_one_builder_runs_at_a_time() -> None:
    """Four builders each record themselves as running between switch points and give
    other threads the CPU there (a sleep): none ever sees another running."""
    turns = Turns(4, seed=5, every=1)
    running: set[int] = set()
    overlaps: list[set[int]] = []

    def builder(me: int) -> None:
        with turns.turn(me):
            for _ in range(20):
                running.add(me)
                time.sleep(0.0005)
                if running != {me}:
                    overlaps.append(set(running))
                running.discard(me)
                turns.preempt()

    threads = [threading.Thread(target=builder, args=(me,)) for me in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    # turns of one switch point: a draw at each of the 80, one for the first turn and one
    # as each of the first three builders finishes
    assert len(turns.history) == 1 + 80 + 3
    assert set(turns.history) == {0, 1, 2, 3}


def test_turns_end_anywhere_in_a_build() -> None:
    """Builders doing the same steps: with turns of four switch points every turn would end
    at step 3, 7, 11, ... of its builder, and a race between two given steps would never
    be tried. Drawn lengths (1 to 7 for every=4) end turns at every step modulo 4."""
    turns = Turns(2, seed=1, every=4)
    ends: list[int] = []

    def builder(me: int) -> None:
        with turns.turn(me):
            for step in range(40):
                before = len(turns.history)
                turns.preempt()
                if len(turns.history) != before:
                    ends.append(step % 4)

    threads = [threading.Thread(target=builder, args=(me,)) for me in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(ends) == {0, 1, 2, 3}


def test_threads_that_are_not_builders_pass_through() -> None:
    """A thread outside the turns (here the test's own) is never held at a switch point."""
    turns = Turns(2, seed=0)
    for _ in range(10):
        turns.preempt()
    assert len(turns.history) == 1  # only the first turn was drawn


def test_a_seed_for_builders_that_run_free_is_refused() -> None:
    """A seed orders turns only of builder threads on a host in this process."""
    hv = hypervisor_model.boot(nodes=[2048, 2048])
    with pytest.raises(ValueError, match="builders running free"):
        boot_storm(hv, PINNED, "numa", seed=1, free_running=True)
    free = boot_storm(hv, PINNED, "numa", free_running=True)
    assert (free.seed, free.turns) == (None, [])
    assert free.table().splitlines()[-1].startswith("claim mode numa: 4 admitted")


def test_the_host_has_one_scheduler_at_a_time() -> None:
    hv = hypervisor_model.boot(nodes=[2048, 2048])
    first = Turns(1, seed=0)
    with hv.scheduled_by(first):
        with pytest.raises(RuntimeError, match="scheduled"), hv.scheduled_by(Turns(1, seed=0)):
            pass
        assert hv.scheduler is first
    assert hv.scheduler is None
