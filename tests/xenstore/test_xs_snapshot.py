"""The tree saved as plain data and loaded back, with every rule checked on the way in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from xenhost.xenstore import Store, XenstoreStateError, XsHandle, restore, snapshot


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
    assert names == ["/", "/tool", "/tool/xenstored", "/b", "/b/c", *("@releaseDomain",
                     "@introduceDomain")]  # fmt: skip


def _good() -> dict[str, Any]:
    return snapshot(Store())


def _with(change: Any) -> dict[str, Any]:
    doc = _good()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (5, "expected an object with a list of nodes"),
        ({"nodes": []}, "expected 1 to 1048576 nodes, got 0"),
        (_with(lambda d: d["nodes"].pop(0)), "expected the root / first"),
        (
            _with(lambda d: d["nodes"].append(["/x/y", "", ["n0"]])),
            "/x/y: listed before its parent /x",
        ),
        (_with(lambda d: d["nodes"].append(["/tool", "", ["n0"]])), "/tool: listed twice"),
        (_with(lambda d: d["nodes"].append(["/bad/", "", ["n0"]])), "expected a xenstore path"),
        (_with(lambda d: d["nodes"].append(["@other", "", ["n0"]])), "@other: not a special node"),
        (_with(lambda d: d["nodes"].append(["/v", 5, ["n0"]])), "/v: expected the value as text"),
        (_with(lambda d: d["nodes"].append(["/v", "\u20ac", ["n0"]])), "bytes as Latin-1"),
        (_with(lambda d: d["nodes"].append(["/v", "x" * 4097, ["n0"]])), "at most 4096 bytes"),
        (_with(lambda d: d["nodes"].append(["/v", "", []])), "1 to 1024 permission strings"),
        (_with(lambda d: d["nodes"].append(["/v", "", ["q0"]])), "expected permissions such as"),
        (_with(lambda d: d["nodes"].append(["/v", ""])), "expected [path, value, permissions]"),
        (_with(lambda d: d.update(introduced=[0])), "expected introduced domains"),
        (_with(lambda d: d.update(introduced=[True])), "expected introduced domains"),
    ],
)
def test_damaged_snapshots(doc: Any, message: str) -> None:
    with pytest.raises(XenstoreStateError) as info:
        restore(doc)
    assert message in str(info.value)
    assert "\n" not in str(info.value) and str(info.value).startswith("xenstore: ")


def test_missing_special_nodes_are_recreated() -> None:
    doc = _good()
    doc["nodes"] = [n for n in doc["nodes"] if not n[0].startswith("@")]
    assert snapshot(restore(doc)) == _good()
