"""Permissions and quotas as xenstored applies them to domains other than dom0
(core.c perm_for_conn, errno_from_parents, construct_node, do_set_perms; domain.c quotas).
"""

from __future__ import annotations

import pytest
from xenhost.xenstore import Store, XsHandle
from xenhost.xenstore.wire import XsType, join
from xs_helpers import error_of, guest


@pytest.fixture
def tree(xs: XsHandle) -> XsHandle:
    """/secret: dom0's, nobody else's; /pub: everyone reads; /acl: domain 5 reads and
    writes; /any: readable by any domain (DOMID_ANY)."""
    for path, perms in (
        ("/secret", ["n0"]),
        ("/pub", ["r0"]),
        ("/acl", ["n0", "b5"]),
        ("/any", ["n0", "r32757"]),
    ):
        xs.write(path, path[1:])
        xs.set_permissions(path, perms)
    return xs


def test_dom0_may_do_anything(tree: XsHandle) -> None:
    assert tree.read("/secret") == b"secret"
    tree.write("/secret/x", "1")
    tree.set_permissions("/secret/x", ["n7"])  # dom0 may give a node away
    assert tree.get_permissions("/secret/x") == ["n7"]


def test_reading(store: Store, tree: XsHandle) -> None:
    g5, g6 = guest(store, 5), guest(store, 6)
    assert g5.read("/pub") == b"pub" and g6.read("/pub") == b"pub"
    assert g5.read("/acl") == b"acl"
    assert error_of(g6.read, "/acl") == "EACCES"  # the owner entry's n applies to 6
    assert error_of(g5.read, "/secret") == "EACCES"
    assert g6.read("/any") == b"any"


def test_a_missing_node_reads_as_forbidden_below_a_forbidden_parent(
    store: Store, tree: XsHandle
) -> None:
    """errno_from_parents: ENOENT only if the nearest existing parent grants the access
    asked for, so a domain learns nothing about nodes it may not see."""
    g5 = guest(store, 5)
    assert error_of(g5.read, "/pub/missing") == "ENOENT"
    assert error_of(g5.read, "/secret/missing") == "EACCES"
    assert error_of(g5.read, "/secret/missing/deeper") == "EACCES"
    assert error_of(g5.write, "/pub/new", "x") == "EACCES"  # /pub grants read, not write


def test_a_domain_owns_what_it_creates(store: Store, tree: XsHandle) -> None:
    """construct_node: new nodes copy the parent's entries with the creator as owner."""
    g5 = guest(store, 5)
    g5.write("/acl/mine/deeper", "v")
    assert tree.get_permissions("/acl/mine") == ["n5", "b5"]
    assert tree.get_permissions("/acl/mine/deeper") == ["n5", "b5"]
    tree.write("/acl/dom0s", "v")  # dom0 creates with the parent's entries unchanged
    assert tree.get_permissions("/acl/dom0s") == ["n0", "b5"]


def test_changing_permissions(store: Store, tree: XsHandle) -> None:
    """Only the owner (or dom0) may; only dom0 may change the owner (EPERM)."""
    g5, g6 = guest(store, 5), guest(store, 6)
    g5.write("/acl/mine", "v")
    g5.set_permissions("/acl/mine", ["n5", "r6"])
    assert g6.read("/acl/mine") == b"v"
    assert error_of(g5.set_permissions, "/acl/mine", ["n6"]) == "EPERM"
    assert error_of(g6.set_permissions, "/acl/mine", ["n6"]) == "EACCES"
    # 5 may read and write /acl through its entry, but only the owner may change entries
    assert error_of(g5.set_permissions, "/acl", ["n0"]) == "EACCES"


def test_permission_strings(tree: XsHandle) -> None:
    """xenstore_strings_to_perms: r, w, b or n, then a domid as C's strtol reads it."""
    tree.set_permissions("/pub", ["n0", "r0x10", "w010", "b-1"])
    assert tree.get_permissions("/pub") == ["n0", "r16", "w8", "b-1"]
    for bad in (["x0"], ["r"], ["r5x"], ["n0", "r08"]):
        assert error_of(tree.set_permissions, "/pub", bad) == "EINVAL"


def test_special_nodes_take_permissions(store: Store, tree: XsHandle) -> None:
    tree.set_permissions("@introduceDomain", ["n0", "r5"])
    assert guest(store, 5).get_permissions("@introduceDomain") == ["n0", "r5"]
    assert error_of(tree.get_permissions, "@noSuchThing") == "ENOENT"


