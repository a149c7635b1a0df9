"""Domains in the xenstore (domain.c): introduction and release, what a dead domain leaves
behind, features, quotas and the harmless CONTROL commands."""

from __future__ import annotations

import pytest
from xenhost.xenstore import Store, XsHandle
from xenhost.xenstore.wire import XsType, join
from xs_helpers import error_of, events, guest


def test_introduce_and_release(xs: XsHandle) -> None:
    assert xs.is_domain_introduced(0)  # dom0 is introduced when xenstored starts
    assert xs.is_domain_introduced(0x7FF0)  # DOMID_SELF
    assert not xs.is_domain_introduced(3)
    xs.introduce_domain(3, 0xFEFFC, 1)
    assert xs.is_domain_introduced(3)
    xs.resume_domain(3)
    xs.release_domain(3)
    assert not xs.is_domain_introduced(3)
    assert error_of(xs.release_domain, 3) == "ENOENT"
    assert error_of(xs.release_domain, 0) == "EINVAL"
    assert error_of(xs.resume_domain, 3) == "ENOENT"


@pytest.mark.parametrize(
    "payload",
    [join("3", "0", "0"), join("3", "0"), join("70000", "0", "1"), join("3x", "0", "1")],
)
def test_bad_introductions(xs: XsHandle, payload: bytes) -> None:
    """do_introduce: a domid up to 65535 with nothing after it, a frame, a port above 0."""
    assert error_of(xs.talk, XsType.XS_INTRODUCE, payload) == "EINVAL"


def test_domid_parsing(xs: XsHandle) -> None:
    """parse_domid is strtoul in base 10: blanks and a sign before it are fine, an empty
    string is 0, anything after it or above 65535 is EINVAL."""
    assert xs.talk(XsType.XS_GET_DOMAIN_PATH, join(" +12")) == join("/local/domain/12")
    assert xs.talk(XsType.XS_GET_DOMAIN_PATH, join("")) == join("/local/domain/0")
    for bad in ("12 ", "65536", "-1", "0x5"):
        assert error_of(xs.talk, XsType.XS_GET_DOMAIN_PATH, join(bad)) == "EINVAL"


@pytest.fixture
def populated(xs: XsHandle) -> XsHandle:
    """Nodes as libxl leaves them for domain 3: its home owned by dom0 and readable by 3,
    nodes 3 owns below it, and an entry for 3 on a node elsewhere."""
    xs.write("/local/domain/3/name", "guest")
    xs.set_permissions("/local/domain/3", ["n0", "r3"])
    xs.write("/local/domain/3/data", "")
    xs.set_permissions("/local/domain/3/data", ["n3"])
    xs.write("/local/domain/3/data/x", "1")
    xs.write("/backend", "")
    xs.set_permissions("/backend", ["n0", "b3", "r4"])
    return xs


def test_release_removes_what_the_domain_leaves(store: Store, populated: XsHandle) -> None:
    """domain_tree_remove: nodes the domain owns go (with their children, firing their
    watches), its entries elsewhere are dropped; then @releaseDomain fires."""
    populated.introduce_domain(3, 0, 1)
    watcher = XsHandle.local(store)
    watcher.watch("/local/domain/3", "home")
    watcher.watch("@releaseDomain", "released")
    events(watcher)
    populated.release_domain(3)
    assert populated.directory("/local/domain/3") == ["name"]
    assert populated.get_permissions("/local/domain/3") == ["n0"]
    assert populated.get_permissions("/backend") == ["n0", "r4"]
    assert events(watcher) == [("/local/domain/3/data", "home"), ("@releaseDomain", "released")]
    assert store.problems() == []


def test_check_domains_cleans_up_after_dead_domains(store: Store, populated: XsHandle) -> None:
    """Domains that died without being introduced leave no nodes either, and no event."""
    watcher = XsHandle.local(store)
    watcher.watch("@releaseDomain", "released")
    events(watcher)
    store.check_domains(alive=[0, 4])
    assert populated.directory("/local/domain/3") == ["name"]
    assert populated.get_permissions("/backend") == ["n0", "r4"]
    assert events(watcher) == []
    store.check_domains(alive=[])
    assert populated.get_permissions("/backend") == ["n0"]


def test_a_dead_domain_loses_its_watches(store: Store, populated: XsHandle) -> None:
    g3 = guest(store, 3)
    g3.watch("/local/domain/3/name", "mine")
    events(g3)
    store.check_domains(alive=[0])
    populated.write("/local/domain/3/name", "renamed")
    assert events(g3) == []


def test_features(xs: XsHandle) -> None:
    """do_set_feature: offered features only (2 | 4 | 8), before the introduction."""
    assert xs.get_features() == 14 and xs.get_features(3) == 14
    xs.set_features(3, 4)
    assert xs.get_features(3) == 4
    assert error_of(xs.set_features, 3, 1) == "EINVAL"  # reconnection is not offered
    xs.introduce_domain(3, 0, 1)
    assert error_of(xs.set_features, 3, 2) == "EBUSY"


def test_a_domain_without_watch_depth(store: Store, xs: XsHandle) -> None:
    """Without the watch-depth feature, WATCH takes exactly a path and a token."""
    xs.set_features(5, 2)
    assert error_of(guest(store, 5).watch, "/a", "t", depth=1) == "EINVAL"
    assert error_of(xs.watch, "/a", "t", depth=-1) == "EINVAL"


def test_quotas(xs: XsHandle) -> None:
    names = xs.talk(XsType.XS_GET_QUOTA, b"").rstrip(b"\0").decode().split()
    assert names == [
        "nodes", "watches", "outstanding", "memory", "soft-memory", "transactions",
        "transaction-nodes", "node-permissions", "path-max", "node-size",
    ]  # fmt: skip
    assert xs.get_quota("soft-memory") == 2 * 1024 * 1024
    xs.set_quota("nodes", 500)
    assert xs.get_quota("nodes") == 500 and xs.get_quota("nodes", 7) == 500
    assert error_of(xs.get_quota, "soft-nodes") == "EINVAL"  # no soft node quota
    assert error_of(xs.set_quota, "nodes", 0xFFFFFFFF) == "EINVAL"  # means "none"
    assert error_of(xs.talk, XsType.XS_SET_QUOTA, join("nodes")) == "EINVAL"


def test_control(xs: XsHandle) -> None:
    assert xs.control("help").splitlines()[0] == "check           "
    assert xs.control("check") == "OK"
    assert xs.control("print", "hello") == "OK"
    xs.control("quota", "set", "watches", "64")
    assert "watches          :       64 Watches per domain" in xs.control("quota").splitlines()
    assert xs.control("quota-soft").splitlines() == [
        "Quota settings:",
        "memory           :  2097152 Total Xenstore memory per domain",
    ]
    for bad in (("live-update", "-s"), ("quota", "set", "watches", "0"), ("check", "x"), ()):
        assert error_of(xs.control, *bad) == "EINVAL"
