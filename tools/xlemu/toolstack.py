"""The toolstack behind ``xlemu``: what xl/libxl do, over xenctrl and xenguest only.

Every function returns data or text lines and raises :class:`ToolstackError` (one line, an
exit code) on failure; the CLI only parses arguments and prints.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from xenhost.xenstore import XenstoreError, XsHandle

from hypervisor_model.public import domctl, version
from hypervisor_model.public.errno import EINVAL, ENOENT, ENOMEM, errorcode
from xenctrl import XenError, misc
from xenctrl import domain as xcd
from xenctrl.api import HOST, Xenctrl
from xenctrl.handle import Host, xc_interface
from xenctrl.types import xc_domaininfo_t
from xlemu import libxl_xs
from xlemu.domconfig import domain_config, to_json, uuid_text
from xlemu.libxl_xs import LIBXL_MAXMEM_CONSTANT_KB, dom_path, read_kb

if TYPE_CHECKING:  # loaded by the commands that use them
    from xenguest.dom import ClaimMode
    from xlemu.picture import MemoryPicture

LIBXL_MIN_DOM0_MEM_KB = 128 * 1024
ERROR_FAIL, ERROR_INVAL, ERROR_DOMAIN_NOTFOUND = -3, -6, -21
SHUTDOWN_REASON_LETTERS = "-rscwS"
# What uname(2) reports in the emulated dom0.
UNAME = ("xenemu", "6.1.0-xenemu-amd64", "#1 SMP PREEMPT_DYNAMIC xenemu", "x86_64")
SCHEDULERS = {5: "credit", 6: "credit2", 7: "arinc653", 8: "rtds", 9: "null"}
VIRT_CAPS = [  # (physinfo capability bit, word), in xl's order
    (0x2, " pv"),
    (0x1, " hvm"),
    (0x8, " hap"),
    (0x10, " shadow"),
    (0x20, " iommu_hap_pt_share"),
    (0x40, " vmtrace"),
    (0x80, " vpmu"),
    (0x100, " gnttab-v1"),
    (0x200, " gnttab-v2"),
]


class ToolstackError(Exception):
    """A failed command: one line for stderr, and xl's exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def libxl_error(message: str, domid: int | None = None) -> str:
    """A line as libxl logs an error (xentoollog: "libxl: error: [Domain N:]message"); the
    FILE:LINE:FUNC part real libxl adds is left out."""
    return f"libxl: error: {'' if domid is None else f'Domain {domid}:'}{message}"


# -- sizes and bitmaps --------------------------------------------------------------------------

_SIZE = re.compile(r"^(\d+)([bBkKmMgGtT]?)$")
_SHIFTS_KB = {"": 10, "m": 10, "g": 20, "t": 30, "k": 0}


def parse_memory_kb(text: str) -> int:
    """xl's size argument: a number with an optional b/k/m/g/t suffix, MiB by default."""
    m = _SIZE.match(text)
    if not m:
        raise ToolstackError(f"invalid memory size: {text}")
    value, suffix = int(m.group(1)), m.group(2).lower()
    return value >> 10 if suffix == "b" else value << _SHIFTS_KB[suffix]


def print_bitmap(mask: int, length: int) -> str:
    """xl's print_bitmap: "all", "none" or ranges such as "0-1,3"."""
    full = (1 << length) - 1
    return "all" if length and mask & full == full else bit_ranges(mask, length)


def bit_ranges(mask: int, length: int) -> str:
    """The set bits below ``length`` as ranges such as "0-1,3" ("none" if there are none)."""
    ranges, i = [], 0
    while i < length:
        if mask >> i & 1:
            j = i
            while j + 1 < length and mask >> (j + 1) & 1:
                j += 1
            ranges.append(f"{i}-{j}" if j > i else str(i))
            i = j + 1
        else:
            i += 1
    return ",".join(ranges) or "none"


# -- the toolstack ------------------------------------------------------------------------------


class XlConf(NamedTuple):
    """The global settings of xl.conf that matter here."""

    claim_mode: ClaimMode = "legacy"  # xl's default claim_mode=1


