"""Watches as watch.c fires them: once at once, then for each change at the node or below
(within a depth), for each removed node, and for the special @introduceDomain and
@releaseDomain events, to clients that may read what changed."""

from __future__ import annotations

import pytest
from xenhost.xenstore import Store, XsHandle
from xs_helpers import error_of, events, guest


@pytest.fixture
def watcher(store: Store) -> XsHandle:
    return XsHandle.local(store)


def test_a_watch_fires_at_once(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("/not/there", "t1")
    assert events(watcher) == [("/not/there", "t1")]


def test_changes_at_and_below(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("/a", "t")
    events(watcher)
    xs.write("/a/b/c", "1")  # one event, for the node written (not its new parents)
    xs.write("/ab", "1")  # a sibling whose name starts alike
    xs.write("/a", "2")
    xs.set_permissions("/a/b", ["n0"])
    xs.mkdir("/a/b")  # exists: no event
    assert events(watcher) == [("/a/b/c", "t"), ("/a", "t"), ("/a/b", "t")]


def test_root_watch_sees_everything(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("/", "all")
    events(watcher)
    xs.write("/x/y", "1")
    assert events(watcher) == [("/x/y", "all")]


def test_removal_events(xs: XsHandle, watcher: XsHandle) -> None:
    """delnode_sub: every removed node fires for watches on itself; only the node the
    removal started at fires for watches above it."""
    xs.write("/a/b/c", "1")
    for path in ("/", "/a", "/a/b/c", "/a/missing"):
        watcher.watch(path, path)
    events(watcher)
    xs.rm("/a")
    assert events(watcher) == [("/a/b/c", "/a/b/c"), ("/a", "/"), ("/a", "/a")]


def test_depth(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("/a", "d1", depth=1)
    watcher.watch("/a", "d0", depth=0)
    events(watcher)
    xs.write("/a", "")
    xs.write("/a/b", "")
    xs.write("/a/b/c", "")
    assert events(watcher) == [("/a", "d1"), ("/a", "d0"), ("/a/b", "d1")]


def test_relative_watches_report_relative_paths(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("data", "rel")
    assert events(watcher) == [("data", "rel")]
    xs.write("/local/domain/0/data/x", "1")
    assert events(watcher) == [("data/x", "rel")]


def test_watch_and_unwatch(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("/a", "t")
    assert error_of(watcher.watch, "/a", "t") == "EEXIST"
    watcher.watch("/a", "other-token")
    watcher.unwatch("/a", "t")
    assert error_of(watcher.unwatch, "/a", "t") == "ENOENT"
    events(watcher)
    xs.write("/a", "1")
    assert events(watcher) == [("/a", "other-token")]
    assert error_of(watcher.watch, "/a/", "t") == "EINVAL"


def test_identical_pending_events_are_dropped(xs: XsHandle, watcher: XsHandle) -> None:
    """send_event: an event equal to one not yet sent is not queued again."""
    watcher.watch("/a", "t")
    events(watcher)
    xs.write("/a", "1")
    xs.write("/a", "2")
    xs.write("/a/b", "3")
    assert events(watcher) == [("/a", "t"), ("/a/b", "t")]
    xs.write("/a", "4")
    assert events(watcher) == [("/a", "t")]


def test_reset_watches(xs: XsHandle, watcher: XsHandle) -> None:
    watcher.watch("/a", "t")
    events(watcher)
    watcher.reset_watches()
    xs.write("/a", "1")
    assert events(watcher) == []


def test_events_only_for_what_a_domain_may_read(store: Store, xs: XsHandle) -> None:
    """watch_permitted: the node or its parent must be readable (or have been, before a
    change of permissions)."""
    xs.write("/shared", "")
    xs.set_permissions("/shared", ["n0", "r5"])
    g5, g6 = guest(store, 5), guest(store, 6)
    g5.watch("/shared", "t")
    g6.watch("/shared", "t")
    assert events(g5) == events(g6) == [("/shared", "t")]  # the first event always comes
    xs.write("/shared/x", "1")  # 5 may read the parent, 6 may not
    assert events(g5) == [("/shared/x", "t")]
    assert events(g6) == []
    xs.set_permissions("/shared", ["n0"])  # 5 could read it before the change
    assert events(g5) == [("/shared", "t")]


def test_introduce_domain_event(xs: XsHandle, watcher: XsHandle) -> None:
    """fire_special_watches: "@introduceDomain" for plain watches, "@introduceDomain/3"
    for a depth-1 watch; introducing dom0 or an introduced domain again fires nothing."""
    watcher.watch("@introduceDomain", "plain")
    watcher.watch("@introduceDomain", "deep", depth=1)
    events(watcher)
    xs.introduce_domain(3, 0x12345, 1)
    assert events(watcher) == [("@introduceDomain", "plain"), ("@introduceDomain/3", "deep")]
    xs.introduce_domain(3, 0x12345, 2)
    xs.introduce_domain(0, 0, 1)
    assert events(watcher) == []


def test_release_domain_event(xs: XsHandle, watcher: XsHandle) -> None:
    """A watch on "@releaseDomain/4" hears only about domain 4."""
    watcher.watch("@releaseDomain", "any")
    watcher.watch("@releaseDomain/4", "four")
    events(watcher)
    for domid in (3, 4):
        xs.introduce_domain(domid, 0, 1)
    xs.release_domain(3)
    xs.release_domain(4)
    assert events(watcher) == [
        ("@releaseDomain", "any"),
        ("@releaseDomain", "any"),
        ("@releaseDomain/4", "four"),
    ]


def test_any_domain_hears_release_events(store: Store, xs: XsHandle) -> None:
    """@releaseDomain is readable by any domain (setup_structure), @introduceDomain not."""
    g5 = guest(store, 5)
    g5.watch("@releaseDomain", "r")
    g5.watch("@introduceDomain", "i")
    events(g5)
    xs.introduce_domain(3, 0, 1)
    xs.release_domain(3)
    assert events(g5) == [("@releaseDomain", "r")]