def test_a_target_acts_for_its_guest(store: Store, tree: XsHandle) -> None:
    """SET_TARGET: a device model domain inherits its guest's rights."""
    tree.introduce_domain(5, 0, 1)
    tree.introduce_domain(7, 0, 1)
    g7 = guest(store, 7)
    assert error_of(g7.read, "/acl") == "EACCES"
    tree.set_target(7, 5)
    assert g7.read("/acl") == b"acl"
    assert error_of(tree.set_target, 7, 9) == "ENOENT"  # 9 was never introduced


def test_dom0_only_requests(store: Store, tree: XsHandle) -> None:
    g5 = guest(store, 5)
    assert error_of(g5.introduce_domain, 6, 0, 1) == "EACCES"
    assert error_of(g5.control, "help") == "EACCES"
    assert error_of(g5.get_quota, "nodes") == "EACCES"
    assert error_of(g5.get_features, 0) == "EACCES"
    assert g5.get_features() == 14  # ERROR | WATCHDEPTH | DOMID_ANY


# -- quotas (domain.c defaults; a count reaching the quota is refused) -----------------------


@pytest.fixture
def home(xs: XsHandle) -> XsHandle:
    """Domain 5's home, owned by 5 with one entry: 5 owns 1 node to start with."""
    xs.mkdir("/local/domain/5")
    xs.set_permissions("/local/domain/5", ["n5"])
    return xs


def test_watch_quota(store: Store, home: XsHandle) -> None:
    g5 = guest(store, 5)
    for i in range(127):  # 127 + 1 = 128 reaches the quota of 128
        g5.watch(f"w{i}", "t")
    assert error_of(g5.watch, "one-more", "t") == "ENOSPC"
    home.watch("dom0-has-no-quota", "t")


def test_transaction_quota(store: Store, home: XsHandle) -> None:
    g5 = guest(store, 5)
    for _ in range(9):
        g5.transaction_start()
    assert error_of(g5.transaction_start) == "ENOSPC"


def test_permission_entries_quota(store: Store, home: XsHandle) -> None:
    g5 = guest(store, 5)
    g5.set_permissions("/local/domain/5", ["n5", "r1", "r2", "r3"])  # 4 entries
    assert error_of(g5.set_permissions, "/local/domain/5", ["n5", "r1", "r2", "r3", "r4"]) == (
        "ENOSPC"
    )


def test_node_size_quota(store: Store, home: XsHandle) -> None:
    """A node's size is 16 (header) + 8 per entry + value + child names: with one entry a
    value of 2023 bytes makes 2047, 2024 bytes reach the 2048 quota."""
    g5 = guest(store, 5)
    g5.write("v", b"x" * 2023)
    assert error_of(g5.write, "v", b"x" * 2024) == "ENOSPC"
    assert g5.read("v") == b"x" * 2023
    home.write("/local/domain/5/v", b"x" * 4000)  # dom0 is not limited


def test_path_quota(store: Store, home: XsHandle) -> None:
    """Below /local/domain/5/ a path may have 2047 characters, not 2048."""
    g5 = guest(store, 5)
    parents = "/".join(["p" * 99] * 20)  # 20 * 99 + 19 slashes = 1999 characters
    g5.write(f"{parents}/{'q' * 47}", "ok")  # 1999 + 1 + 47 = 2047
    assert error_of(g5.write, f"{parents}/{'q' * 48}", "no") == "EINVAL"


def test_node_quota(store: Store, home: XsHandle) -> None:
    """With a quota of 5, domain 5 may own 4 nodes (a fifth reaches it): its home and 3
    more; one request creating several nodes counts them all."""
    home.set_quota("nodes", 5, domid=5)
    assert home.get_quota("nodes", domid=5) == 5
    assert home.get_quota("nodes") == 1000  # others keep the global quota
    g5 = guest(store, 5)
    g5.write("a", "")
    assert error_of(g5.write, "b/c/d", "") == "ENOSPC"  # 2 + 3 = 5
    g5.write("b/c", "")
    assert error_of(g5.write, "e", "") == "ENOSPC"
    assert home.directory("/local/domain/5") == ["a", "b"]


def test_transaction_node_quota(store: Store, xs: XsHandle) -> None:
    """A transaction may touch 1023 nodes; the 1024th access fails it (ENOSPC), and the
    commit then reports ENOMEM (fail_transaction)."""
    xs.mkdir("/many")
    xs.set_permissions("/many", ["r0"])
    for i in range(1024):
        xs.mkdir(f"/many/n{i}")
    g5 = guest(store, 5)
    t = g5.transaction_start()
    for i in range(1023):
        g5.read(f"/many/n{i}", t)
    assert error_of(g5.read, "/many/n1023", t) == "ENOSPC"
    assert error_of(g5.transaction_end, t) == "ENOMEM"


def test_raw_permission_requests(xs: XsHandle) -> None:
    assert xs.talk(XsType.XS_GET_PERMS, join("/")) == b"n0\0"