class Toolstack:
    """One command's view of the host, through a dom0 xenctrl handle and a xenstore
    connection (as libxl_ctx holds both)."""

    def __init__(self, hv: Host, xs: XsHandle, conf: XlConf | None = None) -> None:
        self.hv = hv
        self.xs = xs
        self.conf = conf or XlConf()
        self.api = Xenctrl(hv)
        self.xch: xc_interface = self.api.xch

    # -- domains by name ---------------------------------------------------------------------

    def name(self, domid: int) -> str:
        """The name xl prints: libxl_domid_to_name, "(null)" when xenstore has none."""
        return libxl_xs.domain_name(self.xs, domid) or "(null)"

    def find_domain(self, text: str) -> int:
        """A domid from a number (not checked) or a name (find_domain in xl_utils.c)."""
        if text.isdigit():
            return int(text)
        domid = self.find_domain_by_name(text)
        if domid is None:
            raise ToolstackError(f"{text} is an invalid domain identifier (rc={ERROR_INVAL})")
        return domid

    def find_domain_by_name(self, name: str) -> int | None:
        """libxl_name_to_domid: the first existing domain xenstore names so."""
        for info in self.domain_infos():
            if libxl_xs.domain_name(self.xs, info.domain) == name:
                return int(info.domain)
        return None

    def name_if_exists(self, domid: int) -> str | None:
        """The name of an existing domain (libxl_domid_to_name), else None."""
        try:
            xcd.xc_domain_getinfo_single(self.xch, domid)
        except XenError:
            return None
        return self.name(domid)

    def host_lines(self) -> list[str]:
        """``xlemu host show``: the nodes with their memory, CPUs and distances."""
        info = self.api.numainfo()
        p = self.api.physinfo()
        lines = [f"nodes: {p.nr_nodes} online, {p.nr_cpus} CPUs, {p.total_pages >> 8} MiB RAM"]
        cpus = [0] * len(info.nodes)
        for _, _, cpu_node in misc.xc_cputopoinfo(self.xch):
            cpus[cpu_node] += 1
        for n, node in enumerate(info.nodes):
            if node.size is None or node.free is None:
                lines.append(f"node{n}: offline")
                continue
            lines.append(
                f"node{n}: {node.size >> 20} MiB, {node.free >> 20} MiB free, {cpus[n]} CPUs, "
                f"distances {','.join(map(str, info.distances[n]))}"
            )
        return lines

    def domain_infos(self) -> list[xc_domaininfo_t]:
        return xcd.xc_domain_getinfolist(self.xch, 0, 1024)

    # -- xl info ------------------------------------------------------------------------------

    def info_lines(self, numa: bool = False) -> list[str]:
        """``xl info`` (``-n`` adds the CPU, device and NUMA tables)."""
        host, release, ver, machine = UNAME
        p = misc.xc_physinfo(self.xch)
        lines = [
            f"host                   : {host}",
            f"release                : {release}",
            f"version                : {ver}",
            f"machine                : {machine}",
            f"nr_cpus                : {p.nr_cpus}",
            f"max_cpu_id             : {p.max_cpu_id}",
            f"nr_nodes               : {p.nr_nodes}",
            f"cores_per_socket       : {p.cores_per_socket}",
            f"threads_per_core       : {p.threads_per_core}",
            f"cpu_mhz                : {p.cpu_khz // 1000}.{p.cpu_khz % 1000:03d}",
            "hw_caps                : " + ":".join(f"{c:08x}" for c in p.hw_cap),
            "virt_caps              :"
            + "".join(word for bit, word in VIRT_CAPS if p.capabilities & bit),
        ]
        per_mib = (1 << 20) // int(misc.xc_version(self.xch, version.XENVER_pagesize))  # type: ignore[arg-type]
        lines += [
            f"total_memory           : {p.total_pages // per_mib}",
            f"free_memory            : {(p.free_pages - p.outstanding_pages) // per_mib}",
            "sharing_freed_memory   : 0",
            "sharing_used_memory    : 0",
            f"outstanding_claims     : {p.outstanding_pages // per_mib}",
            "free_cpus              : 0",
        ]
        if numa:
            lines += self._topology_lines() + self._numa_lines()
        lines += self._xen_lines()
        lines.append("xend_config_format     : 4")
        return lines

    def _topology_lines(self) -> list[str]:
        lines = ["cpu_topology           :", "cpu:    core    socket     node"]
        lines += [
            f"{i:3d}:    {core:4d}     {socket:4d}     {node:4d}"
            for i, (core, socket, node) in enumerate(misc.xc_cputopoinfo(self.xch))
        ]
        return [
            *lines,
            "device topology        :",
            "device           node",
            "No device topology data available",
        ]

    def _numa_lines(self) -> list[str]:
        info = self.api.numainfo()
        lines = ["numa_info              :", "node:    memsize    memfree    distances"]
        for i, node in enumerate(info.nodes):
            if node.size is None or node.free is None:
                continue
            dists = info.distances[i]
            lines.append(
                f"{i:4d}:    {node.size >> 20:6d}     {node.free >> 20:6d}      {dists[0]}"
                + "".join(f",{d}" for d in dists[1:])
            )
        return lines

    def _xen_lines(self) -> list[str]:
        def text(cmd: int) -> str:
            value = misc.xc_version(self.xch, cmd)
            assert isinstance(value, bytes)
            return value.decode()

        ver = misc.xc_version(self.xch, version.XENVER_version)
        assert isinstance(ver, int)
        extra = text(version.XENVER_extraversion)
        compile_info = misc.xc_version(self.xch, version.XENVER_compile_info)
        params = misc.xc_version(self.xch, version.XENVER_platform_parameters)
        field = {k: bytes(v).split(b"\0", 1)[0].decode() for k, v in compile_info}  # type: ignore[union-attr,misc]
        sched = SCHEDULERS.get(misc.xc_sched_id(self.xch), "unknown")
        return [
            f"xen_major              : {ver >> 16}",
            f"xen_minor              : {ver & 0xFFFF}",
            f"xen_extra              : {extra}",
            f"xen_version            : {ver >> 16}.{ver & 0xFFFF}{extra}",
            f"xen_caps               : {text(version.XENVER_capabilities)}",
            f"xen_scheduler          : {sched}",
            f"xen_pagesize           : {misc.xc_version(self.xch, version.XENVER_pagesize)!s}",
            f"platform_params        : virt_start={params.virt_start:#x}",  # type: ignore[union-attr]
            f"xen_changeset          : {text(version.XENVER_changeset)}",
            f"xen_commandline        : {text(version.XENVER_commandline)}",
            f"cc_compiler            : {field['compiler']}",
            f"cc_compile_by          : {field['compile_by']}",
            f"cc_compile_domain      : {field['compile_domain']}",
            f"cc_compile_date        : {field['compile_date']}",
            "build_id               : ",
        ]

    # -- xl list / claims ----------------------------------------------------------------------

    def list_lines(
        self, domain: str | None = None, *, claims: bool = False, numa: bool = False
    ) -> list[str]:
        """``xl list`` (``-n`` adds node affinity) and ``xl claims`` (adds Claimed)."""
        header = "Name                                        ID   Mem VCPUs\tState\tTime(s)"
        header += "  Claimed" if claims else ""
        header += " NODE Affinity" if numa else ""
        infos = self._infos(domain)
        nr_nodes = misc.xc_physinfo(self.xch).nr_nodes
        lines = [header]
        for info in infos:
            f = info.flags
            shutdown = bool(f & domctl.XEN_DOMINF_shutdown)
            reason = (f >> domctl.XEN_DOMINF_shutdownshift) & domctl.XEN_DOMINF_shutdownmask
            reason = reason if shutdown else 0
            letters = (
                ("r" if f & domctl.XEN_DOMINF_running else "-")
                + ("b" if f & domctl.XEN_DOMINF_blocked else "-")
                + ("p" if f & domctl.XEN_DOMINF_paused else "-")
                + ("s" if shutdown else "-")
                + (SHUTDOWN_REASON_LETTERS[reason] if reason < 6 else "?")
                + ("d" if f & domctl.XEN_DOMINF_dying else "-")
            )
            mem = (info.tot_pages * 4 + info.outstanding_pages * 4) // 1024
            line = (
                f"{self.name(info.domain):<40s} {info.domain:5d} {mem:5d} "
                f"{info.nr_online_vcpus:5d}     {letters}  {info.cpu_time / 1e9:8.1f}"
            )
            if claims:
                line += f" {info.outstanding_pages * 4 // 1024:5d}"
            if numa:
                nodemap = xcd.xc_domain_node_getaffinity(self.xch, info.domain)
                line += " " + print_bitmap(int.from_bytes(nodemap, "little"), nr_nodes)
            lines.append(line)
        return lines

    def claims_by_node(self) -> list[tuple[int, dict[int, int]]]:
        """Every domain's claim set (HOST first), read with XEN_DOMCTL_claim_memory GET."""
        found = []
        for info in self.domain_infos():
            try:
                found.append((info.domain, self.api.domain_get_claims(info.domain)))
            except XenError:  # destroyed since it was listed (a storm's failed build)
                continue
        return found

    def claims_node_lines(self) -> list[str]:
        """``xlemu claims --nodes``: each domain's claim, host-wide and per node, in MiB."""
        nodes = [i for i, n in enumerate(self.api.numainfo().nodes) if n.size is not None]
        header = f"{'Name':<40s} {'ID':>5s} {'Host':>7s}" + "".join(
            f" {'Node' + str(n):>7s}" for n in nodes
        )
        lines = [header]
        for domid, claim_set in self.claims_by_node():
            line = f"{self.name(domid):<40s} {domid:5d} {claim_set.get(HOST, 0) >> 8:7d}"
            line += "".join(f" {claim_set.get(n, 0) >> 8:7d}" for n in nodes)
            lines.append(line)
        return lines

    # -- simple domain commands ----------------------------------------------------------------

    def _xc(self, action: Callable[[], object], message: str) -> None:
        try:
            action()
        except XenError as e:
            raise ToolstackError(f"{message}: {os.strerror(e.errno)}") from None

    def destroy(self, domain: str, force: bool = False) -> None:
        domid = self.find_domain(domain)
        if domid == 0 and not force:
            raise ToolstackError(
                "Not destroying domain 0; use -f to force.\nThis can only be done when using a "
                "disaggregated hardware domain and toolstack.\n"
            )
        try:  # libxl__destroy_domid: a domain that does not exist is not found
            xcd.xc_domain_getinfo_single(self.xch, domid)
        except XenError:
            raise ToolstackError(f"destroy failed (rc={ERROR_DOMAIN_NOTFOUND})") from None
        libxl_xs.destroy(self.xs, domid)  # devices_destroy_cb, before the domain goes
        self._xc(lambda: xcd.xc_domain_destroy(self.xch, domid), "destroy failed")

    def pause(self, domain: str, unpause: bool = False) -> str | None:
        """Pause or unpause; libxl's error line when Xen refuses, which xl prints and then
        exits 0 all the same (pause_domain/unpause_domain in xl_vmcontrol.c ignore it)."""
        domid = self.find_domain(domain)
        try:
            if not unpause:
                xcd.xc_domain_pause(self.xch, domid)
                return None
            # libxl__domain_unpause asks for the domain's type first
            try:
                xcd.xc_domain_getinfo_single(self.xch, domid)
            except XenError as e:
                return libxl_error(f"unable to get dominfo: {os.strerror(e.errno)}", domid)
            xcd.xc_domain_unpause(self.xch, domid)
        except XenError as e:
            what = "Unpausing domain" if unpause else "Pausing domain"
            return libxl_error(f"{what}: {os.strerror(e.errno)}", domid)
        return None

    # -- more lists: list -l, vm-list, sharing, uptime -----------------------------------------

    def _infos(self, domain: str | None) -> list[xc_domaininfo_t]:
        """Every domain, or the one named (main_list: "Error: Domain '%s' does not exist.")."""
        if domain is None:
            return self.domain_infos()
        domid = self.find_domain(domain)
        try:
            return [xcd.xc_domain_getinfo_single(self.xch, domid)]
        except XenError:
            raise ToolstackError(f"Error: Domain '{domain}' does not exist.") from None

    def list_long(self, domain: str | None = None) -> str:
        """``xl list -l``: each domain's configuration with its domid (list_domains_details),
        as libxl_retrieve_domain_configuration gives it: the name, uuid, vCPUs and current
        target and static-max from xenstore. A domain libxl did not make (dom0) has none
        and is left out."""
        out = []
        for info in self._infos(domain):
            dom = dom_path(info.domain)
            kind = self.xs.try_read(f"{libxl_xs.libxl_path(info.domain)}/type")
            static_max = read_kb(self.xs, f"{dom}/memory/static-max")
            target = read_kb(self.xs, f"{dom}/memory/target")
            if kind is None or static_max is None or target is None:
                continue
            video = read_kb(self.xs, f"{dom}/memory/videoram") or 0
            try:  # cpu/<N>/availability for each vCPU (libxl__build_post)
                vcpus = len(self.xs.directory(f"{dom}/cpu"))
            except XenstoreError:
                vcpus = 0
            config = domain_config(
                type=kind.decode(),
                name=self.name(info.domain),
                uuid=uuid_text(bytes(info.handle)),
                max_vcpus=vcpus,
                max_memkb=static_max,
                target_memkb=target + video,  # libxl__get_targetmem_fudge
                video_memkb=video if kind == b"hvm" else None,
            )
            out.append({"domid": info.domain, "config": config})
        return to_json(out)

    def vm_list_lines(self) -> list[str]:
        """``xl vm-list`` (list_vm in xl_info.c): every domain that is not a stub domain."""
        lines = ["UUID                                  ID    name"]
        for info in self.domain_infos():
            name = self.name(info.domain)
            lines.append(f"{uuid_text(bytes(info.handle))}  {info.domain}    {name:<30s}")
        return lines

    def sharing_lines(self, domain: str | None = None) -> list[str]:
        """``xl sharing`` (sharing in xl_mem.c): Mem is allocated + claimed, as in list."""
        lines = ["Name                                        ID   Mem Shared"]
        for info in self._infos(domain):
            mem = (info.tot_pages + info.outstanding_pages) * 4 // 1024
            shared = info.shr_pages * 4 // 1024
            lines.append(f"{self.name(info.domain):<40s} {info.domain:5d} {mem:5d}  {shared:5d}")
        return lines

    def vcpu_list_lines(self, domains: list[str]) -> list[str]:
        """``xl vcpu-list [Domain...]`` (vcpulist, print_vcpuinfo in xl_vcpu.c): a row per
        vCPU libxl_list_vcpu lists (0..max_vcpu_id) with its CPU, state, time and hard and
        soft affinity over the host's CPUs; an offline vCPU shows "-" and "--p"."""
        from xenctrl import vcpu as vcpu_xc

        nr_cpus = misc.xc_physinfo(self.xch).max_cpu_id + 1
        lines = [
            f"{'Name':<32s} {'ID':>5s} {'VCPU':>5s} {'CPU':>5s} {'State':>5s} {'Time(s)':>9s} "
            "Affinity (Hard / Soft)"
        ]
        ids = [self.find_domain(d) for d in domains] or [i.domain for i in self.domain_infos()]
        both = domctl.XEN_VCPUAFFINITY_HARD | domctl.XEN_VCPUAFFINITY_SOFT
        for domid in ids:
            try:
                info = xcd.xc_domain_getinfo_single(self.xch, domid)
            except XenError:
                continue  # libxl_list_vcpu logs "Getting dominfo" and lists nothing
            if info.max_vcpu_id == domctl.XEN_INVALID_MAX_VCPU_ID:
                continue
            name = self.name(domid)
            for v in range(info.max_vcpu_id + 1):
                vcpu = vcpu_xc.xc_vcpu_getinfo(self.xch, domid, v)
                hard, soft = vcpu_xc.xc_vcpu_getaffinity(self.xch, domid, v, both)
                if vcpu.online:
                    running, blocked = "r" if vcpu.running else "-", "b" if vcpu.blocked else "-"
                    where = f"{vcpu.cpu:5d} {running:>3s}{blocked}- "
                else:
                    where = f"{'-':>5s} {'-':>3s}-p "
                maps = [
                    print_bitmap(int.from_bytes(m or b"", "little"), nr_cpus) for m in (hard, soft)
                ]
                lines.append(
                    f"{name:<32s} {domid:5d} {v:5d}{where}{vcpu.cpu_time / 1e9:9.1f}  "
                    f"{maps[0]} / {maps[1]}"
                )
        return lines

    def cpupool_list_lines(self, pool: str | None, cpus: bool) -> list[str]:
        """``xl cpupool-list [-c] [Pool]`` (main_cpupoollist in xl_cpupool.c): the pools
        libxl_list_cpupool finds, asking Xen from the id after each one, named from
        xenstore's /local/pool/<id>/name."""
        from xenctrl import cpupool as cpupool_xc

        pools = []
        poolid = 0
        while True:
            try:
                info = cpupool_xc.xc_cpupool_getinfo(self.xch, poolid)
            except XenError:  # ENOENT past the last pool
                break
            raw = self.xs.try_read(f"/local/pool/{info.cpupool_id}/name")
            if raw is None:
                break  # cpupool_info fails without a name
            pools.append((raw.decode(), info))
            poolid = info.cpupool_id + 1
        if pool is not None and pool not in [n for n, _ in pools]:
            raise ToolstackError(f"Pool '{pool}' does not exist")
        lines = [
            f"{'Name':<19s}" + ("CPU list" if cpus else "CPUs   Sched     Active   Domain count")
        ]
        for name, info in pools:
            if pool is not None and name != pool:
                continue
            mask = int.from_bytes(info.cpumap, "little")
            ids = [c for c in range(mask.bit_length()) if mask >> c & 1]
            if cpus:
                lines.append(f"{name:<19s}" + ",".join(map(str, ids)))
            else:
                sched = SCHEDULERS.get(info.sched_id, "unknown")
                lines.append(f"{name:<19s}{len(ids):3d} {sched:>9s}       y       {info.n_dom:4d}")
        return lines

    def uptime_lines(
        self, domains: list[str], short: bool, now: int, dom0_uptime: int
    ) -> list[str]:
        """``xl uptime [-s] [Domain...]`` (print_uptime in xl_info.c): dom0's is the uptime of
        the machine xl runs on (its /proc/uptime), a guest's counts from its /vm/<uuid>/
        start_time; a guest without one is left out (libxl_vm_get_start_time)."""
        ids = [self.find_domain(d) for d in domains] or [i.domain for i in self.domain_infos()]
        lines = [] if short else [f"{'Name':<33s} {'ID':>4s} Uptime"]
        clock = time.strftime("%H:%M:%S", time.localtime(now))
        for domid in ids:
            if domid == 0:
                up = dom0_uptime
            else:
                vm = self.xs.try_read(f"{dom_path(domid)}/vm")
                started = self.xs.try_read(f"{vm.decode()}/start_time") if vm else None
                if started is None:
                    continue
                up = max(now - int(started.split(b".")[0] or b"0"), 0)
            text, name = uptime_text(up, short), self.name(domid)
            row = (
                f" {clock} up {text}, {name} ({domid})"
                if short
                else f"{name:<33s} {domid:4d} {text}"
            )
            lines.append(row)
        return lines

    def mem_max(self, domain: str, size: str) -> None:
        """Xen's max = value + 1 MiB; refused below xenstore's memory/target, the target
        less the video RAM (libxl_domain_setmaxmem); memory/static-max follows.

        A refusal prints libxl's line saying why, then xl's (set_memory_max in xl_mem.c,
        which names the size as typed)."""
        domid = self.find_domain(domain)
        kb = parse_memory_kb(size)
        failed = f"cannot set domid {domid} static max memory to : {size}"
        path = f"{dom_path(domid)}/memory/target"
        target = read_kb(self.xs, path)
        if target is None:
            raise ToolstackError(
                self._missing(domid, f"Cannot get memory info from {path}", failed)
            )
        if kb < target:
            raise ToolstackError(
                libxl_error(
                    "memory_static_max must be greater than or or equal to memory_dynamic_max",
                    domid,
                )
                + f"\n{failed}"
            )
        self._set_xen_max(domid, kb, f"xc_domain_setmaxmem domid={domid} memkb=", failed)
        self.xs.write(f"{dom_path(domid)}/memory/static-max", str(kb))

    def mem_set(self, domain: str, size: str) -> None:
        """libxl_set_memory_target: the new target is the size less the video RAM, at most
        memory/static-max, at least LIBXL_MIN_DOM0_MEM for dom0; Xen's max follows the
        size, and an HVM or PVH guest's PoD target the new target plus 1 MiB (in pages: a
        no-op unless it has PoD entries left). Dom0's sizes are first filled in from Xen
        (libxl__fill_dom0_memory_info).

        A refusal prints libxl's line saying why, then xl's (set_memory_target in xl_mem.c)."""
        domid = self.find_domain(domain)
        kb = parse_memory_kb(size)
        failed = f"cannot set domid {domid} dynamic max memory to : {size}"
        memory = f"{dom_path(domid)}/memory"

        def refuse(why: str) -> ToolstackError:
            return ToolstackError(libxl_error(why, domid) + f"\n{failed}")

        def set_target(t: int) -> None:
            target = read_kb(self.xs, f"{memory}/target", t)
            if target is None and domid == 0:
                info = xcd.xc_domain_getinfo_single(self.xch, 0)
                self.xs.write(f"{memory}/target", str(info.tot_pages * 4), t)
                self.xs.write(f"{memory}/static-max", str(info.max_pages * 4), t)
                target = info.tot_pages * 4
            if target is None:
                why = f"Cannot get target memory info from {memory}/target"
                raise ToolstackError(self._missing(domid, why, failed))
            static_max = read_kb(self.xs, f"{memory}/static-max", t)
            if static_max is None:
                why = f"Cannot get memory info from {memory}/static-max"
                raise ToolstackError(self._missing(domid, why, failed))
            new_target = kb - (read_kb(self.xs, f"{memory}/videoram", t) or 0)
            if new_target > static_max:
                raise refuse("memory_dynamic_max must be less than or equal to memory_static_max")
            if domid == 0 and new_target < LIBXL_MIN_DOM0_MEM_KB:
                raise refuse(f"New target {new_target} for dom0 is below the minimum threshold")
            self._set_xen_max(domid, kb, "xc_domain_setmaxmem memkb=", failed)
            kind = self.xs.try_read(f"{libxl_xs.libxl_path(domid)}/type", t)
            if domid and kind not in (None, b"pv"):  # the PoD cache follows the target
                pages = (new_target + LIBXL_MAXMEM_CONSTANT_KB) // 4
                try:
                    xcd.xc_domain_set_pod_target(self.xch, domid, pages)
                except XenError as e:
                    why = f"xc_domain_set_pod_target memkb={pages} failed rc=-1"
                    raise refuse(f"{why}: {os.strerror(e.errno)}") from None
            self.xs.write(f"{memory}/target", str(new_target), t)

        self.xs.transact(set_target)

    @staticmethod
    def _missing(domid: int, why: str, failed: str) -> str:
        """libxl's LOGED line for a xenstore read that found nothing, then xl's line."""
        return libxl_error(f"{why}: No such file or directory", domid) + f"\n{failed}"

    def _set_xen_max(self, domid: int, kb: int, call: str, failed: str) -> None:
        """Xen's limit is the new size plus LIBXL_MAXMEM_CONSTANT (libxl_domain_setmaxmem)."""
        memkb = kb + LIBXL_MAXMEM_CONSTANT_KB
        try:
            xcd.xc_domain_setmaxmem(self.xch, domid, memkb)
        except XenError as e:
            why = f"{call}{memkb} failed rc=-1: {os.strerror(e.errno)}"
            raise ToolstackError(libxl_error(why, domid) + f"\n{failed}") from None

    def dmesg(self, clear: bool = False) -> str:
        text, _ = misc.xc_readconsolering(self.xch, 1 << 20, clear=int(clear))
        return text.decode(errors="replace")

    def debug_keys(self, keys: str) -> None:
        self._xc(lambda: misc.xc_send_debug_keys(self.xch, keys), "cannot send debug keys")

    # -- claim sets ------------------------------------------------------------------------------

    def claim_set(self, domain: str, entries: Iterable[str], clear: bool = False) -> dict[int, int]:
        """Install a claim set from ``nodeN=SIZE`` / ``host=SIZE`` words; returns it read back."""
        domid = self.find_domain(domain)
        claims: dict[int, int] = {}
        for word in entries:
            key, _, size = word.partition("=")
            if not size:
                raise ToolstackError(f"expected TARGET=SIZE (node0=2G, host=512M), got {word!r}")
            if key == "host":
                target = HOST
            elif key.startswith("node") and key[4:].isdigit():
                target = int(key[4:])
            else:
                raise ToolstackError(f"expected a target node<N> or host, got {key!r}")
            if target in claims:  # Xen refuses a node twice; say which
                raise ToolstackError(f"{key} given twice: give each target once")
            claims[target] = parse_memory_kb(size) >> 2
        if clear:
            claims = {}
        elif not claims:
            raise ToolstackError("expected at least one TARGET=SIZE, or --clear")
        try:
            self.api.domain_claim_memory(domid, claims)
        except XenError as e:
            name = errorcode.get(e.errno, str(e.errno))
            why = self._why_claim_refused(domid, claims, e.errno)
            raise ToolstackError(
                f"cannot set the claim set of domain {domid}: {why} ({name})"
            ) from None
        return self.api.domain_get_claims(domid)

    def _why_claim_refused(self, domid: int, claims: dict[int, int], errno: int) -> str:
        """What to change, worked out from what the toolstack can see (the hypervisor
        answers only an errno): the rules are set_claim_entries' (v7)."""
        try:
            info = xcd.xc_domain_getinfo_single(self.xch, domid)
        except XenError:
            return f"no domain {domid}"
        numa = self.api.numainfo()
        online = [n for n, node in enumerate(numa.nodes) if node.free is not None]
        nodes = {t: p for t, p in claims.items() if t != HOST}
        total = sum(claims.values())
        if errno == ENOENT and (missing := [n for n in nodes if n not in online]):
            mask = sum(1 << n for n in online)
            return f"no node {missing[0]}: the host has nodes {bit_ranges(mask, len(numa.nodes))}"
        if errno == EINVAL and total + info.tot_pages > info.max_pages:
            return (
                f"claim {total >> 8} MiB + tot_pages {info.tot_pages >> 8} MiB exceeds max_mem "
                f"{info.max_pages >> 8} MiB: raise it with mem-max"
            )
        if errno == ENOMEM:
            others = [c for d, c in self.claims_by_node() if d != domid]
            for n, pages in nodes.items():
                unclaimed = ((numa.nodes[n].free or 0) >> 12) - sum(c.get(n, 0) for c in others)
                if pages > unclaimed:
                    return f"node {n} has {unclaimed >> 8} MiB unclaimed: claim at most that there"
            unclaimed = self.api.physinfo().free_pages - sum(sum(c.values()) for c in others)
            return f"the host has {unclaimed >> 8} MiB unclaimed: claim at most that"
        return os.strerror(errno)

    # -- the picture ----------------------------------------------------------------------------

    def memory_picture(self) -> MemoryPicture:
        """Per node, each domain's pages (Xen's 'u' dump) and claims (each claim set, read
        with XEN_DOMCTL_claim_memory GET) and the free memory; the host-wide claims and
        xl info's free_memory."""
        from xenguest.storm import pages_by_node
        from xlemu.picture import MemoryPicture, NodeUsage

        info = self.api.numainfo()
        placement = pages_by_node(self.xch)
        claim_sets = dict(self.claims_by_node())
        nodes = []
        for n, node in enumerate(info.nodes):
            if node.size is None or node.free is None:
                continue
            nodes.append(
                NodeUsage(
                    node=n,
                    size=node.size >> 12,
                    free=node.free >> 12,
                    domains={d: pages.get(n, 0) for d, pages in placement.items()},
                    claims={d: c[n] for d, c in claim_sets.items() if c.get(n)},
                )
            )
        names = {d: self.name(d) for d in placement.keys() | claim_sets.keys()}
        host = {d: c[HOST] for d, c in claim_sets.items() if c.get(HOST)}
        p = self.api.physinfo()
        return MemoryPicture(nodes, names, host, p.free_pages - p.outstanding_pages)

    # -- placement ------------------------------------------------------------------------------

    def place(
        self, memkb: int, vcpus: int, candidates: Iterable[int] | None = None
    ) -> list[int] | None:
        """libxl's automatic placement: the fewest nodes (among ``candidates``, the nodes of
        the vCPUs' hard affinity) whose unclaimed free memory and CPUs cover the guest,
        preferring nodes with fewer vCPUs, then more free memory. None on a 1-node host."""
        info = self.api.numainfo()
        online = [n for n, node in enumerate(info.nodes) if node.free is not None]
        if len(online) <= 1:
            return None
        if candidates is not None:
            online = [n for n in online if n in set(candidates)]
            if not online:
                return None
        claimed = {n: 0 for n in online}
        for _, claim_set in self.claims_by_node():
            for target, pages in claim_set.items():
                if target in claimed:
                    claimed[target] += pages
        free_kb = {n: ((info.nodes[n].free or 0) >> 10) - claimed[n] * 4 for n in online}
        cpus = {n: 0 for n in online}
        for _, _, node in misc.xc_cputopoinfo(self.xch):
            if node in cpus:
                cpus[node] += 1
        per_node = max(max(cpus.values()), 1)
        vcpus_on = self._vcpus_on_nodes(online)
        for size in range(max(1, math.ceil(vcpus / per_node)), len(online) + 1):
            fits = [
                c
                for c in itertools.combinations(online, size)
                if sum(free_kb[n] for n in c) >= memkb and sum(cpus[n] for n in c) >= vcpus
            ]
            if fits:
                best = min(
                    fits, key=lambda c: (sum(vcpus_on[n] for n in c), -sum(free_kb[n] for n in c))
                )
                return list(best)
        return None

    def _vcpus_on_nodes(self, nodes: list[int]) -> dict[int, int]:
        counts = {n: 0 for n in nodes}
        for info in self.domain_infos():
            try:
                nodemap = xcd.xc_domain_node_getaffinity(self.xch, info.domain)
            except XenError:  # gone since it was listed: nr_vcpus_on_nodes skips it
                continue
            mask = int.from_bytes(nodemap, "little")
            # nr_vcpus_on_nodes counts every vCPU libxl_list_vcpu lists (0..max_vcpu_id),
            # online or not, so a paused domain's vCPUs count too.
            vcpus = (
                0 if info.max_vcpu_id == domctl.XEN_INVALID_MAX_VCPU_ID else info.max_vcpu_id + 1
            )
            for n in nodes:
                if mask >> n & 1:
                    counts[n] += vcpus
        return counts


def uptime_text(seconds: int, short: bool) -> str:
    """uptime_to_string in xl_info.c: days, then H:MM(:SS)."""
    day, rest = divmod(seconds, 86400)
    hour, rest = divmod(rest, 3600)
    minute, sec = divmod(rest, 60)
    days = f"{day} day{'s' if day > 1 else ''}, " if day else ""
    return f"{days}{hour:2d}:{minute:02d}" + ("" if short else f":{sec:02d}")


def paging_memory_kb(maxmem_kb: int, vcpus: int) -> int:
    """libxl__get_required_paging_memory, the default shadow_memkb: 1 MiB per vCPU plus one
    page per MiB of RAM, for the P2M (HVM/PVH with HAP, on wherever the host has it) or for
    log-dirty shadowing (PV)."""
    return 4 * (256 * vcpus + (maxmem_kb >> 10))


def need_memory_kb(memory_kb: int, maxmem_kb: int, vcpus: int, hvm: bool) -> int:
    """libxl__domain_need_memory_calculate: target, shadow pool and slack, in 2 MiB steps."""
    need = memory_kb + paging_memory_kb(maxmem_kb, vcpus) + (2048 if hvm else 1024)
    return -(-need // 2048) * 2048
