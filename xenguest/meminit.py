"""x86 meminit hooks (tools/libs/guest/xg_dom_x86.c): claim, populate, release.

meminit_hvm: claim target - VGA hole, populate pfns 0-0x9F, then each vmemrange from 0xC0
(skipping the VGA hole) in steps of at most 1 GiB: a 1 GiB extent when aligned and clear of
the MMIO hole, else up to four 2 MiB extents, else 4 KiB pages; partial superpage results
fall back to smaller pages. meminit_pv: claim total_pages, then per range 2 MiB extents in
batches of 512, the rest in 4 KiB chunks of at most 1 Mi pages.
vNUMA ranges are populated with XENMEMF_exact_node(pnode).
"""

from __future__ import annotations

import ctypes

from hypervisor_model.public.domctl import XEN_DOMCTL_set_address_size, xen_domctl_address_size
from hypervisor_model.public.errno import EINVAL
from hypervisor_model.public.memory import (
    XENMEMF_exact_node,
    XENMEMF_get_node,
    XENMEMF_populate_on_demand,
)
from xenctrl import XenError
from xenctrl.domain import (
    xc_domain_populate_physmap,
    xc_domain_populate_physmap_exact,
    xc_domain_set_pod_target,
)
from xenctrl.handle import check, do_domctl
from xenguest import claims
from xenguest.dom import (
    PAGE_SHIFT,
    XC_NUMA_NO_NODE,
    log,
    traced,
    xc_dom_image,
    xen_vmemrange,
)
from xenguest.errors import XenguestError

SUPERPAGE_2MB_SHIFT, SUPERPAGE_1GB_SHIFT = 9, 18
SUPERPAGE_2MB_NR_PFNS, SUPERPAGE_1GB_NR_PFNS = 1 << 9, 1 << 18
SUPERPAGE_BATCH_SIZE = 512  # PV: 2 MiB extents per populate call
PV_4K_CHUNK = 1024 * 1024  # PV: 4 KiB pages per populate call
LOW_MEMORY_PFNS = 0xA0  # HVM: pfns below the VGA hole
VGA_HOLE_END_PFN = 0xC0
FOUR_GIB = 1 << 32
SIZE_NAMES = {0: "4 KiB pages", SUPERPAGE_2MB_SHIFT: "2 MiB", SUPERPAGE_1GB_SHIFT: "1 GiB"}


def _pfns(first: int, count: int, stride: int = 1) -> ctypes.Array[ctypes.c_uint64]:
    return (ctypes.c_uint64 * max(count, 1))(*range(first, first + count * stride, stride))


def _layout(dom: xc_dom_image, dummy: list[xen_vmemrange]) -> tuple[list[xen_vmemrange], list[int]]:
    """The caller's vNUMA layout, or one dummy vnode bound to no node."""
    if dom.vmemranges:
        return dom.vmemranges, dom.vnode_to_pnode
    return dummy, [XC_NUMA_NO_NODE]


def _range_flags(memflags: int, pnode: int) -> int:
    """A vNUMA range goes exactly to its pnode, unless the caller chose a node already."""
    if pnode != XC_NUMA_NO_NODE and XENMEMF_get_node(memflags) == XENMEMF_get_node(0):
        return memflags | XENMEMF_exact_node(pnode)
    return memflags


def _pages_per_pnode(
    ranges: list[xen_vmemrange], vnode_to_pnode: list[int], hole_range_pages: int = 0
) -> dict[int, int]:
    """What the layout will populate on each physical node (the numa claim set)."""
    per: dict[int, int] = {}
    for r in ranges:
        pnode = vnode_to_pnode[r.nid]
        skipped = hole_range_pages if r.start == 0 else 0
        per[pnode] = per.get(pnode, 0) + r.pages - skipped
    return per


class _Populator:
    """The populate calls of one build, counting what they placed for error reports."""

    def __init__(self, dom: xc_dom_image, step: str) -> None:
        self.dom, self.step = dom, step
        self.populated = 0

    def fail(self, errno: int, what: str, gfn: int | None, flags: int) -> XenguestError:
        node = XENMEMF_get_node(flags)
        return XenguestError(
            self.step,
            errno,
            what,
            gfn=gfn,
            node=None if node == 0xFF else node,
            populated_pages=self.populated,
        )

    def superpages(
        self, gfns: ctypes.Array[ctypes.c_uint64], count: int, order: int, flags: int
    ) -> int:
        """A non-exact superpage attempt: how many extents were done (short is fine)."""
        try:
            done = xc_domain_populate_physmap(
                self.dom.xch, self.dom.guest_domid, count, order, flags, gfns
            )
        except XenError as e:
            raise self.fail(e.errno, f"populating {SIZE_NAMES[order]}", gfns[0], flags) from e
        self.populated += done << order
        if self.dom.progress is not None:
            self.dom.progress(self.populated)
        return done

    def exact(self, gfns: ctypes.Array[ctypes.c_uint64], count: int, flags: int) -> None:
        """4 KiB pages, all or an error."""
        first = gfns[0]
        try:
            xc_domain_populate_physmap_exact(
                self.dom.xch, self.dom.guest_domid, count, 0, flags, gfns
            )
        except XenError as e:
            raise self.fail(e.errno, f"populating {count:#x} 4 KiB pages", first, flags) from e
        self.populated += count
        if self.dom.progress is not None:
            self.dom.progress(self.populated)


