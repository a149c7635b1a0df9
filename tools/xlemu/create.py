"""``xlemu create``: an xl.cfg read as xl reads it, then a domain built in libxl's order:
create, vCPUs, NUMA placement or pinning, max_mem, meminit with the configured claims,
the special pages, unpause. A failed build leaves no domain, claim or memory behind."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from xenhost.xenstore import XsHandle

from hypervisor_model.public.errno import ENOMEM
from xenctrl import XenError, misc
from xenctrl import domain as xcd
from xenctrl.handle import Host
from xenctrl.remote import RemoteHost
from xenguest import XenguestError, hvm_layout, vnuma_hvm, vnuma_pv, xc_dom_allocate
from xenguest.boot import xc_dom_boot_image
from xenguest.dom import ClaimMode, xc_dom_boot_mem_init
from xenguest.magic import alloc_magic_pages
from xenguest.storm import BuildResult, StormReport, run_builders
from xlemu import libxl_xs, xlcfg
from xlemu import vnuma as vnuma_cfg
from xlemu.devicemodel import populate_video_ram
from xlemu.domconfig import domain_config, to_json
from xlemu.libxl_xs import LIBXL_MAXMEM_CONSTANT_KB, DomainInfo
from xlemu.toolstack import (
    ERROR_FAIL,
    ERROR_INVAL,
    Toolstack,
    ToolstackError,
    XlConf,
    libxl_error,
    need_memory_kb,
    paging_memory_kb,
)
from xlemu.vnuma import Vnode
from xlemu.xlconf import parse_failure

LIBXL_DEFAULT_MEMKB = 32 * 1024
HVM_VIDEO_MEMKB = 8 * 1024  # cirrus, libxl's default
Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]


class BuildError(ToolstackError):
    """A build that failed after its domain was made (and destroyed): xl's line, exit 3,
    and the libxenguest or libxenctrl error that caused it."""

    def __init__(self, message: str, cause: XenguestError | XenError) -> None:
        super().__init__(message, -ERROR_FAIL)
        self.cause = cause


@dataclass
class GuestConfig:
    """What a domain config asks for, in libxl's terms."""

    name: str
    type: str  # "hvm", "pv" or "pvh"
    memory_kb: int  # target
    maxmem_kb: int
    vcpus: int
    nodes: list[int] | None = None  # the nodes of the CPUs cpus= allows, or None for all
    vnuma: list[tuple[int, int]] | None = None  # (pnode, MiB) per vnode
    place: bool = True  # libxl's automatic NUMA placement (within ``nodes``)
    uuid: str | None = None  # uuid=, else each build draws one (libxl_uuid_generate)
    kernel: str | None = None
    vnodes: tuple[Vnode, ...] = ()  # each vnode's vCPUs and distances (vnuma=)

    @property
    def hvm(self) -> bool:
        return self.type != "pv"

    def info(self, uuid: str) -> DomainInfo:
        """What libxl writes to xenstore about the domain."""
        return DomainInfo(
            self.name,
            uuid,
            self.type,
            self.maxmem_kb,
            self.memory_kb,
            self.video_kb,
            self.vcpus,
            self.kernel,
        )

    @property
    def video_kb(self) -> int:
        return HVM_VIDEO_MEMKB if self.type == "hvm" else 0


def read_config(
    path: str, extra: list[str], announce: Callable[[str], None] | None = None
) -> xlcfg.Config:
    try:
        text = (
            ""
            if path == "/dev/null"
            else Path(path).read_bytes().decode("utf-8", "surrogateescape")
        )
    except OSError as e:
        raise ToolstackError(
            f"Failed to read config file: {path}: {e.strerror}", -ERROR_FAIL
        ) from None
    if announce is not None:  # create_domain (xl_vmcontrol.c) reads the file, then says so
        announce(path)
    try:
        return xlcfg.parse(text + xlcfg.extra_lines(extra), path, report=sys.stderr)
    except xlcfg.ConfigError as e:  # parse_config_data in xl_parse.c
        raise parse_failure(e, "Failed to parse config") from None
    except ValueError as e:
        raise ToolstackError(f"Failed to parse config: {e}") from None


def _type(cfg: xlcfg.Config) -> str:
    """type= is matched as a prefix of "hvm", then "pv", then "pvh" (parse_config_data)."""
    value = cfg.get_string("type").value
    if value is None:
        return "pv"
    for candidate in ("hvm", "pv", "pvh"):
        if candidate.startswith(value):
            return candidate
    raise ToolstackError(f"Invalid domain type {value}.")


