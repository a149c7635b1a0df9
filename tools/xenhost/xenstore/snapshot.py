"""The xenstore tree as plain data for a state file, and back with every rule checked.

A snapshot lists the nodes parents first, children in creation order, each as
``[path, value, [permissions]]``; values are bytes kept as Latin-1 text, so any byte
survives JSON and ASCII (which xenstore values nearly always are) reads as itself. The
list is flat, so however deep the tree, the document nests three levels. The domains
xenstored had been introduced to are kept too. Connections, watches and transactions are
not: they end with the process that served them, as in xenstored.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypervisor_model.schema import Int, List, Record, Row, SchemaError, Str
from xenhost.xenstore.errors import XenstoreStateError
from xenhost.xenstore.store import PRIV_DOMID, Store
from xenhost.xenstore.tree import SPECIAL_NODES, Node, Perm, basename, parent_of, parse_perms
from xenhost.xenstore.wire import XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX

MAX_NODES = 1 << 20  # far beyond what a host's toolstack writes
MAX_PERMS = 1024
_PATH = r"/|(/[A-Za-z0-9_@-]+)+|" + "|".join(SPECIAL_NODES)
SCHEMA = Record(
    {
        "nodes": List(
            Row(
                Str(XENSTORE_ABS_PATH_MAX, _PATH),
                Str(XENSTORE_PAYLOAD_MAX),
                List(Str(12, r"[nrwb]-?[0-9]{1,10}"), MAX_PERMS),
            ),
            MAX_NODES,
        ),
        "introduced": List(Int(1, 0xFFFF), 0xFFFF),
    },
    optional=frozenset({"introduced"}),
)


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


Perms = tuple[Perm, ...]


def _node(
    i: int, entry: list[Any], children: dict[str, list[str]], perms_of: dict[tuple[str, ...], Perms]
) -> tuple[str, bytes, Perms]:
    """One listed node, checked against the ones listed before it. ``perms_of`` remembers
    permission lists already parsed: most nodes share a few."""
    name, value, perms = entry
    if name in children:
        raise XenstoreStateError(f"{name} listed twice")
    if (i == 0) != (name == "/"):
        raise XenstoreStateError(f"expected the root / first and only first, got {name}")
    if i and name not in SPECIAL_NODES:
        parent = parent_of(name)
        if parent not in children:
            raise XenstoreStateError(f"{name} listed before its parent {parent}")
        children[parent].append(basename(name))
    children[name] = []
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise XenstoreStateError("expected a value of bytes as Latin-1 text") from None
    if not perms:
        raise XenstoreStateError("expected at least the owner's permission")
    key = tuple(perms)
    if key not in perms_of:
        perms_of[key] = parse_perms(perms)
    return name, raw, perms_of[key]


def restore(doc: Any) -> Store:
    """A store holding a snapshot's tree; XenstoreStateError (a SchemaError: one line,
    saying where) if it is not one."""
    SCHEMA.check(doc)
    entries = doc["nodes"]
    if not entries:
        raise XenstoreStateError("expected the root / first, got no nodes").at("nodes")
    children: dict[str, list[str]] = {}
    perms_of: dict[tuple[str, ...], Perms] = {}
    nodes = []
    for i, entry in enumerate(entries):
        try:
            nodes.append(_node(i, entry, children, perms_of))
        except SchemaError as e:
            raise e.at(i).at("nodes") from None
    store = Store()
    defaults = {name: store.nodes[name] for name in SPECIAL_NODES}
    store.nodes = {
        name: Node(raw, perms, tuple(children[name]), generation)
        for generation, (name, raw, perms) in enumerate(nodes, start=store.generation + 1)
    }
    store.generation += len(nodes)
    for name, node in defaults.items():
        store.nodes.setdefault(name, node)
    store.owned = Counter(node.owner for node in store.nodes.values())
    store.introduced |= set(doc.get("introduced", ()))
    return store
