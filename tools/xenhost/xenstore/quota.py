"""xenstored's quotas (domain.c quotas[] and quota_adm[]): hard limits per domain, a soft
memory limit, global values that domains inherit unless given their own. Dom0 has none.
"outstanding" and "memory" are kept and reported but limit nothing here: they meter the
shared ring page, which sockets do not have.
"""

from __future__ import annotations

from xenhost.xenstore.errors import XenstoreError
from xenhost.xenstore.wire import XENSTORE_REL_PATH_MAX

Q_VAL_DISABLED = 0xFFFFFFFF  # UINT_MAX: no such quota
SOFT = "soft-"
# name: (hard, soft, description), in quota_adm's order
DEFAULTS: dict[str, tuple[int, int, str]] = {
    "nodes": (1000, Q_VAL_DISABLED, "Nodes per domain"),
    "watches": (128, Q_VAL_DISABLED, "Watches per domain"),
    "outstanding": (20, Q_VAL_DISABLED, "Outstanding requests per domain"),
    "memory": (2 * 1024 * 1024 + 512 * 1024, 2 * 1024 * 1024, "Total Xenstore memory per domain"),
    "transactions": (10, Q_VAL_DISABLED, "Active transactions per domain"),
    "transaction-nodes": (1024, Q_VAL_DISABLED, "Max. number of accessed nodes per transaction"),
    "node-permissions": (5, Q_VAL_DISABLED, "Max. number of permissions per node"),
    "path-max": (XENSTORE_REL_PATH_MAX, Q_VAL_DISABLED, "Max. length of a node path"),
    "node-size": (2048, Q_VAL_DISABLED, "Max. size of a node"),
}


class Quotas:
    """The global quotas ([hard, soft] by name) and the domains' own."""

    __slots__ = ("per_domain", "values")

    def __init__(self) -> None:
        self.values = {k: [hard, soft] for k, (hard, soft, _) in DEFAULTS.items()}
        self.per_domain: dict[int, dict[str, list[int]]] = {}

    def exceeds(self, domid: int, name: str, value: int) -> bool:
        """domain_quota_val_exceeds: a value reaching the quota is refused; 0 disables."""
        if domid == 0:
            return False
        quota = self.values[name][0]
        own = self.per_domain.get(domid, {}).get(name)
        if own is not None and own[0] != Q_VAL_DISABLED:
            quota = own[0]
        return bool(quota) and value >= quota

    def names(self) -> list[str]:
        """GET_QUOTA without arguments: every quota that is set, soft ones prefixed."""
        found = []
        for key, (hard, soft) in self.values.items():
            found += [key] if hard != Q_VAL_DISABLED else []
            found += [SOFT + key] if soft != Q_VAL_DISABLED else []
        return found

    def _slot(self, name: str) -> tuple[str, int]:
        """parse_quota_name: "name" is the hard value, "soft-name" the soft one."""
        key, index = (name[len(SOFT) :], 1) if name.startswith(SOFT) else (name, 0)
        if key not in self.values or self.values[key][index] == Q_VAL_DISABLED:
            raise XenstoreError("EINVAL", f"no quota {name!r}")
        return key, index

    def get(self, name: str, domid: int | None = None) -> int:
        """A domain's own value, else the global one it started with (alloc_domain)."""
        key, index = self._slot(name)
        own = self.per_domain.get(domid, {}).get(key) if domid is not None else None
        if own is not None and own[index] != Q_VAL_DISABLED:
            return own[index]
        return self.values[key][index]

    def set(self, name: str, value: int, domid: int | None = None) -> None:
        key, index = self._slot(name)
        if value == Q_VAL_DISABLED:
            raise XenstoreError("EINVAL", "that value means no quota")
        if domid is None:
            self.values[key][index] = value
        else:
            own = self.per_domain.setdefault(domid, {}).setdefault(key, [Q_VAL_DISABLED] * 2)
            own[index] = value