# -- HVM -----------------------------------------------------------------------------------


def _populate_hvm_range(p: _Populator, r: xen_vmemrange, flags: int) -> None:
    dom = p.dom
    end = r.end >> PAGE_SHIFT
    cur = VGA_HOLE_END_PFN if r.start == 0 and dom.device_model else r.start >> PAGE_SHIFT
    if r.start == 0 and dom.device_model:
        dom.stats.pages_4k += VGA_HOLE_END_PFN  # Xen credits 0xC0 though 0xA0 were populated
    while cur < end:
        count = min(end - cur, SUPERPAGE_1GB_NR_PFNS)
        start = cur
        to_1g = -start & (SUPERPAGE_1GB_NR_PFNS - 1)
        if start & (SUPERPAGE_1GB_NR_PFNS - 1) and count > to_1g:
            count = to_1g  # stop at the next 1 GiB boundary
        window_clear = (start << PAGE_SHIFT) + (1 << 30) <= dom.mmio_start or (
            start << PAGE_SHIFT
        ) >= dom.mmio_start + dom.mmio_size
        if dom.superpages and not (count | start) & (SUPERPAGE_1GB_NR_PFNS - 1) and window_clear:
            n = count >> SUPERPAGE_1GB_SHIFT
            done = p.superpages(_pfns(cur, n, SUPERPAGE_1GB_NR_PFNS), n, SUPERPAGE_1GB_SHIFT, flags)
            dom.stats.pages_1g += done
            cur += done << SUPERPAGE_1GB_SHIFT
            count -= done << SUPERPAGE_1GB_SHIFT
        if count:
            count = min(count, 4 * SUPERPAGE_2MB_NR_PFNS)
            to_2m = -start & (SUPERPAGE_2MB_NR_PFNS - 1)
            if start & (SUPERPAGE_2MB_NR_PFNS - 1) and count > to_2m:
                count = to_2m
            elif count & (SUPERPAGE_2MB_NR_PFNS - 1) and count > SUPERPAGE_2MB_NR_PFNS:
                count &= ~(SUPERPAGE_2MB_NR_PFNS - 1)  # leave the tail to 4 KiB pages
            # Alignment is judged on the iteration's starting frame, as in Xen.
            if dom.superpages and not (count | start) & (SUPERPAGE_2MB_NR_PFNS - 1):
                n = count >> SUPERPAGE_2MB_SHIFT
                gfns = _pfns(cur, n, SUPERPAGE_2MB_NR_PFNS)
                done = p.superpages(gfns, n, SUPERPAGE_2MB_SHIFT, flags)
                dom.stats.pages_2m += done
                cur += done << SUPERPAGE_2MB_SHIFT
                count -= done << SUPERPAGE_2MB_SHIFT
        if count:
            p.exact(_pfns(cur, count), count, flags)
            cur += count
            dom.stats.pages_4k += count


@traced
def meminit_hvm(dom: xc_dom_image) -> None:
    """Claim and populate an HVM/PVH guest's RAM; the claim is cancelled on every exit."""
    step = "meminit_hvm"
    try:
        _meminit_hvm(dom, step)
    finally:
        claims.release(dom)  # "ensure no unclaimed pages are left unused"


def _meminit_hvm(dom: xc_dom_image, step: str) -> None:
    memflags = dom.memflags
    if dom.total_pages > dom.target_pages:
        memflags |= XENMEMF_populate_on_demand
    dummy = [xen_vmemrange(0, dom.lowmem_end)]
    if dom.highmem_end > FOUR_GIB:
        dummy.append(xen_vmemrange(FOUR_GIB, dom.highmem_end))
    ranges, vnode_to_pnode = _layout(dom, dummy)
    if dom.vmemranges and memflags & XENMEMF_populate_on_demand:
        raise XenguestError(step, EINVAL, "cannot enable vNUMA and PoD at the same time")
    for r in ranges:
        log.debug("range: start=%#x end=%#x", r.start, r.end)
    total = sum(r.pages for r in ranges)
    if total != dom.total_pages:
        raise XenguestError(
            step, EINVAL, f"vNUMA memory pages mismatch ({total:#x} != {dom.total_pages:#x})"
        )
    dom.p2m_size = max(r.end >> PAGE_SHIFT for r in ranges)
    hole = dom.vga_hole_size if dom.device_model else 0
    per_pnode = _pages_per_pnode(ranges, vnode_to_pnode, hole)
    if memflags & XENMEMF_populate_on_demand:  # no vNUMA: claim the target, as xg_dom_x86.c
        per_pnode = {XC_NUMA_NO_NODE: dom.target_pages - dom.vga_hole_size}
    claims.stake(dom, step, dom.target_pages - dom.vga_hole_size, per_pnode)
    if memflags & XENMEMF_populate_on_demand:
        target = dom.target_pages - dom.vga_hole_size
        try:
            xc_domain_set_pod_target(dom.xch, dom.guest_domid, target)
        except XenError as e:
            raise XenguestError(step, e.errno, "setting the PoD target") from e
    p = _Populator(dom, step)
    if dom.device_model:
        # Xen populates low memory without a node flag; the numa mode keeps it on range 0's node.
        low_flags = memflags
        if dom.claim_mode == "numa":
            low_flags = _range_flags(memflags, vnode_to_pnode[ranges[0].nid])
        p.exact(_pfns(0, LOW_MEMORY_PFNS), LOW_MEMORY_PFNS, low_flags)
    for r in ranges:
        _populate_hvm_range(p, r, _range_flags(memflags, vnode_to_pnode[r.nid]))
    log.debug(
        "PHYSICAL MEMORY ALLOCATION: 4KB PAGES: 0x%016x 2MB PAGES: 0x%016x 1GB PAGES: 0x%016x",
        dom.stats.pages_4k,
        dom.stats.pages_2m,
        dom.stats.pages_1g,
    )


