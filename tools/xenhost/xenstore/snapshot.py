"""The xenstore tree as plain data for a state file, and back with every rule checked.

A snapshot lists the nodes parents first, children in creation order, each as
``[path, value, [permissions]]``; values are bytes kept as Latin-1 text, so any byte
survives JSON and ASCII (which xenstore values nearly always are) reads as itself. The
domains xenstored had been introduced to are kept too. Connections, watches and
transactions are not: they end with the process that served them, as in xenstored.
"""

from __future__ import annotations

from typing import Any

from xenhost.xenstore.errors import XenstoreError, XenstoreStateError
from xenhost.xenstore.store import PRIV_DOMID, Store
from xenhost.xenstore.tree import SPECIAL_NODES, Node, basename, parent_of, parse_perms, valid_name
from xenhost.xenstore.wire import XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX

MAX_NODES = 1 << 20  # far beyond what a host's toolstack writes
MAX_PERMS = 1024


def snapshot(store: Store) -> dict[str, Any]:
    """The tree and the introduced domains, as JSON-friendly data."""
    with store.lock:
        walked = list(store.walk())
        walked += [(name, store.nodes[name]) for name in SPECIAL_NODES if name in store.nodes]
        return {
            "nodes": [
                [name, node.value.decode("latin-1"), [str(p) for p in node.perms]]
                for name, node in walked
            ],
            "introduced": sorted(store.introduced - {PRIV_DOMID}),
        }


def _fail(message: str) -> XenstoreStateError:
    return XenstoreStateError(f"xenstore: {message}")


def _entry(i: int, entry: Any) -> tuple[str, bytes, list[str]]:
    if not (isinstance(entry, list) and len(entry) == 3):
        raise _fail(f"node {i}: expected [path, value, permissions], got {entry!r:.60}")
    name, value, perms = entry
    if not (isinstance(name, str) and len(name) <= XENSTORE_ABS_PATH_MAX and valid_name(name)):
        raise _fail(f"node {i}: expected a xenstore path, got {name!r:.60}")
    if not isinstance(value, str):
        raise _fail(f"{name}: expected the value as text, got {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise _fail(f"{name}: expected a value of bytes as Latin-1 text") from None
    if len(raw) > XENSTORE_PAYLOAD_MAX:
        raise _fail(f"{name}: expected a value of at most {XENSTORE_PAYLOAD_MAX} bytes")
    if not (
        isinstance(perms, list)
        and 1 <= len(perms) <= MAX_PERMS
        and all(isinstance(p, str) for p in perms)
    ):
        raise _fail(f"{name}: expected 1 to {MAX_PERMS} permission strings, got {perms!r:.60}")
    return name, raw, perms


def restore(doc: Any) -> Store:
    """A store holding a snapshot's tree; XenstoreStateError (one line) if it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise _fail("expected an object with a list of nodes")
    entries = doc["nodes"]
    if not 1 <= len(entries) <= MAX_NODES:
        raise _fail(f"expected 1 to {MAX_NODES} nodes, got {len(entries)}")
    parsed: dict[str, tuple[bytes, list[str]]] = {}
    children: dict[str, list[str]] = {}
    for i, entry in enumerate(entries):
        name, raw, texts = _entry(i, entry)
        if name in parsed:
            raise _fail(f"{name}: listed twice")
        if i == 0 and name != "/":
            raise _fail(f"expected the root / first, got {name!r:.60}")
        if name not in SPECIAL_NODES and name != "/":
            if name.startswith("@"):
                raise _fail(f"{name}: not a special node xenstored keeps")
            parent = parent_of(name)
            if parent not in children:
                raise _fail(f"{name}: listed before its parent {parent}")
            children[parent].append(basename(name))
        parsed[name] = raw, texts
        children[name] = []
    introduced = doc.get("introduced", [])
    if not (
        isinstance(introduced, list) and all(type(d) is int and 0 < d < 65536 for d in introduced)
    ):
        raise _fail(f"expected introduced domains as ids 1 to 65535, got {introduced!r:.60}")
    store = Store()
    defaults = {name: store.nodes[name] for name in SPECIAL_NODES}
    store.nodes.clear()
    store.owned.clear()
    for name, (raw, texts) in parsed.items():
        try:
            perms = parse_perms(texts)
        except XenstoreError:
            raise _fail(
                f"{name}: expected permissions such as n0 or r5, got {texts!r:.60}"
            ) from None
        store._set(name, Node(raw, perms, tuple(children[name]), store._next_generation()))
    for name, node in defaults.items():
        if name not in store.nodes:
            store._set(name, node)
    store.introduced |= set(introduced)
    return store
