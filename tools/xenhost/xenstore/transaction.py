"""A transaction: the nodes it has touched, in the order it touched them (transaction.c).

The first access copies the node as it then was, with the global generation it had;
later reads and writes in the transaction see that copy. A commit fails with EAGAIN when
any touched node's generation has changed since, so a transaction that read or wrote a
node another client changed meanwhile must be retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xenhost.xenstore.tree import Node, Perm
from xenhost.xenstore.watch import Match

NO_GENERATION = -1  # the node did not exist


@dataclass(slots=True)
class Access:
    generation: int  # the global node's generation at the first access
    node: Node | None  # this transaction's version; None once removed
    perms: tuple[Perm, ...] | None  # the permissions at the first access (for watches)
    modified: bool = False
    fire: Match | None = None  # the watch event to send on commit


@dataclass(slots=True)
class Transaction:
    id: int
    generation: int
    accessed: dict[str, Access] = field(default_factory=dict)
    fail: bool = False  # a write failed part-way: the commit is refused
    node_created: bool = False

    def queue(self, name: str, match: Match) -> None:
        """queue_watches: a subtree event replaces an exact one, never the other way."""
        access = self.accessed.get(name)
        if access is None:
            self.fail = True
            return
        if access.fire is None or match is Match.SUBTREE:
            access.fire = match
