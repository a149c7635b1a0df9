"""A transaction: the nodes it has touched, in the order it touched them (transaction.c).

The first access copies the node as it then was, with the global generation it had;
later reads and writes in the transaction see that copy. A commit fails with EAGAIN when
any touched node's generation has changed since, so a transaction that read or wrote a
node another client changed meanwhile must be retried.
"""

from __future__ import annotations

from xenhost.xenstore.tree import Node, Perm
from xenhost.xenstore.watch import Match

NO_GENERATION = -1  # the node did not exist


class Access:
    """One node as a transaction first found it, and what the transaction did to it."""

    __slots__ = ("fire", "generation", "modified", "node", "perms")

    def __init__(
        self,
        generation: int,  # the global node's generation at the first access
        node: Node | None,  # this transaction's version; None once removed
        perms: tuple[Perm, ...] | None,  # the permissions at the first access (for watches)
        modified: bool = False,
        fire: Match | None = None,  # the watch event to send on commit
    ) -> None:
        self.generation, self.node, self.perms = generation, node, perms
        self.modified, self.fire = modified, fire


class Transaction:
    """An open transaction: its id, the generation it started at, the nodes it touched."""

    __slots__ = ("accessed", "fail", "generation", "id", "node_created")

    def __init__(self, id: int, generation: int) -> None:
        self.id, self.generation = id, generation
        self.accessed: dict[str, Access] = {}
        self.fail = False  # a write failed part-way: the commit is refused
        self.node_created = False

    def queue(self, name: str, match: Match) -> None:
        """queue_watches: a subtree event replaces an exact one, never the other way."""
        access = self.accessed.get(name)
        if access is None:
            self.fail = True
            return
        if access.fire is None or match is Match.SUBTREE:
            access.fire = match