def _cpu_nodes(ts: Toolstack, spec: str) -> list[int]:
    """The nodes of the CPUs a cpus= string names (parse_cpurange): "all", "2-5,^3",
    "node:1", "nodes:0-1"."""
    topology = misc.xc_cputopoinfo(ts.xch)
    cpus: set[int] = set()
    for part in spec.split(","):
        negate = part.startswith("^")
        body = part[1:] if negate else part
        nodes = body.startswith(("node:", "nodes:"))
        body = body.split(":", 1)[1] if nodes else body
        if body == "all":
            if negate:
                raise ToolstackError('Can\'t combine "^" and "all".')
            cpus |= set(range(len(topology)))
            continue
        low, _, high = body.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or (high and int(high) < int(low)):
            raise ToolstackError(f"Invalid pcpu range: {body}.")
        ids = range(int(low), int(high or low) + 1)
        known = {n for _, _, n in topology}
        if nodes and not set(ids) <= known:
            raise ToolstackError("libxl_node_to_cpumap failed.")
        chosen = {c for c, (_, _, n) in enumerate(topology) if n in ids} if nodes else set(ids)
        cpus = cpus - chosen if negate else cpus | chosen
    return sorted({topology[c][2] for c in cpus if c < len(topology)})


def _vnuma(ts: Toolstack, cfg: xlcfg.Config) -> list[tuple[int, int]] | None:
    """vnuma = [ ["pnode=P", "size=MiB", "vcpus=...", "vdistances=..."], ... ]."""
    got = cfg.get_list("vnuma", dont_warn=True).value
    if got is None:
        return None
    nr_nodes = misc.xc_physinfo(ts.xch).nr_nodes
    nodes = []
    for vnode in got:
        if isinstance(vnode, str):
            raise ToolstackError("xl: vnuma: expected a list per virtual node")
        fields = dict(str(item).partition("=")[::2] for item in vnode)
        try:
            pnode, size = int(fields["pnode"], 0), int(fields["size"], 0)
        except (KeyError, ValueError):
            raise ToolstackError("xl: vnuma: each node needs pnode= and size=") from None
        if pnode >= nr_nodes:
            raise ToolstackError(f"xl: invalid pnode number: {pnode}")
        nodes.append((pnode, size))
    return nodes


def guest_config(ts: Toolstack, cfg: xlcfg.Config) -> GuestConfig:
    """The settings of a config that matter for memory (parse_config_data)."""
    name = cfg.get_string("name").value
    if not name:
        raise ToolstackError("Domain name must be specified.")
    memory = cfg.get_long("memory").value
    maxmem = cfg.get_long("maxmem").value
    vcpus = cfg.get_long("vcpus").value or 1
    maxvcpus = cfg.get_long("maxvcpus").value
    # an unset memory is maxmem, else libxl's default; memory = 0 stays 0 (parse_config_data)
    given = memory if memory is not None else maxmem
    target_kb = LIBXL_DEFAULT_MEMKB if given is None else given << 10
    maxmem_kb = (maxmem << 10) if maxmem is not None else target_kb
    vnuma = _vnuma(ts, cfg)
    count, vnodes = maxvcpus or vcpus, tuple[Vnode, ...]()
    if vnuma:  # parse_vnuma_config: the vnodes' vCPUs may set the count
        host = misc.xc_physinfo(ts.xch)
        bits = maxvcpus or host.max_cpu_id + 1  # libxl_cpu_bitmap_alloc(max_vcpus or all)
        raw = cfg.get_list("vnuma", dont_warn=True).value or ()
        vnodes = tuple(vnuma_cfg.parse_vnode(v, len(vnuma), bits) for v in raw)
        count = vnuma_cfg.max_vcpus(vnodes, maxvcpus, vcpus, host.nr_cpus)
    if count < vcpus:
        raise ToolstackError("xl: maxvcpus < vcpus")
    if vnuma:
        total_kb = sum(size for _, size in vnuma) << 10
        if maxmem is not None and maxmem_kb != total_kb:
            raise ToolstackError("xl: maxmem and vnuma memory size mismatch")
        maxmem_kb = total_kb
        target_kb = total_kb if memory is None else target_kb
        if target_kb > total_kb:  # xl takes it silently; the guest gets only the vnodes
            print(
                f"xlemu: warning: vnuma holds {total_kb >> 10} MiB, less than memory = "
                f"{target_kb >> 10}: the guest gets {total_kb >> 10} MiB",
                file=sys.stderr,
            )
    # cpus="..." is vCPU hard affinity: placement still runs within those CPUs' nodes; a
    # list (one entry per vCPU) turns placement off (parse_config_data, numa_placement).
    cpus = cfg.get_string("cpus", dont_warn=True).value
    per_vcpu = cfg.get_list_as_string_list("cpus", dont_warn=True).value
    nodes, place = None, True
    if cpus:
        nodes = _cpu_nodes(ts, cpus)
    elif per_vcpu:
        nodes, place = sorted({n for spec in per_vcpu for n in _cpu_nodes(ts, spec)}), False
    guest = GuestConfig(
        name,
        _type(cfg),
        target_kb,
        maxmem_kb,
        count,
        nodes,
        vnuma,
        place,
        _uuid(cfg.get_string("uuid", dont_warn=True).value),
        cfg.get_string("kernel", dont_warn=True).value,
        vnodes,
    )
    # xl and libxl pass these on and the build fails somewhere inside: say what is wrong
    if target_kb <= guest.video_kb:
        video = guest.video_kb >> 10
        need = f"more than its {video} MiB of video RAM" if video else "some memory"
        raise ToolstackError(f"memory = {target_kb >> 10}: the guest needs {need}: raise memory")
    return guest


