"""Transactions as transaction.c runs them: a node is copied at its first access, later
accesses see the copy, and a commit fails with EAGAIN if any node the transaction read or
wrote has another generation by then."""

from __future__ import annotations

from xenhost.xenstore import Store, XsHandle
from xenhost.xenstore.wire import XsType
from xs_helpers import error_of, events


def test_changes_are_invisible_until_commit(xs: XsHandle) -> None:
    t = xs.transaction_start()
    xs.write("/a", "in-t", t)
    assert xs.read("/a", t) == b"in-t"
    assert error_of(xs.read, "/a") == "ENOENT"
    xs.transaction_end(t)
    assert xs.read("/a") == b"in-t"


def test_abort_discards(xs: XsHandle) -> None:
    xs.write("/a", "old")
    t = xs.transaction_start()
    xs.write("/a", "new", t)
    xs.rm("/a", t)
    xs.transaction_end(t, abort=True)
    assert xs.read("/a") == b"old"


def test_a_read_node_changed_meanwhile(xs: XsHandle) -> None:
    """test-xenstore's "ta err": the transaction keeps the value it read, and its commit
    fails; the other client's write stands."""
    xs.write("/a", "a")
    t = xs.transaction_start()
    assert xs.read("/a", t) == b"a"
    xs.write("/a", "b")
    assert xs.read("/a", t) == b"a"
    xs.write("/a", "c", t)
    assert xs.read("/a", t) == b"c"
    assert error_of(xs.transaction_end, t) == "EAGAIN"
    assert xs.read("/a") == b"b"
    assert error_of(xs.transaction_end, t) == "ENOENT"  # it ended all the same


def test_a_node_created_meanwhile(xs: XsHandle) -> None:
    t = xs.transaction_start()
    assert error_of(xs.read, "/new", t) == "ENOENT"
    xs.write("/new", "x")
    assert error_of(xs.transaction_end, t) == "EAGAIN"


def test_two_creations_under_one_parent_conflict(store: Store, xs: XsHandle) -> None:
    """Creating a child rewrites the parent's child list, so two transactions adding
    children to one node conflict: the second commit must retry."""
    other = XsHandle.local(store)
    xs.mkdir("/dir")
    t1, t2 = xs.transaction_start(), other.transaction_start()
    xs.write("/dir/one", "1", t1)
    other.write("/dir/two", "2", t2)
    xs.transaction_end(t1)
    assert error_of(other.transaction_end, t2) == "EAGAIN"
    assert xs.directory("/dir") == ["one"]


def test_untouched_nodes_do_not_conflict(xs: XsHandle) -> None:
    xs.write("/x", "1")
    xs.write("/y", "1")
    t = xs.transaction_start()
    xs.write("/x", "2", t)
    xs.write("/y", "outside")
    xs.transaction_end(t)
    assert (xs.read("/x"), xs.read("/y")) == (b"2", b"outside")


def test_an_aborted_conflict_is_no_error(xs: XsHandle) -> None:
    xs.write("/a", "a")
    t = xs.transaction_start()
    xs.read("/a", t)
    xs.write("/a", "b")
    xs.transaction_end(t, abort=True)


def test_transaction_ids(store: Store, xs: XsHandle) -> None:
    """Per connection, from 1 (0 means no transaction), the next free one each time."""
    assert [xs.transaction_start() for _ in range(3)] == [1, 2, 3]
    assert XsHandle.local(store).transaction_start() == 1
    xs.transaction_end(2)
    assert xs.transaction_start() == 4


def test_transaction_errors(xs: XsHandle) -> None:
    assert error_of(xs.read, "/tool", 99) == "ENOENT"  # no transaction 99
    t = xs.transaction_start()
    assert error_of(xs.talk, XsType.XS_TRANSACTION_START, b"\0", t) == "EBUSY"
    assert error_of(xs.talk, XsType.XS_TRANSACTION_END, b"X\0", t) == "EINVAL"
    assert error_of(xs.talk, XsType.XS_TRANSACTION_END, b"X\0", 0) == "EINVAL"
    assert error_of(xs.transaction_end, 0) == "ENOENT"
    xs.transaction_end(t)


def test_removal_in_a_transaction(xs: XsHandle) -> None:
    xs.write("/a/b", "1")
    t = xs.transaction_start()
    xs.rm("/a", t)
    assert error_of(xs.read, "/a/b", t) == "ENOENT"
    assert xs.read("/a/b") == b"1"
    xs.transaction_end(t)
    assert xs.directory("/") == ["tool"]


def test_watch_events_wait_for_the_commit(store: Store, xs: XsHandle) -> None:
    watcher = XsHandle.local(store)
    watcher.watch("/w", "tok")
    assert events(watcher) == [("/w", "tok")]
    t = xs.transaction_start()
    xs.write("/w/a", "1", t)
    xs.write("/w/b", "1", t)
    assert events(watcher) == []
    xs.transaction_end(t)
    assert events(watcher) == [("/w/a", "tok"), ("/w/b", "tok")]
    t = xs.transaction_start()
    xs.write("/w/c", "1", t)
    xs.transaction_end(t, abort=True)
    assert events(watcher) == []


def test_transact_retries_on_conflict(store: Store, xs: XsHandle) -> None:
    """libxl's retry_transaction loop: the work runs again after EAGAIN."""
    other = XsHandle.local(store)
    xs.write("/counter", "0")
    runs = []

    def bump(t: int) -> int:
        value = int(xs.read("/counter", t))
        if not runs:
            other.write("/counter", "10")  # a competing writer, first time only
        runs.append(value)
        xs.write("/counter", str(value + 1), t)
        return value + 1

    assert xs.transact(bump) == 11
    assert runs == [0, 10]
    assert xs.read("/counter") == b"11"


def test_reset_watches_ends_transactions(xs: XsHandle) -> None:
    t = xs.transaction_start()
    xs.reset_watches()
    assert error_of(xs.read, "/tool", t) == "ENOENT"
