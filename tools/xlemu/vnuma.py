"""vNUMA beyond sizes and pnodes: each vnode's vCPUs and distances as xl reads them
(xl_parse.c parse_vnuma_config), libxl's check of the whole layout
(libxl_vnuma.c libxl__vnuma_config_check) and its handing of the layout to Xen
(libxl_dom.c set_vnuma_info: XEN_DOMCTL_setvnumainfo)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from xenctrl import domain as xcd
from xenctrl import xc_interface, xen_vmemrange_t
from xenguest.dom import xen_vmemrange
from xlemu.toolstack import ToolstackError

ERROR_VNUMA_CONFIG_INVALID = -20  # libxl_types.idl
_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


@dataclass(frozen=True)
class Vnode:
    """One vnode's vCPUs and distances (libxl_vnode_info's vcpus and distances)."""

    vcpus: frozenset[int]  # the bits set in its vCPU bitmap
    named: int  # vCPUs its vcpus= named, repeats included (xl counts them all)
    distances: tuple[int, ...]  # to each vnode, 0 where vdistances= gave none


def parse_vnode(items: Sequence[object], nr_vnodes: int, bitmap_bits: int) -> Vnode:
    """A vnode's vcpus= ("0-3,5") and vdistances= ("10,20") options: ranges set bits of a
    bitmap of ``bitmap_bits`` (a bit beyond it has no effect, as libxl_bitmap_set), the
    distances fill the vnode's row. xl ignores a malformed range; here it is an error."""
    vcpus: set[int] = set()
    named = 0
    distances = [0] * nr_vnodes
    for item in items:
        option, _, value = str(item).partition("=")
        if option == "vcpus":
            for spec in value.split(","):
                m = _RANGE.fullmatch(spec)
                if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
                    raise ToolstackError(f"xl: vnuma: invalid vcpus range: {spec!r}")
                first, last = int(m.group(1)), int(m.group(2) or m.group(1))
                named += last - first + 1
                vcpus.update(range(first, min(last + 1, bitmap_bits)))
        elif option == "vdistances":
            values = value.split(",")
            if len(values) > nr_vnodes:
                raise ToolstackError(f"xl: vnuma: {len(values)} vdistances for {nr_vnodes} vnodes")
            for j, text in enumerate(values):
                if not text.strip().isdigit():  # parse_ulong
                    raise ToolstackError(f'xl: failed to convert "{text}" to number')
                distances[j] = int(text)
    return Vnode(frozenset(vcpus), named, tuple(distances))


def max_vcpus(vnodes: Sequence[Vnode], maxvcpus: int | None, vcpus: int, host_cpus: int) -> int:
    """parse_vnuma_config's vCPU count: maxvcpus= must match the vCPUs the vnodes name;
    without it they may not outnumber the host's CPUs and become the count; none named
    leaves the count to vcpus= (parse_config_data), which it may not be below."""
    named = sum(v.named for v in vnodes)
    if maxvcpus:
        if maxvcpus != named:
            raise ToolstackError("xl: vnuma vcpus and maxvcpus= mismatch")
        count = maxvcpus
    else:
        if host_cpus < named:
            raise ToolstackError(
                "xl: vnuma specifies more vcpus than pcpus, use maxvcpus= to override this check."
            )
        count = named or vcpus
    if count < vcpus:
        raise ToolstackError("xl: maxvcpus < vcpus")
    return count


def config_check(vnodes: Sequence[Vnode], nr_vcpus: int) -> str | None:
    """libxl__vnuma_config_check's vCPU and distance checks: each vCPU on exactly one vnode,
    no vnode nearer to another than to itself. The error line, or None."""
    seen: set[int] = set()
    for vnode in vnodes:
        for j in sorted(vnode.vcpus):
            if j >= nr_vcpus:
                continue  # beyond the check's bitmap: setting and testing it do nothing
            if j in seen:
                return f"Vcpu {j} assigned more than once"
            seen.add(j)
    for i in range(nr_vcpus):
        if i not in seen:
            return f"Vcpu {i} is not assigned to any vnode"
    for i, vnode in enumerate(vnodes):
        for j, distance in enumerate(vnode.distances):
            if i != j and vnode.distances[i] > distance:
                return f"Distance from {i} to {j} smaller than {i}'s local distance"
    return None


def set_vnuma_info(
    xch: xc_interface,
    domid: int,
    vnodes: Sequence[Vnode],
    pnodes: Sequence[int],
    ranges: Sequence[xen_vmemrange],
    nr_vcpus: int,
) -> None:
    """set_vnuma_info: the ranges the build laid out, each vnode's pnode and distances row,
    and each vCPU's vnode, to Xen. Raises XenError."""
    n = len(vnodes)
    vcpu_to_vnode = [0] * nr_vcpus
    for i, vnode in enumerate(vnodes):
        for j in vnode.vcpus:
            if j < nr_vcpus:
                vcpu_to_vnode[j] = i
    xcd.xc_domain_setvnuma(
        xch,
        domid,
        n,
        len(ranges),
        nr_vcpus,
        [xen_vmemrange_t(r.start, r.end, r.flags, r.nid) for r in ranges],
        [d for vnode in vnodes for d in vnode.distances],
        vcpu_to_vnode,
        list(pnodes),
    )
