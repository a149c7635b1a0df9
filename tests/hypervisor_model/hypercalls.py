"""Raw hypercalls for the model's own tests: build the bytes, bounce them through the arena.

This is deliberately thin (no errno translation, no conveniences beyond packing), so the
tests see exactly what the hypervisor returns. It speaks the host's Xen release unless told
another (interface versions, the createdomain layout). The library client is ``xenctrl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from construct import Construct, Container

import hypervisor_model
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory, sysctl
from hypervisor_model.public.releases import MASTER, Release
from hypervisor_model.public.xen import (
    DOMID_ANY,
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_sysctl,
)

MiB = 256  # pages per MiB


class Guest:
    """Issues hypercalls as one domain of an emulated host."""

    def __init__(
        self, hv: hypervisor_model.Hypervisor, domid: int = 0, release: Release | None = None
    ) -> None:
        self.hv = hv
        self.domid = domid
        self.release = release or hv.release

    # -- the three hypercalls ---------------------------------------------------------------

    def domctl(
        self,
        cmd: int,
        domain: int,
        layout: Construct | None = None,
        payload: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> tuple[int, Container]:
        """Return the result and the domctl as the hypervisor left it in guest memory."""
        if version is None:
            version = self.release.domctl_interface_version
        union = build(layout, payload) if layout is not None and payload is not None else b""
        raw = build(
            domctl.xen_domctl,
            dict(cmd=cmd, interface_version=version, domain=domain, u=union),
        )
        with self.hv.arena.alloc(len(raw)) as buf:
            buf.mem[: len(raw)] = raw
            rc = self.hv.hypercall(HYPERVISOR_domctl, buf.addr, caller=self.domid)
            after = parse(domctl.xen_domctl, bytes(buf.mem[: len(raw)]))
        if layout is not None:
            after.payload = parse(layout, after.u[: layout.sizeof()])
        return rc, after

    def sysctl(
        self,
        cmd: int,
        layout: Construct | None = None,
        payload: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> tuple[int, Container | None]:
        if version is None:
            version = self.release.sysctl_interface_version
        union = build(layout, payload) if layout is not None and payload is not None else b""
        raw = build(sysctl.xen_sysctl, dict(cmd=cmd, interface_version=version, u=union))
        with self.hv.arena.alloc(len(raw)) as buf:
            buf.mem[: len(raw)] = raw
            rc = self.hv.hypercall(HYPERVISOR_sysctl, buf.addr, caller=self.domid)
            after = parse(sysctl.xen_sysctl, bytes(buf.mem[: len(raw)]))
        return rc, parse(layout, after.u[: layout.sizeof()]) if layout is not None else None

    def memory_op(self, op: int, layout: Construct | None, payload: dict[str, Any]) -> int:
        if layout is None:
            return self.hv.hypercall(HYPERVISOR_memory_op, op, 0, caller=self.domid)
        raw = build(layout, payload)
        with self.hv.arena.alloc(len(raw)) as buf:
            buf.mem[: len(raw)] = raw
            return self.hv.hypercall(HYPERVISOR_memory_op, op, buf.addr, caller=self.domid)

    # -- packing helpers --------------------------------------------------------------------

    def createdomain(self, domid: int = DOMID_ANY, hvm: bool = True) -> tuple[int, int]:
        """XEN_DOMCTL_createdomain (HVM with HAP, or PV): the result and the domid."""
        flags = domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap if hvm else 0
        rc, after = self.domctl(
            domctl.XEN_DOMCTL_createdomain,
            domid,
            self.release.xen_domctl_createdomain,
            createdomain_payload(flags, self.release),
        )
        return rc, int(after.domain)

    def create(self, domid: int = DOMID_ANY, hvm: bool = True, max_mib: int | None = None) -> int:
        rc, domid = self.createdomain(domid, hvm)
        assert rc == 0, rc
        if max_mib is not None:
            assert self.max_mem(domid, max_mib * 1024) == 0
        return domid

    def destroy(self, domid: int) -> int:
        return self.domctl(domctl.XEN_DOMCTL_destroydomain, domid)[0]

    def max_mem(self, domid: int, max_memkb: int) -> int:
        return self.domctl(
            domctl.XEN_DOMCTL_max_mem, domid, domctl.xen_domctl_max_mem, dict(max_memkb=max_memkb)
        )[0]

    def info(self, domid: int) -> Container:
        rc, after = self.domctl(
            domctl.XEN_DOMCTL_getdomaininfo, domid, domctl.xen_domctl_getdomaininfo
        )
        assert rc == 0, rc
        return after.payload

    def paging_pool(self, domid: int) -> int:
        """The pages of a domain's paging pool (XEN_DOMCTL_get_paging_mempool_size); 0 for
        a PV guest, which has none (EOPNOTSUPP)."""
        rc, after = self.domctl(
            domctl.XEN_DOMCTL_get_paging_mempool_size,
            domid,
            domctl.xen_domctl_paging_mempool,
            dict(size=0),
        )
        return int(after.payload.size) >> 12 if rc == 0 else 0

    def shadow_op(self, domid: int, op: int, mb: int = 0, mode: int = 0) -> tuple[int, int]:
        """XEN_DOMCTL_shadow_op: the result and ``mb`` as Xen copied it back."""
        rc, after = self.domctl(
            domctl.XEN_DOMCTL_shadow_op,
            domid,
            domctl.xen_domctl_shadow_op,
            dict(
                op=op,
                mode=mode,
                mb=mb,
                pad=0,
                dirty_bitmap=0,
                pages=0,
                stats=dict(fault_count=0, dirty_count=0),
            ),
        )
        return rc, int(after.payload.mb)

    def mempool(self, domid: int, size: int | None = None) -> tuple[int, int]:
        """XEN_DOMCTL_get_paging_mempool_size, or set_ with ``size``: result and bytes."""
        cmd = (
            domctl.XEN_DOMCTL_get_paging_mempool_size
            if size is None
            else domctl.XEN_DOMCTL_set_paging_mempool_size
        )
        rc, after = self.domctl(cmd, domid, domctl.xen_domctl_paging_mempool, dict(size=size or 0))
        return rc, int(after.payload.size)

    def node_free(self, node: int) -> int:
        """Free pages on a node: XEN_SYSCTL_availheap over every zone (bytes >> 12)."""
        rc, out = self.sysctl(
            sysctl.XEN_SYSCTL_availheap,
            sysctl.xen_sysctl_availheap,
            dict(min_bitwidth=0, max_bitwidth=0, node=node, avail_bytes=0),
        )
        assert rc == 0 and out is not None
        return int(out.avail_bytes) >> 12

    def physinfo(self) -> Container:
        rc, info = self.sysctl(sysctl.XEN_SYSCTL_physinfo, sysctl.xen_sysctl_physinfo)
        assert rc == 0, rc
        assert info is not None
        return info

    def claim_pages(self, domid: int, pages: int, **fields: int) -> int:
        payload = dict(extent_start=0, nr_extents=pages, extent_order=0, mem_flags=0, domid=domid)
        payload.update(fields)
        return self.memory_op(memory.XENMEM_claim_pages, memory.xen_memory_reservation, payload)

    def claim_set(self, domid: int, entries: Sequence[tuple[int, int]], **fields: int) -> int:
        """SET ``(target, pages)`` entries; returns the raw result."""
        raw = b"".join(
            build(domctl.xen_memory_claim, dict(pages=p, target=t, cmd=fields.get("cmd", 0)))
            for t, p in entries
        )
        with self.hv.arena.alloc(len(raw)) as buf:
            buf.mem[: len(raw)] = raw
            rc, _ = self.domctl(
                domctl.XEN_DOMCTL_claim_memory,
                domid,
                domctl.xen_domctl_claim_memory,
                dict(
                    claim_set=fields.get("claim_set", buf.addr),
                    nr_entries=fields.get("nr_entries", len(entries)),
                    mode=fields.get("mode", domctl.XEN_DOMCTL_CLAIM_MEMORY_SET),
                ),
            )
        return rc

    def claim_get(self, domid: int, capacity: int) -> tuple[int, int, list[tuple[int, int]]]:
        """GET into a buffer of ``capacity`` entries: result, nr_entries, entries read."""
        size = domctl.xen_memory_claim.sizeof()
        with self.hv.arena.alloc(capacity * size) as buf:
            rc, after = self.domctl(
                domctl.XEN_DOMCTL_claim_memory,
                domid,
                domctl.xen_domctl_claim_memory,
                dict(
                    claim_set=buf.addr if capacity else 0,
                    nr_entries=capacity,
                    mode=domctl.XEN_DOMCTL_CLAIM_MEMORY_GET,
                ),
            )
            nr = after.payload.nr_entries
            entries = [
                (e.target, e.pages)
                for e in (
                    parse(domctl.xen_memory_claim, bytes(buf.mem[i * size : (i + 1) * size]))
                    for i in range(min(nr, capacity) if rc == 0 else 0)
                )
            ]
        return rc, nr, entries

    def reservation(
        self,
        op: int,
        domid: int,
        frames: Sequence[int] | None,
        order: int = 0,
        flags: int = 0,
        *,
        nr_extents: int | None = None,
    ) -> tuple[int, list[int]]:
        """populate / increase / decrease with an extent list; returns the count and the
        list as the hypervisor left it (PV guests get MFNs back)."""
        frames = list(frames or [])
        count = len(frames) if nr_extents is None else nr_extents
        with self.hv.arena.alloc(max(len(frames), 1) * 8) as lst:
            for i, f in enumerate(frames):
                lst.mem[i * 8 : i * 8 + 8] = f.to_bytes(8, "little")
            rc = self.memory_op(
                op,
                memory.xen_memory_reservation,
                dict(
                    extent_start=lst.addr if frames else 0,
                    nr_extents=count,
                    extent_order=order,
                    mem_flags=flags,
                    domid=domid,
                ),
            )
            out = [int.from_bytes(lst.mem[i * 8 : i * 8 + 8], "little") for i in range(len(frames))]
        return rc, out

    def populate(self, domid: int, gfns: Sequence[int], order: int = 0, flags: int = 0) -> int:
        return self.reservation(memory.XENMEM_populate_physmap, domid, gfns, order, flags)[0]

    def decrease(self, domid: int, gfns: Sequence[int], order: int = 0) -> int:
        return self.reservation(memory.XENMEM_decrease_reservation, domid, gfns, order)[0]

    def pod_target(
        self, op: int, domid: int, target_pages: int = 0, *, arg: int | None = None
    ) -> tuple[int, tuple[int, int, int]]:
        """XENMEM_set_pod_target / XENMEM_get_pod_target (``op`` may carry continuation
        bits): the result and (tot_pages, pod_cache_pages, pod_entries) as copied back;
        ``arg`` replaces the argument's address."""
        raw = build(
            memory.xen_pod_target,
            dict(
                target_pages=target_pages,
                tot_pages=0,
                pod_cache_pages=0,
                pod_entries=0,
                domid=domid,
            ),
        )
        with self.hv.arena.alloc(len(raw)) as buf:
            buf.mem[: len(raw)] = raw
            rc = self.hv.hypercall(
                HYPERVISOR_memory_op, op, buf.addr if arg is None else arg, caller=self.domid
            )
            out = parse(memory.xen_pod_target, bytes(buf.mem[: len(raw)]))
        return rc, (int(out.tot_pages), int(out.pod_cache_pages), int(out.pod_entries))

    def page_offline(self, cmd: int, start: int, end: int) -> tuple[int, list[int]]:
        count = end - start + 1 if end >= start else 1
        with self.hv.arena.alloc(count * 4) as st:
            rc, _ = self.sysctl(
                sysctl.XEN_SYSCTL_page_offline_op,
                sysctl.xen_sysctl_page_offline_op,
                dict(cmd=cmd, start=start, end=end, status=st.addr),
            )
            status = [int.from_bytes(st.mem[i * 4 : i * 4 + 4], "little") for i in range(count)]
        return rc, status


def createdomain_payload(flags: int, release: Release = MASTER) -> dict[str, Any]:
    """A createdomain payload as libxl fills one (PV unless CDF_hvm), one vCPU; 4.17's
    layout ignores ``altp2m``."""
    hvm_emulators = 0x1FF if release.hvm_pirq_optional else 0x3FF
    return dict(
        ssidref=0,
        handle=bytes(16),
        flags=flags,
        iommu_opts=0,
        max_vcpus=1,
        max_evtchn_port=1023,
        max_grant_frames=-1,
        max_maptrack_frames=-1,
        grant_opts=2,
        altp2m=dict(opts=0, nr=0),
        vmtrace_size=0,
        cpupool_id=0,
        # emulation_flags_ok: every emulator but vPCI and PIRQ for HVM (0x1FF; 4.17 requires
        # PIRQ: 0x3FF), none for PV
        arch=dict(
            emulation_flags=hvm_emulators if flags & domctl.XEN_DOMCTL_CDF_hvm else 0,
            misc_flags=0,
        ),
    )
