"""Staking and releasing the claim that protects a domain build, by claim mode.

"legacy" is Xen's meminit: one XENMEM_claim_pages for a target total. "numa" uses claim
sets (XEN_DOMCTL_claim_memory): one entry per physical node the vNUMA layout places memory
on, or, for a preferred node without vNUMA, what fits on that node plus the shortfall
host-wide. "off" stakes nothing. Every mode releases with a legacy claim of 0, as meminit
does (in v7 that drops host and node claims alike).
"""

from __future__ import annotations

from collections.abc import Mapping

from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST, XEN_DOMCTL_CLAIM_MEMORY_SET
from hypervisor_model.public.errno import ENOMEM
from xenctrl import XenError
from xenctrl.domain import (
    xc_domain_claim_memory,
    xc_domain_claim_pages,
    xc_domain_node_setaffinity,
)
from xenctrl.misc import nodemap, xc_numainfo
from xenctrl.types import xen_memory_claim_t
from xenguest.dom import XC_NUMA_NO_NODE, xc_dom_image
from xenguest.errors import XenguestError

HOST = XEN_DOMCTL_CLAIM_MEMORY_HOST


def claim_set(dom: xc_dom_image, claims: Mapping[int, int]) -> None:
    """SET a claim set ``{target: pages}`` atomically (raises XenError when refused)."""
    entries = [xen_memory_claim_t(pages=p, target=t) for t, p in claims.items()]
    xc_domain_claim_memory(
        dom.xch, dom.guest_domid, XEN_DOMCTL_CLAIM_MEMORY_SET, len(entries), entries
    )


def _split(node: int, share: int, pages: int) -> dict[int, int]:
    return {HOST: pages - share, node: share} if share else {HOST: pages}


def _claim_on_preferred_node(dom: xc_dom_image, node: int, pages: int) -> dict[int, int]:
    """Claim as much as fits on ``node`` and the shortfall host-wide, and bind allocation
    to the node by affinity. The largest share is found by trying: a refused SET changes
    nothing and a granted one replaces the last, so the search stays correct while other
    builders claim concurrently, and ends with the best split installed."""
    xc_domain_node_setaffinity(dom.xch, dom.guest_domid, nodemap(dom.xch, [node]))
    meminfo, _ = xc_numainfo(dom.xch)
    upper = min(pages, meminfo[node].memfree >> 12) if node < len(meminfo) else 0

    def granted(share: int) -> bool:
        try:
            claim_set(dom, _split(node, share, pages))
        except XenError as e:
            if e.errno != ENOMEM:
                raise
            return False
        return True

    if granted(upper):
        return _split(node, upper, pages)
    claim_set(dom, {HOST: pages})  # all host-wide, or the refusal itself
    low, high = 0, upper - 1  # share ``low`` is granted and installed
    while low < high:
        mid = (low + high + 1) // 2
        if granted(mid):
            low = mid
        else:
            high = mid - 1
    return _split(node, low, pages)


def stake(
    dom: xc_dom_image, step: str, legacy_pages: int, per_pnode: Mapping[int, int]
) -> dict[int, int]:
    """Stake the build's claim; returns the claim set staked (empty for "off").

    ``legacy_pages`` is what Xen's meminit passes to xc_domain_claim_pages; ``per_pnode``
    the pages the layout will populate on each physical node (XC_NUMA_NO_NODE: anywhere).
    A refusal raises XenguestError before anything is populated.
    """
    try:
        if dom.claim_mode == "off":
            return {}
        if dom.claim_mode == "legacy":
            xc_domain_claim_pages(dom.xch, dom.guest_domid, legacy_pages)
            return {HOST: legacy_pages}
        pinned = {n: p for n, p in per_pnode.items() if n != XC_NUMA_NO_NODE and p}
        anywhere = per_pnode.get(XC_NUMA_NO_NODE, 0)
        if not pinned and dom.claim_on_node != XC_NUMA_NO_NODE:
            return _claim_on_preferred_node(dom, dom.claim_on_node, anywhere)
        claims = {HOST: anywhere, **pinned} if anywhere or not pinned else dict(pinned)
        claim_set(dom, claims)
        return claims
    except XenError as e:
        raise XenguestError(
            step, e.errno, f"staking a {dom.claim_mode} claim", claim_refused=True
        ) from e


def release(dom: xc_dom_image) -> None:
    """Cancel whatever claim remains: meminit calls xc_domain_claim_pages(0) whether or not
    it staked one (harmless without a claim)."""
    xc_domain_claim_pages(dom.xch, dom.guest_domid, 0)
