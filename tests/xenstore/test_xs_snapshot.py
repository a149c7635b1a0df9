"""The tree saved as plain data and loaded back, with every rule checked on the way in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from xenhost.xenstore import Store, XsHandle, restore, snapshot

from hypervisor_model.schema import SchemaError


def test_round_trip(store: Store, xs: XsHandle) -> None:
    xs.write("/z/first", bytes(range(256)))
    xs.write("/z/second", "2")
    xs.write("/a", "")
    xs.set_permissions("/z", ["n0", "r5", "b-1"])
    xs.introduce_domain(5, 0, 1)
    doc = json.loads(json.dumps(snapshot(store)))
    loaded = restore(doc)
    assert snapshot(loaded) == doc
    with XsHandle.local(loaded) as again:
        assert again.read("/z/first") == bytes(range(256))
        assert again.directory("/") == ["tool", "z", "a"]  # creation order kept
        assert again.get_permissions("/z") == ["n0", "r5", "b-1"]
        assert again.is_domain_introduced(5)
    assert loaded.problems() == []


def test_snapshot_lists_parents_first(store: Store, xs: XsHandle) -> None:
    xs.write("/b/c", "1")
    names = [entry[0] for entry in snapshot(store)["nodes"]]
    specials = ["@releaseDomain", "@introduceDomain"]
    assert names == ["/", "/tool", "/tool/xenstored", "/b", "/b/c", *specials]


def _with(change: Any) -> dict[str, Any]:
    doc = snapshot(Store())
    change(doc)
    return doc


def _add(*node: Any) -> dict[str, Any]:
    return _with(lambda d: d["nodes"].append(list(node)))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (5, "expected an object, got 5"),
        ({"nodes": []}, "nodes: expected the root / first, got no nodes"),
        (_with(lambda d: d["nodes"].pop(0)), "nodes[0]: expected the root / first and only"),
        (_add("/x/y", "", ["n0"]), "nodes[5]: /x/y listed before its parent /x"),
        (_add("/tool", "", ["n0"]), "nodes[5]: /tool listed twice"),
        (_add("/", "", ["n0"]), "nodes[5]: / listed twice"),
        (_add("/bad/", "", ["n0"]), "nodes[5][0]: expected /|(/[A-Za-z0-9_@-]+)+|"),
        (_add("@other", "", ["n0"]), "nodes[5][0]: expected"),
        (_add("/v", 5, ["n0"]), "nodes[5][1]: expected a string, got 5"),
        (_add("/v", "\u20ac", ["n0"]), "nodes[5]: expected a value of bytes as Latin-1 text"),
        (_add("/v", "x" * 4097, ["n0"]), "nodes[5][1]: expected at most 4096 characters"),
        (_add("/v", "", []), "nodes[5]: expected at least the owner's permission"),
        (_add("/v", "", ["q0"]), "nodes[5][2][0]: expected [nrwb]"),
        (_add("/v", ""), "nodes[5]: expected a list of 3, got a list of 2"),
        (_with(lambda d: d.update(introduced=[0])), "introduced[0]: expected 1..65535, got 0"),
        (_with(lambda d: d.update(introduced=[True])), "introduced[0]: expected an integer"),
        (_with(lambda d: d.update(extra=1)), "unexpected key 'extra'"),
    ],
)
def test_damaged_snapshots(doc: Any, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        restore(doc)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_missing_special_nodes_are_recreated() -> None:
    doc = snapshot(Store())
    doc["nodes"] = [n for n in doc["nodes"] if not n[0].startswith("@")]
    assert snapshot(restore(doc)) == snapshot(Store())