# -- PV --------------------------------------------------------------------------------------


def _x86_compat(dom: xc_dom_image) -> None:
    """Tell Xen the PV guest's address width (x86_compat): 32 for x86_32p, 64 for x86_64."""
    size = {"xen-3.0-x86_32p": 32, "xen-3.0-x86_64": 64}.get(dom.guest_type)
    if size is None:
        return
    rc, _ = do_domctl(
        dom.xch, XEN_DOMCTL_set_address_size, dom.guest_domid, xen_domctl_address_size, size=size
    )
    try:
        check(rc)
    except XenError as e:
        raise XenguestError("meminit_pv", e.errno, f"setting address size {size}") from e


def _p2m_add(dom: xc_dom_image, gfn: int, pages: int, mfn: int) -> None:
    """Record gfn -> mfn for ``pages`` frames, merging runs that continue each other."""
    if dom.pv_p2m:
        g, n, m = dom.pv_p2m[-1]
        if g + n == gfn and m + n == mfn:
            dom.pv_p2m[-1] = (g, n + pages, m)
            return
    dom.pv_p2m.append((gfn, pages, mfn))


def _populate_pv_range(p: _Populator, index: int, r: xen_vmemrange, pnode: int, flags: int) -> None:
    dom = p.dom
    base, pages = r.start >> PAGE_SHIFT, r.pages
    cursor = base
    super_pages = pages >> SUPERPAGE_2MB_SHIFT if dom.superpages else 0
    while super_pages:
        count = min(super_pages, SUPERPAGE_BATCH_SIZE)
        super_pages -= count
        gfns = _pfns(cursor, count, SUPERPAGE_2MB_NR_PFNS)
        done = p.superpages(gfns, count, SUPERPAGE_2MB_SHIFT, flags)
        for j in range(done):  # expand the returned MFNs into the p2m
            _p2m_add(dom, cursor + j * SUPERPAGE_2MB_NR_PFNS, SUPERPAGE_2MB_NR_PFNS, gfns[j])
        dom.stats.pages_2m += done
        cursor += done << SUPERPAGE_2MB_SHIFT
    while cursor < base + pages:
        chunk = min(PV_4K_CHUNK, base + pages - cursor)
        gfns = _pfns(cursor, chunk)
        try:
            p.exact(gfns, chunk, flags)
        except XenguestError as e:
            where = f" (v={index}, p={pnode})" if pnode != XC_NUMA_NO_NODE else ""
            log.error("meminit_pv: failed to allocate %#x pages%s", pages, where)
            raise e
        for k in range(chunk):
            _p2m_add(dom, cursor + k, 1, gfns[k])
        dom.stats.pages_4k += chunk
        cursor += chunk


@traced
def meminit_pv(dom: xc_dom_image) -> None:
    """Claim and populate a PV guest's RAM. As Xen's meminit_pv, the claim is cancelled
    only on success: a failure leaves what remains of it for the toolstack's destroy of
    the domain to drop (libxl's, or the storm runner's)."""
    step = "meminit_pv"
    _x86_compat(dom)
    dummy = [xen_vmemrange(0, dom.total_pages << PAGE_SHIFT)]
    ranges, vnode_to_pnode = _layout(dom, dummy)
    claims.stake(dom, step, dom.total_pages, _pages_per_pnode(ranges, vnode_to_pnode))
    total = sum(r.pages for r in ranges)
    dom.p2m_size = max(r.end >> PAGE_SHIFT for r in ranges)
    if total != dom.total_pages:
        raise XenguestError(
            step, EINVAL, f"vNUMA page count mismatch ({total:#x} != {dom.total_pages:#x})"
        )
    p = _Populator(dom, step)
    for i, r in enumerate(ranges):
        pnode = vnode_to_pnode[r.nid]
        _populate_pv_range(p, i, r, pnode, _range_flags(dom.memflags, pnode))
    claims.release(dom)  # "Ensure no unclaimed pages are left unused"
