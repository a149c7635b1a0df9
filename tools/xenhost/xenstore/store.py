"""The xenstore database and xenstored's rules for changing it (core.c, domain.c, watch.c).

One lock serializes every request, as xenstored's single thread does. Each operation
takes the client's connection (its domain decides what it may do) and its transaction, or
None to act on the tree directly. Dom0 is the privileged domain: it may do anything and no
quota limits it; other domains see nodes through their permission entries and are held to
xenstored's default quotas.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from hypervisor_model.public.xen import DOMID_ANY, DOMID_SELF
from xenhost.xenstore.errors import XenstoreError
from xenhost.xenstore.quota import Quotas
from xenhost.xenstore.transaction import NO_GENERATION, Access, Transaction
from xenhost.xenstore.tree import (
    SPECIAL_NODES,
    Node,
    Perm,
    allows,
    basename,
    child_path,
    parent_of,
    valid_name,
)
from xenhost.xenstore.watch import Match, Watch
from xenhost.xenstore.wire import (
    XENSTORE_PAYLOAD_MAX,
    XENSTORE_SERVER_FEATURE_DOMID_ANY,
    XENSTORE_SERVER_FEATURE_ERROR,
    XENSTORE_SERVER_FEATURE_WATCHDEPTH,
    XS_PERM_NONE,
    XS_PERM_OWNER,
    XS_PERM_READ,
    XS_PERM_WRITE,
)

if TYPE_CHECKING:
    from xenhost.xenstore.connection import Connection

PRIV_DOMID = 0  # the control domain; also the store domain sockets speak for
ALL_PERMS = XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER
# domain.c XENSTORE_FEATURES: what this xenstore offers every domain.
XENSTORE_FEATURES = (
    XENSTORE_SERVER_FEATURE_ERROR
    | XENSTORE_SERVER_FEATURE_WATCHDEPTH
    | XENSTORE_SERVER_FEATURE_DOMID_ANY
)
_LOCAL_DOMAIN = re.compile(r"/local/domain/(?:-\d{1,4}|\d{1,5})/")  # sscanf "%5u/"


class Store:
    """The tree, the generation count, the connections and the domains xenstored knows."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.generation = 0
        self.connections: list[Connection] = []
        self.introduced: set[int] = {PRIV_DOMID}  # dom0 is introduced at start (init_domains)
        self.features: dict[int, int] = {}
        self.targets: dict[int, int] = {}  # SET_TARGET: a device model's domain -> its guest
        self.quotas = Quotas()
        self.owned: Counter[int] = Counter()  # nodes per owner, for the "nodes" quota
        self._setup_structure()

    def _setup_structure(self) -> None:
        """setup_structure: the root, /tool/xenstored and the two special nodes."""
        private = (Perm(PRIV_DOMID, XS_PERM_NONE),)
        self._set("/", Node(b"", private, ("tool",), self._next_generation()))
        self._set("/tool", Node(b"", private, ("xenstored",), self._next_generation()))
        self._set("/tool/xenstored", Node(b"", private, (), self._next_generation()))
        release = (*private, Perm(DOMID_ANY, XS_PERM_READ))
        self._set("@releaseDomain", Node(b"", release, (), self._next_generation()))
        self._set("@introduceDomain", Node(b"", private, (), self._next_generation()))

    # -- connections ---------------------------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        with self.lock:
            self.connections.append(conn)

    def detach(self, conn: Connection) -> None:
        """A client gone: its watches and transactions go with it (destroy_conn)."""
        with self.lock:
            conn.watches.clear()
            conn.transactions.clear()
            if conn in self.connections:
                self.connections.remove(conn)

    # -- primitives ----------------------------------------------------------------------------

    def _next_generation(self) -> int:
        self.generation += 1
        return self.generation

    def _set(self, name: str, node: Node | None) -> None:
        """Change the tree itself, keeping the per-owner node counts."""
        old = self.nodes.pop(name, None)
        if old is not None:
            self.owned[old.owner] -= 1
        if node is not None:
            self.nodes[name] = node
            self.owned[node.owner] += 1

    def _read(self, conn: Connection | None, tx: Transaction | None, name: str) -> Node | None:
        """read_node: a transaction's first read keeps the node as it is now."""
        if tx is None:
            return self.nodes.get(name)
        access = tx.accessed.get(name)
        if access is None:
            assert conn is not None
            if self.quotas.exceeds(conn.domid, "transaction-nodes", len(tx.accessed) + 1):
                tx.fail = True
                raise XenstoreError("ENOSPC", "too many nodes in one transaction")
            node = self.nodes.get(name)
            generation = node.generation if node else NO_GENERATION
            access = Access(generation, node, node.perms if node else None)
            tx.accessed[name] = access
        return access.node

    def _put(
        self, conn: Connection | None, tx: Transaction | None, name: str, node: Node | None
    ) -> None:
        """Write or remove a node, which the caller has read already (access_node)."""
        node = node._replace(generation=self._next_generation()) if node else None
        if tx is None:
            self._set(name, node)
            return
        access = tx.accessed[name]
        access.node, access.modified = node, True

    def perm_for(self, conn: Connection, perms: tuple[Perm, ...]) -> int:
        """perm_for_conn: owners and dom0 may do anything; else the first entry naming the
        domain (or its target, or any domain), else the owner entry's access for all."""
        target = self.targets.get(conn.domid)
        if conn.domid == PRIV_DOMID or allows(conn.domid, target, perms[0]):
            return ALL_PERMS
        for perm in perms[1:]:
            if allows(conn.domid, target, perm):
                return perm.access
        return perms[0].access

    def canonical(self, conn: Connection, path: str, allow_special: bool = False) -> str:
        """canonicalize: a relative path is below the domain's home; EINVAL for bad names."""
        if path.startswith("@") and not allow_special:
            raise XenstoreError("EINVAL", f"{path!r}: a special path is not a node here")
        name = path if path[:1] in ("/", "@") else f"{conn.implicit_path}/{path}"
        local = _LOCAL_DOMAIN.match(name)
        length = len(name) - (local.end() if local else 0)
        if not valid_name(name) or self.quotas.exceeds(conn.domid, "path-max", length):
            raise XenstoreError("EINVAL", f"expected a valid xenstore path, got {path!r}")
        return name

    def _get_node(self, conn: Connection, tx: Transaction | None, name: str, perm: int) -> Node:
        """get_node: the node if ``conn`` has ``perm`` on it. A missing or forbidden node
        reads as EACCES unless the nearest existing parent grants ``perm`` too, so that
        the error tells nothing about nodes one may not see (errno_from_parents)."""
        node = self._read(conn, tx, name)
        if node is not None and self.perm_for(conn, node.perms) & perm == perm:
            return node
        error = "ENOENT" if node is None else "EACCES"
        parent_perm, parent = XS_PERM_NONE, name
        while True:  # ask_parents: the nearest existing parent, "/" at the latest
            parent = parent_of(parent)
            found = self._read(conn, tx, parent)
            if found is not None:
                parent_perm = self.perm_for(conn, found.perms)
                break
            if parent == "/":
                break
        raise XenstoreError(error if parent_perm & perm else "EACCES", name)

    def _check_size(self, conn: Connection, tx: Transaction | None, node: Node) -> None:
        """write_node_raw: a node may not outgrow the node-size quota; inside a transaction
        such a failure fails the whole transaction (fail_transaction)."""
        if self.quotas.exceeds(conn.domid, "node-size", node.size()):
            if tx is not None:
                tx.fail = True
            raise XenstoreError("ENOSPC", "node too large")

    # -- reading -------------------------------------------------------------------------------

    def read(self, conn: Connection, tx: Transaction | None, path: str) -> bytes:
        with self.lock:
            return self._get_node(conn, tx, self.canonical(conn, path), XS_PERM_READ).value

    def directory(self, conn: Connection, tx: Transaction | None, path: str) -> tuple[str, ...]:
        with self.lock:
            return self._get_node(conn, tx, self.canonical(conn, path), XS_PERM_READ).children

    def directory_part(
        self, conn: Connection, tx: Transaction | None, path: str, offset: int
    ) -> bytes:
        """send_directory_part: the node's generation, then as many children from byte
        ``offset`` of the child list as fit; an extra nul marks the end of the list."""
        with self.lock:
            node = self._get_node(conn, tx, self.canonical(conn, path), XS_PERM_READ)
        gen = f"{node.generation}".encode() + b"\0"
        listing = b"".join(c.encode("latin-1") + b"\0" for c in node.children)
        if offset >= len(listing):
            return gen + b"\0"
        room = XENSTORE_PAYLOAD_MAX - len(gen) - 1
        end = offset
        while True:
            child_end = listing.index(b"\0", end)
            if (end - offset) + (child_end - end) >= room:
                break
            end = child_end + 1
            if end == len(listing):
                return gen + listing[offset:end] + b"\0"
        return gen + listing[offset:end]

    def get_perms(self, conn: Connection, tx: Transaction | None, path: str) -> tuple[Perm, ...]:
        with self.lock:
            name = self.canonical(conn, path, allow_special=True)
            return self._get_node(conn, tx, name, XS_PERM_READ).perms

    # -- changing ------------------------------------------------------------------------------

    def write(self, conn: Connection, tx: Transaction | None, path: str, value: bytes) -> None:
        """do_write: missing parents are created with empty values."""
        with self.lock:
            name = self.canonical(conn, path)
            try:
                node = self._get_node(conn, tx, name, XS_PERM_WRITE)
            except XenstoreError as e:
                if e.name != "ENOENT":
                    raise
                self._create(conn, tx, name, value)
            else:
                new = node._replace(value=value)
                self._check_size(conn, tx, new)
                self._put(conn, tx, name, new)
            self._fire_node(conn, tx, name, None, Match.SUBTREE)

    def mkdir(self, conn: Connection, tx: Transaction | None, path: str) -> None:
        """do_mkdir: an existing node is left alone, without a watch event."""
        with self.lock:
            name = self.canonical(conn, path)
            try:
                self._get_node(conn, tx, name, XS_PERM_WRITE)
            except XenstoreError as e:
                if e.name != "ENOENT":
                    raise
                self._create(conn, tx, name, b"")
                self._fire_node(conn, tx, name, None, Match.SUBTREE)

    def _create(self, conn: Connection, tx: Transaction | None, name: str, value: bytes) -> None:
        """create_node: the node and its missing parents, with the permissions of the
        nearest existing parent; a domain other than dom0 owns what it creates."""
        missing = [name]
        parent = parent_of(name)
        while (top := self._read(conn, tx, parent)) is None:
            if parent == "/":
                raise XenstoreError("ENOENT", "no root node")
            missing.append(parent)
            parent = parent_of(parent)
        perms = top.perms
        if conn.domid != PRIV_DOMID:
            perms = (Perm(conn.domid, perms[0].access), *perms[1:])
        if self.quotas.exceeds(conn.domid, "nodes", self._owned_in(tx, conn.domid) + len(missing)):
            raise XenstoreError("ENOSPC", "too many nodes")
        # Written bottom-up, as create_node does: the new nodes, then the parent.
        new = [
            (path, Node(b"" if i else value, perms, (basename(missing[i - 1]),) if i else ()))
            for i, path in enumerate(missing)
        ]
        new.append((parent, top._replace(children=(*top.children, basename(missing[-1])))))
        for _, node in new:
            self._check_size(conn, tx, node)
        for path, node in new:
            self._put(conn, tx, path, node)
        if tx is not None:
            tx.node_created = True

    def _owned_in(self, tx: Transaction | None, domid: int) -> int:
        """The nodes ``domid`` owns, as a transaction would leave them."""
        count = self.owned[domid]
        for name, access in tx.accessed.items() if tx else ():
            if access.modified:
                old = self.nodes.get(name)
                count += (access.node is not None and access.node.owner == domid) - (
                    old is not None and old.owner == domid
                )
        return count

    def rm(self, conn: Connection, tx: Transaction | None, path: str) -> None:
        """do_rm: the node and everything below it; a missing node is fine when its
        parent exists."""
        with self.lock:
            name = self.canonical(conn, path)
            try:
                self._get_node(conn, tx, name, XS_PERM_WRITE)
            except XenstoreError as e:
                if e.name == "ENOENT" and self._read(conn, tx, parent_of(name)) is not None:
                    return
                raise
            if name == "/":
                raise XenstoreError("EINVAL", "the root cannot be removed")
            self._remove(conn, tx, name)

    def _remove(self, conn: Connection | None, tx: Transaction | None, name: str) -> None:
        """rm_node: children before parents, each with its watch event; the node the
        removal started at reports to watches on its parents too, the others only to
        watches on themselves (delnode_sub)."""
        parent_name = parent_of(name)
        parent = self._read(conn, tx, parent_name)
        if parent is None:
            raise XenstoreError("EINVAL", f"{name}: no parent")
        for path, node in self._post_order(conn, tx, name):
            self._put(conn, tx, path, None)
            self._fire_node(conn, tx, path, node, Match.SUBTREE if path == name else Match.EXACT)
        children = tuple(c for c in parent.children if c != basename(name))
        self._put(conn, tx, parent_name, parent._replace(children=children))

    def _post_order(
        self, conn: Connection | None, tx: Transaction | None, root: str
    ) -> Iterator[tuple[str, Node]]:
        """The subtree below ``root``, children first (walk_node_tree), without recursion."""
        node = self._read(conn, tx, root)
        if node is None:
            return
        stack: list[tuple[str, Node, int]] = [(root, node, 0)]
        while stack:
            path, node, i = stack.pop()
            if i < len(node.children):
                stack.append((path, node, i + 1))
                child = child_path(path, node.children[i])
                found = self._read(conn, tx, child)
                if found is not None:
                    stack.append((child, found, 0))
            else:
                yield path, node

    def set_perms(
        self, conn: Connection, tx: Transaction | None, path: str, perms: tuple[Perm, ...]
    ) -> None:
        """do_set_perms: only the owner (or dom0) may; only dom0 may give a node away."""
        with self.lock:
            name = self.canonical(conn, path, allow_special=True)
            node = self._get_node(conn, tx, name, XS_PERM_WRITE | XS_PERM_OWNER)
            if conn.domid != PRIV_DOMID and perms[0].domid != node.owner:
                raise XenstoreError("EPERM", "only dom0 may change a node's owner")
            new = node._replace(perms=perms)
            self._check_size(conn, tx, new)
            self._put(conn, tx, name, new)
            self._fire_node(conn, tx, name, new, Match.SUBTREE, node.perms)

    # -- transactions --------------------------------------------------------------------------

    def transaction_start(self, conn: Connection, tx: Transaction | None) -> int:
        """do_transaction_start: not nested; the id is the connection's next free one."""
        with self.lock:
            if tx is not None:
                raise XenstoreError("EBUSY", "transactions do not nest")
            if self.quotas.exceeds(conn.domid, "transactions", len(conn.transactions) + 1):
                raise XenstoreError("ENOSPC", "too many transactions")
            while conn.next_transaction_id in conn.transactions or not conn.next_transaction_id:
                conn.next_transaction_id = (conn.next_transaction_id + 1) & 0xFFFFFFFF
            tx_id = conn.next_transaction_id
            conn.next_transaction_id = (tx_id + 1) & 0xFFFFFFFF
            conn.transactions[tx_id] = Transaction(tx_id, self._next_generation())
            return tx_id

    def transaction_end(self, conn: Connection, tx: Transaction | None, commit: bool) -> None:
        """do_transaction_end: the transaction ends whatever the outcome; a commit fails
        with EAGAIN if a node it touched changed meanwhile (finalize_transaction)."""
        with self.lock:
            if tx is None:
                raise XenstoreError("ENOENT", "no transaction")
            del conn.transactions[tx.id]
            if not commit:
                return
            if tx.fail:
                raise XenstoreError("ENOMEM", "the transaction failed part-way")
            if tx.node_created and self.quotas.exceeds(
                conn.domid, "nodes", self._owned_in(tx, conn.domid)
            ):
                raise XenstoreError("ENOSPC", "too many nodes")
            for name, access in tx.accessed.items():
                current = self.nodes.get(name)
                if access.generation != (current.generation if current else NO_GENERATION):
                    raise XenstoreError("EAGAIN", f"{name} changed during the transaction")
            for name, access in tx.accessed.items():
                if access.modified:
                    node = access.node
                    if node is not None:
                        node = node._replace(generation=self._next_generation())
                    self._set(name, node)
                if access.fire is not None:
                    self._fire_node(None, None, name, None, access.fire, access.perms)

    # -- watches -------------------------------------------------------------------------------

    def watch(self, conn: Connection, path: str, token: str, depth: int = -1) -> Watch:
        """do_watch; the caller acknowledges, then sends the watch's first event."""
        with self.lock:
            relative = not path.startswith(("/", "@"))
            name = self.canonical(conn, path, allow_special=True)
            if any(w.node == name and w.token == token for w in conn.watches):
                raise XenstoreError("EEXIST", "this watch exists already")
            if self.quotas.exceeds(conn.domid, "watches", len(conn.watches) + 1):
                raise XenstoreError("ENOSPC", "too many watches")
            prefix = len(conn.implicit_path) + 1 if relative else 0
            watch = Watch(name, token, depth, prefix)
            conn.watches.append(watch)
            return watch

    def unwatch(self, conn: Connection, path: str, token: str) -> None:
        with self.lock:
            name = self.canonical(conn, path, allow_special=True)
            for watch in conn.watches:
                if watch.node == name and watch.token == token:
                    conn.watches.remove(watch)
                    return
            raise XenstoreError("ENOENT", "no such watch")

    def reset_watches(self, conn: Connection) -> None:
        with self.lock:
            conn.watches.clear()
            conn.transactions.clear()

    def _fire_node(
        self,
        conn: Connection | None,
        tx: Transaction | None,
        name: str,
        node: Node | None,
        match: Match,
        perms: tuple[Perm, ...] | None = None,
        node_name: str | None = None,
    ) -> None:
        """fire_watches: in a transaction the event waits for the commit; otherwise every
        watch that matches and may see the node (or, before a change of permissions, could
        see it) gets it."""
        if tx is not None:
            tx.queue(name, match)
            return
        for other in self.connections:
            events = [w for w in other.watches if w.matches(name, match)]
            if events and self._watch_permitted(other, node_name or name, node, perms):
                for w in events:
                    other.send_event(w.event_path(name), w.token)

    def _watch_permitted(
        self, conn: Connection, name: str, node: Node | None, perms: tuple[Perm, ...] | None
    ) -> bool:
        """watch_permitted: the old permissions, the node's, or its parent's allow reading."""
        if perms is not None and self.perm_for(conn, perms) & XS_PERM_READ:
            return True
        node = node or self.nodes.get(name)
        if node is None:
            return False
        if self.perm_for(conn, node.perms) & XS_PERM_READ:
            return True
        parent = self.nodes.get(parent_of(name))
        return parent is not None and bool(self.perm_for(conn, parent.perms) & XS_PERM_READ)

    def _fire_special(self, name: str, domid: int, nodom: bool = True, dom: bool = True) -> None:
        """fire_special_watches: "@name" to watches without a depth, "@name/<domid>" to
        watches on it and depth watches on "@name"."""
        node = self.nodes.get(name)
        if node is None:
            return
        if nodom:
            self._fire_node(None, None, name, node, Match.NODEPTH, node_name=name)
        if dom:
            self._fire_node(None, None, f"{name}/{domid}", node, Match.DEPTH, node_name=name)

    # -- domains -------------------------------------------------------------------------------

    def introduce(self, domid: int) -> None:
        """do_introduce: the first introduction of a guest fires @introduceDomain. There is
        no ring page or event channel to connect here."""
        with self.lock:
            if domid not in self.introduced:
                self.introduced.add(domid)
                if domid != PRIV_DOMID:
                    self._fire_special("@introduceDomain", domid)

    def _connected(self, domid: int) -> None:
        """onearg_domain / find_connected_domain for RELEASE and RESUME."""
        if domid == PRIV_DOMID:
            raise XenstoreError("EINVAL", "not for dom0")
        if domid not in self.introduced:
            raise XenstoreError("ENOENT", f"domain {domid} is not introduced")

    def release(self, domid: int) -> None:
        """do_release: xenstored lets go of the domain as if it had died."""
        with self.lock:
            self._connected(domid)
            self._domain_gone(domid)

    def resume(self, domid: int) -> None:
        with self.lock:
            self._connected(domid)

    def set_target(self, domid: int, target: int) -> None:
        """do_set_target: ``domid`` (a device model) acts for ``target`` in permissions."""
        with self.lock:
            for d in (domid, target):
                if d not in self.introduced:
                    raise XenstoreError("ENOENT", f"domain {d} is not introduced")
            self.targets[domid] = target

    def is_introduced(self, domid: int) -> bool:
        with self.lock:
            return domid == DOMID_SELF or domid in self.introduced

    def domain_features(self, domid: int) -> int:
        return self.features.get(domid, XENSTORE_FEATURES)

    def set_features(self, domid: int, features: int) -> None:
        """do_set_feature: only before the domain is introduced, only offered features."""
        with self.lock:
            if domid in self.introduced:
                raise XenstoreError("EBUSY", f"domain {domid} is introduced already")
            if features & ~XENSTORE_FEATURES:
                raise XenstoreError("EINVAL", f"features {features:#x} are not offered")
            self.features[domid] = features

    def check_domains(self, alive: Iterable[int]) -> None:
        """What xenstored does when Xen tells it domains died (check_domains): every domain
        the store knows that is not in ``alive`` loses its nodes and its permission
        entries, and if it was introduced, @releaseDomain fires."""
        alive = set(alive) | {PRIV_DOMID}
        with self.lock:
            known = set(self.introduced) | set(self.targets) | set(self.features)
            known |= {p.domid for node in self.nodes.values() for p in node.perms}
            for domid in sorted(known - alive - {DOMID_ANY}):
                self._domain_gone(domid)

    def _domain_gone(self, domid: int) -> None:
        """destroy_domain: its nodes are removed and its permission entries dropped
        (domain_tree_remove); watchers learn through @releaseDomain if it was introduced."""
        for conn in self.connections:
            if conn.domid == domid:
                conn.watches.clear()
                conn.transactions.clear()
        orphans: list[str] = []
        for name, node in self.walk():  # parents first; a removed node takes its subtree
            below = bool(orphans) and name.startswith(orphans[-1] + "/")
            if node.owner == domid and name != "/" and not below:
                orphans.append(name)
        for name in orphans:
            self._remove(None, None, name)
        for name, node in list(self.nodes.items()):
            kept = tuple(p for p in node.perms[1:] if p.domid != domid)
            if len(kept) != len(node.perms) - 1:
                self._set(name, node._replace(perms=(node.perms[0], *kept)))
        self.targets.pop(domid, None)
        self.features.pop(domid, None)
        if domid in self.introduced:
            self.introduced.discard(domid)
            self._fire_special("@releaseDomain", domid)

    # -- whole-tree views ----------------------------------------------------------------------

    def walk(self, root: str = "/") -> Iterator[tuple[str, Node]]:
        """Every node from ``root`` down, parents first, children in creation order.
        The caller holds the lock."""
        stack = [root] if root in self.nodes else []
        while stack:
            name = stack.pop()
            node = self.nodes[name]
            yield name, node
            stack.extend(child_path(name, c) for c in reversed(node.children))

    def problems(self) -> list[str]:
        """Inconsistencies of the tree (CONTROL check): each child must exist, each node
        must be its parent's child, counts must add up. Empty when all is well."""
        with self.lock:
            found = []
            reached = {name for name, _ in self.walk()} | set(SPECIAL_NODES)
            for name, node in self.nodes.items():
                if name not in reached:
                    found.append(f"{name}: not reachable from /")
                for child in node.children:
                    if child_path(name, child) not in self.nodes:
                        found.append(f"{name}: child {child} missing")
            if +self.owned != Counter(node.owner for node in self.nodes.values()):
                found.append("node counts per owner do not add up")
            return found