def _uuid(text: str | None) -> str | None:
    """uuid= as libxl_uuid_from_string reads it: 8-4-4-4-12 hexadecimal digits."""
    if text is None:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", text):
        raise ToolstackError(f"Failed to parse UUID: {text}")
    return text.lower()


def build(
    ts: Toolstack, guest: GuestConfig, *, paused: bool, progress: Progress | None = None
) -> int:
    """Create and build a domain; on failure destroy it and raise one xl-style line."""
    if guest.vnuma and guest.type == "pv":  # initiate_domain_create refuses, no domain made
        raise ToolstackError(libxl_error("PV vNUMA is not yet supported"), -ERROR_INVAL)
    if guest.vnuma and guest.memory_kb < guest.maxmem_kb:  # PoD (HVM/PVH target < max)
        raise ToolstackError(
            libxl_error("Cannot enable PoD and vNUMA at the same time"), -ERROR_INVAL
        )
    config = xcd.default_createdomain(guest.type == "hvm", guest.vcpus, pvh=guest.type == "pvh")
    info = guest.info(guest.uuid or str(uuid.uuid4()))
    memoryview(config.handle).cast("B")[:] = uuid.UUID(info.uuid).bytes  # the domain's handle
    try:
        domid = xcd.xc_domain_create(ts.xch, config=config)
    except XenError as e:
        raise ToolstackError(libxl_error(f"cannot make domain: {e}"), -ERROR_FAIL) from None
    if ts.find_domain_by_name(guest.name) is not None:  # libxl__domain_make names it after
        xcd.xc_domain_destroy(ts.xch, domid)  # xc_domain_create: the domid is used up
        raise ToolstackError(
            libxl_error(f'Domain with name "{guest.name}" already exists.', domid), -ERROR_FAIL
        )
    libxl_xs.domain_make(ts.xs, domid, info)
    # libxl__build_hvm checks a vNUMA layout once the domain is made
    if guest.vnuma and (why := vnuma_cfg.config_check(guest.vnodes, guest.vcpus)):
        libxl_xs.destroy(ts.xs, domid)
        xcd.xc_domain_destroy(ts.xch, domid)
        raise ToolstackError(
            libxl_error(why)
            + "\n"
            + libxl_error(
                f"cannot (re-)build domain: {vnuma_cfg.ERROR_VNUMA_CONFIG_INVALID}", domid
            ),
            -ERROR_FAIL,
        )
    if guest.nodes == []:  # cpus= names no CPU of the host: an empty hard affinity
        libxl_xs.destroy(ts.xs, domid)  # Xen refuses it (vcpu_set_hard_affinity)
        xcd.xc_domain_destroy(ts.xch, domid)
        raise ToolstackError(
            libxl_error("Setting vcpu affinity: Invalid argument", domid)
            + "\n"
            + libxl_error("setting affinity failed on vcpu `0'")  # libxl__build_pre
            + "\n"
            + libxl_error(f"cannot (re-)build domain: {ERROR_FAIL}", domid),
            -ERROR_FAIL,
        )
    try:
        _build(ts, domid, guest, progress)
        libxl_xs.build_post(ts.xs, domid, info)
        if not paused:
            xcd.xc_domain_unpause(ts.xch, domid)
    except (XenguestError, XenError) as e:
        libxl_xs.destroy(ts.xs, domid)  # libxl__domain_destroy, as after any failure
        xcd.xc_domain_destroy(ts.xch, domid)
        why = f"{e}: {_shortfall(ts, guest)}" if _claim_short(e) else str(e)
        raise BuildError(
            libxl_error(f"cannot (re-)build domain: {ERROR_FAIL}: {why}", domid), e
        ) from None
    return domid


def dry_run(guest: GuestConfig) -> str:
    """What ``xl -N create`` prints: the configuration as parsed (a uuid made up unless
    uuid= gave one), before libxl fills in its defaults such as the video RAM, as
    libxl_domain_config_to_json writes it."""
    return to_json(
        domain_config(
            type=guest.type,
            name=guest.name,
            uuid=guest.uuid or str(uuid.uuid4()),
            max_vcpus=guest.vcpus,
            max_memkb=guest.maxmem_kb,
            target_memkb=guest.memory_kb,
            vnuma=guest.vnuma or (),
        )
    )


def _claim_short(e: Exception) -> bool:
    return isinstance(e, XenguestError) and e.claim_refused and e.errno == ENOMEM


def _shortfall(ts: Toolstack, guest: GuestConfig) -> str:
    """Why a claim was refused for want of memory, in the numbers xl info shows."""
    p = misc.xc_physinfo(ts.xch)
    free = (p.free_pages - p.outstanding_pages) >> 8  # xl info's free_memory
    text = f"the guest needs {guest.memory_kb >> 10} MiB, the host has {free} MiB free"
    if ts.conf.claim_mode == "numa" and guest.vnuma:
        numa = ts.api.numainfo()
        claimed = ts.claims_by_node()
        for pnode in sorted({pnode for pnode, _ in guest.vnuma}):
            unclaimed = ((numa.nodes[pnode].free or 0) >> 12) - sum(
                c.get(pnode, 0) for _, c in claimed
            )
            text += f", node {pnode} {unclaimed >> 8} MiB unclaimed"
    return text


def _build(ts: Toolstack, domid: int, guest: GuestConfig, progress: Progress | None) -> None:
    xch = ts.xch
    xcd.xc_domain_max_vcpus(xch, domid, guest.vcpus)
    nodes = guest.nodes
    if guest.place and guest.vnuma is None:  # libxl__build_pre's automatic placement
        need = need_memory_kb(guest.memory_kb, guest.maxmem_kb, guest.vcpus, guest.hvm)
        # without a fitting candidate, Xen derives the affinity from the vCPUs' CPUs
        nodes = ts.place(need, guest.vcpus, guest.nodes) or guest.nodes
    if nodes:
        xcd.xc_domain_node_setaffinity(xch, domid, misc.nodemap(ts.xch, nodes))
    xcd.xc_domain_setmaxmem(xch, domid, guest.memory_kb + LIBXL_MAXMEM_CONSTANT_KB)
    if guest.hvm:  # libxl__arch_domain_create sizes the paging pool from shadow_memkb
        pool_kb = paging_memory_kb(guest.maxmem_kb, guest.vcpus)
        xcd.xc_set_paging_mempool_size(xch, domid, pool_kb << 10)
    dom = xc_dom_allocate(xch, domid, "hvm-3.0-x86_32" if guest.hvm else "xen-3.0-x86_64")
    dom.max_vcpus = guest.vcpus
    dom.claim_mode = ts.conf.claim_mode
    if nodes is not None and len(nodes) == 1:
        dom.claim_on_node = nodes[0]
    sizes = [mib << 10 for _, mib in guest.vnuma or ()]
    pnodes = [pnode for pnode, _ in guest.vnuma or ()]
    if guest.hvm:
        hvm_layout(
            dom,
            guest.maxmem_kb,
            guest.memory_kb,
            video_memkb=guest.video_kb,
            device_model=guest.type == "hvm",
        )
        if guest.vnuma:
            vnuma_hvm(dom, sizes, pnodes, guest.video_kb)
            vnuma_cfg.set_vnuma_info(xch, domid, guest.vnodes, pnodes, dom.vmemranges, guest.vcpus)
    else:
        dom.total_pages = dom.target_pages = guest.memory_kb >> 2
        if guest.vnuma:
            vnuma_pv(dom, sizes, pnodes)
    if progress is None:
        xc_dom_boot_mem_init(dom)
    else:
        with progress(dom.total_pages) as update:
            dom.progress = update
            xc_dom_boot_mem_init(dom)
    alloc_magic_pages(dom)
    xc_dom_boot_image(dom)  # vCPU 0 up, paused until the unpause
    if guest.type == "hvm":  # domcreate_launch_dm: QEMU backs the video RAM
        populate_video_ram(xch, domid, guest.maxmem_kb, guest.video_kb)


def create_domain(
    ts: Toolstack,
    path: str,
    extra: list[str],
    *,
    paused: bool,
    progress: Progress | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """``xl create``: read, ``announce`` the file (xl's "Parsing config from"), parse, build."""
    config = read_config(path, extra, announce)
    return build(ts, guest_config(ts, config), paused=paused, progress=progress)


def storm(
    ts: Toolstack,
    path: str,
    count: int,
    claim_mode: ClaimMode | None,
    *,
    processes: bool = False,
    seed: int | None = None,
) -> StormReport:
    """``count`` creates of one config at once, named NAME-1 ... NAME-count: each built
    exactly as ``create`` builds it (:func:`build`), in a thread of its own taking turns in
    the order of ``seed`` (a random one if None), or with ``processes`` in a process of its
    own on the server holding the host, free-running: no seed orders those."""
    if seed is not None and (processes or isinstance(ts.hv, RemoteHost)):
        raise ToolstackError(
            "xlemu: storm: --seed orders builder threads on a host in this process; "
            + (
                "builder processes run as the OS schedules them"
                if processes
                else "a server holds this one"
            )
        )
    guest = guest_config(ts, read_config(path, []))
    names = [f"{guest.name}-{i}" for i in range(1, count + 1)]
    for name in names:  # names stay unique, as libxl__domain_rename insists
        if ts.find_domain_by_name(name) is not None:
            raise ToolstackError(
                libxl_error(f'Domain with name "{name}" already exists.'), -ERROR_FAIL
            )
    conf = XlConf(claim_mode or ts.conf.claim_mode)
    xs: XsHandle | str = ts.xs
    if processes:
        if ts.xs.socket is None:
            raise ToolstackError("xlemu: storm: builder processes need a served host")
        xs = ts.xs.socket
    create_one = StormCreate(ts.hv, guest, conf, xs)
    return run_builders(ts.hv, names, create_one, conf.claim_mode, processes=processes, seed=seed)


@dataclass(frozen=True)
class StormCreate:
    """One create of a storm, on a toolstack of its own (handles of its own, as each xl
    has). ``xs`` is the storm's xenstore handle, or the socket of a served xenstore: then
    it is picklable and can run in a builder process."""

    hv: Host
    guest: GuestConfig
    conf: XlConf
    xs: XsHandle | str

    def __call__(self, name: str) -> BuildResult:
        with XsHandle.open(self.xs) if isinstance(self.xs, str) else self.xs.another() as xs:
            return self._create(Toolstack(self.hv, xs, self.conf), name)

    def _create(self, mine: Toolstack, name: str) -> BuildResult:
        result = BuildResult(name, self.guest.memory_kb >> 10)
        try:
            domid = result.domid = build(mine, replace(self.guest, name=name), paused=False)
        except BuildError as e:
            return result.failed(e.cause)
        except ToolstackError as e:
            result.outcome, result.error = "failed", str(e)
            return result
        result.outcome = "admitted"
        # the nodes it asked for: its vNUMA nodes, else the node affinity it was built with
        affinity = int.from_bytes(xcd.xc_domain_node_getaffinity(mine.xch, domid), "little")
        nodes = {pnode for pnode, _ in self.guest.vnuma or ()} or {
            n for n in range(affinity.bit_length()) if affinity >> n & 1
        }
        all_nodes = set(range(misc.xc_physinfo(mine.xch).nr_nodes))
        result.wanted = frozenset(nodes if nodes != all_nodes or self.guest.vnuma else ())
        return result
