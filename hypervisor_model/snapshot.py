"""Saving and loading a whole host, as one suspends a machine to disk and resumes it.

The state is a JSON document with a format name and version, checked on load; a newer
version, a damaged file or a state whose accounting does not add up is refused with a clear
:class:`StateError`, never half-loaded. Free lists keep their order, so a resumed host
hands out exactly the frames the original would have.
"""

from __future__ import annotations

import base64
import json
from contextlib import ExitStack
from dataclasses import fields
from typing import IO, Any

from hypervisor_model.console import CONRING_SIZE
from hypervisor_model.domain import MAX_VIRT_CPUS, Domain, VnumaInfo
from hypervisor_model.heap import MAX_ORDER, NR_ZONES, PAGE_SHIFT
from hypervisor_model.host import (
    MAX_NUMNODES,
    NR_CPUS,
    PADDR_BITS,
    HostConfig,
    HostConfigError,
    make_host,
)
from hypervisor_model.hypervisor import Hypervisor
from hypervisor_model.invariants import InvariantError
from hypervisor_model.pagelist import PageList
from hypervisor_model.public.xen import DOMID_FIRST_RESERVED
from hypervisor_model.runmap import RunMap
from hypervisor_model.schema import (
    MAX_VALUES,
    U32,
    U64,
    Bool,
    ByLength,
    Int,
    List,
    Optional,
    Record,
    Row,
    Schema,
    SchemaError,
    Str,
    describe,
    read_json,
)

FORMAT = "xenemu-host"
# 2: the host's Xen release ("xen"); a version 1 state runs master. 3: Xen's own pages (heap
# metadata; each domain's structure, shared info and paging pool), populate-on-demand and
# vNUMA state; an older state has none of them and loads as it was. 4: runs that recur at fixed
# strides saved as one row of 7 (RunMap.saved); every state before has rows of 4 only.
VERSION = 4
_RUNMAPS = ("pages", "p2m", "pod_entries")
_PAGELISTS = ("paging_pool", "pod_super", "pod_single")
_SKIPPED = ("page_alloc_lock",)


class StateError(ValueError):
    """A saved host that cannot be loaded: unknown format, newer version, or damaged."""


def _domain_state(d: Domain) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for f in fields(d):
        if f.name in _SKIPPED:
            continue
        value = getattr(d, f.name)
        if f.name in _RUNMAPS:
            value = value.saved()
        elif f.name in _PAGELISTS:
            value = value.runs()
        elif isinstance(value, VnumaInfo):
            value = value._asdict()
            value["vmemrange"] = [list(r) for r in value["vmemrange"]]
        elif isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, dict):
            value = [[k, v] for k, v in value.items()]
        state[f.name] = value
    return state


def save_state(hv: Hypervisor) -> dict[str, Any]:
    """The whole host as plain data. Call it when no hypercall is in flight."""
    host = hv.host
    domains = hv.domain_list()
    with ExitStack() as stack:
        for d in domains:
            stack.enter_context(d.page_alloc_lock)
        stack.enter_context(hv.heap.lock)
        heap = hv.heap
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "host": {
                "ranges": [[list(r) for r in n.ranges] for n in host.nodes],
                "offline": [i for i, n in enumerate(host.nodes) if not n.online],
                "distances": [list(row) for row in host.distances],
                "cpus": [n.cpus for n in host.nodes],
                "dom0_memory": host.dom0_memory_mib,
                "cpu_khz": host.cpu_khz,
                "xen": host.xen,
            },
            "heap": {
                "free_lists": [list(entry) for entry in heap.free_lists()],
                "offlined": list(heap.offlined),
                "offlining": list(heap.offlining),
                "outstanding_claims": heap.outstanding_claims,
                "claimed_pages": list(heap.claimed_pages),
                "metadata": [list(r) for r in heap.metadata],
            },
            "domains": [_domain_state(d) for d in domains],
            "domid_last": hv._domid_last,
            "leaked_domids": sorted(hv._leaked_domids),
            "console": {  # only the live part of the ring
                "text": base64.b64encode(hv.console.live()).decode(),
                "conringc": hv.console.conringc,
                "conringp": hv.console.conringp,
            },
        }
    return doc


def _domain_schema() -> Record:
    """A saved Domain: one key per field, each shaped by the field's type; a field added to
    Domain needs an entry here unless it is a plain int, bool or str."""
    by_type: dict[str, Schema] = {
        "int": Int(0, U64),
        "bool": Bool(),
        "bytes": Str(64, "[0-9a-f]*"),
        "RunMap": List(ByLength({4: _RUN, 7: _Progression()}), MAX_VALUES),
        "PageList": List(_PAGE_RUN, MAX_VALUES),
        "int | None": Optional(_MFN),
        "list[int]": List(_MFN, MAX_VALUES),
        "VnumaInfo | None": Optional(_VNUMA),
        "dict[int, int]": List(Row(Int(0, MAX_NUMNODES - 1), Int(0, U64)), MAX_NUMNODES),
    }
    exact: dict[str, Schema] = {
        "domain_id": Int(0, DOMID_FIRST_RESERVED - 1),
        "last_alloc_node": Int(0, MAX_NUMNODES - 1),
        "is_dying": Int(0, 2),
        "node_affinity": Int(0, (1 << MAX_NUMNODES) - 1),
        "handle": Str(32, "[0-9a-f]{32}"),
        "max_vcpus": Int(0, MAX_VIRT_CPUS),
        "nr_vcpus": Int(0, MAX_VIRT_CPUS),
        "vcpu_online": Int(0, (1 << MAX_VIRT_CPUS) - 1),  # a bit per vCPU
        # [vCPU, CPU mask]: the vCPUs with an affinity set (states before have none)
        "cpu_hard_affinity": _AFFINITY,
        "cpu_soft_affinity": _AFFINITY,
    }
    shapes: dict[str, Schema] = {}
    for f in fields(Domain):
        if f.name in _SKIPPED:
            continue
        shape = exact.get(f.name) or by_type.get(str(f.type))
        if shape is None:  # caught by the first test that loads a state
            raise TypeError(f"Domain.{f.name}: no saved shape for {f.type}; add one here")
        shapes[f.name] = shape
    required = {"domain_id", "handle", "claims", "node_pages", "pages", "p2m"}
    return Record(shapes, optional=frozenset(shapes.keys() - required))


_AFFINITY = List(Row(Int(0, MAX_VIRT_CPUS - 1), Int(0, (1 << NR_CPUS) - 1)), MAX_VIRT_CPUS)
# [start, length, value or null, step]: a RunMap run (MFNs or guest frames)
_RUN = Row(Int(0, U64), Int(1, U64), Optional(Int(0, U64)), Int(-U64, U64))
MAX_RUNS = MAX_VALUES // 4  # in all maps: no more than a state of plain runs could hold
_RUN_PARTS = ("start", "length", "value", "step")


def _last_run(row: list[Any]) -> list[Any]:
    start, length, value, step, count, key_stride, value_stride = row
    last = None if value is None else value + (count - 1) * value_stride
    return [start + (count - 1) * key_stride, length, last, step]


class _Progression(Schema):
    """``count`` runs recurring at strides (RunMap.saved): the first and the last are runs,
    so every one between is too."""

    row = Row(*_RUN.items, Int(1, MAX_RUNS), Int(-U64, U64), Int(-U64, U64))

    def check(self, value: Any, depth: int = 0) -> None:
        self.row.check(value, depth)
        try:
            _RUN.check(_last_run(value))
        except SchemaError as e:
            part = _RUN_PARTS[int(e.where[0])]
            raise SchemaError(f"its last run's {part}: {e.problem}") from None

    def fast(self, values: list[Any]) -> bool:
        return self.row.fast(values) and _RUN.fast(list(map(_last_run, values)))


_MFN = Int(0, (1 << (PADDR_BITS - PAGE_SHIFT)) - 1)
# [first, count, step]: a run of a page list (step 0 is refused when it is read)
_PAGE_RUN = Row(_MFN, Int(1, U64), Int(-U64, U64))
_VNUMA = Record(
    {
        "nr_vnodes": Int(1, 32),
        "vdistance": List(Int(0, U32), 32 * 32),
        "vcpu_to_vnode": List(Int(0, U32), MAX_VIRT_CPUS),
        "vnode_to_pnode": List(Int(0, 0xFF), 32),
        "vmemrange": List(Row(Int(0, U64), Int(0, U64), Int(0, U32), Int(0, U32)), 170),
    }
)
_NODE = Int(0, MAX_NUMNODES - 1)
_PER_NODE = List(Int(0, U64), MAX_NUMNODES)
SCHEMA = Record(
    {
        "format": Str(32),
        "version": Int(0, VERSION),
        "host": Record(
            {
                "ranges": List(List(Row(_MFN, _MFN), MAX_VALUES), MAX_NUMNODES),
                "offline": List(_NODE, MAX_NUMNODES),
                "distances": List(List(Int(0, 0xFF), MAX_NUMNODES), MAX_NUMNODES),
                "cpus": List(Int(0, NR_CPUS), MAX_NUMNODES),
                "dom0_memory": Int(0, U32),
                "cpu_khz": Int(0, U32),
                "xen": Str(16),  # the release; states before version 2 ran master
            },
            optional=frozenset({"xen"}),
        ),
        "heap": Record(
            {
                "free_lists": List(
                    Row(_NODE, Int(0, NR_ZONES - 1), Int(0, MAX_ORDER), List(_MFN, MAX_VALUES)),
                    MAX_NUMNODES * NR_ZONES * (MAX_ORDER + 1),
                ),
                "offlined": List(_MFN, MAX_VALUES),
                "offlining": List(_MFN, MAX_VALUES),
                "outstanding_claims": Int(0, U64),
                "claimed_pages": _PER_NODE,
                "metadata": List(Row(_MFN, _MFN), MAX_NUMNODES),
            },
            optional=frozenset({"metadata"}),  # states before version 3 have none
        ),
        "domains": List(_domain_schema(), DOMID_FIRST_RESERVED),
        "domid_last": Int(0, DOMID_FIRST_RESERVED - 1),
        "leaked_domids": List(Int(1, DOMID_FIRST_RESERVED - 1), DOMID_FIRST_RESERVED),
        "console": Record(
            {
                "text": Str(2 * CONRING_SIZE, "[A-Za-z0-9+/=]*"),
                "conringc": Int(0, U32),
                "conringp": Int(0, U32),
            },
        ),
    },
)


def _domain_from(state: dict[str, Any], nr_nodes: int) -> Domain:
    kwargs = dict(state)
    for name in _RUNMAPS:
        kwargs[name] = RunMap.from_saved(kwargs.get(name, ()), any_step=name == "pages")
    for name in _PAGELISTS:
        kwargs[name] = PageList.from_runs(kwargs.pop(name, ()))
    if kwargs.get("vnuma") is not None:
        v = kwargs["vnuma"]
        kwargs["vnuma"] = VnumaInfo(**{**v, "vmemrange": [tuple(r) for r in v["vmemrange"]]})
    kwargs["handle"] = bytes.fromhex(kwargs["handle"])
    for name in ("claims", "node_pages"):
        if any(node >= nr_nodes for node, _ in kwargs[name]):
            raise StateError(f"damaged state: d{state['domain_id']}: {name} names no node")
        kwargs[name] = dict(kwargs[name])
    for name in ("cpu_hard_affinity", "cpu_soft_affinity"):
        kwargs[name] = dict(kwargs.get(name, ()))
    if kwargs.get("last_alloc_node", 0) >= nr_nodes:
        raise StateError(f"damaged state: d{state['domain_id']}: last_alloc_node names no node")
    # saved before the model kept them: what the state showed then, the highest gfn mapped
    started = kwargs.get("creation_finished", False)
    kwargs.setdefault("vcpu_online", (1 << kwargs.get("nr_vcpus", 0)) - 1 if started else 0)
    if "max_mapped_pfn" not in kwargs:  # only then is the p2m read here
        kwargs["max_mapped_pfn"] = max((r.end for r in kwargs["p2m"]), default=1) - 1
    return Domain(**kwargs)


def load_state(doc: Any, within: str | None = None, *, writable: bool = True) -> Hypervisor:
    """A host from :func:`save_state`'s data; raises StateError if it cannot be trusted.

    The document's shape is checked first (:data:`SCHEMA`), then the host is rebuilt and its
    accounting checked (every invariant), so nothing half-loaded escapes. ``within`` names
    the key of a larger document that holds this one, for the messages. A host that will
    only be read (``writable=False``) skips the walk over every frame's owner, and reads a
    domain's page maps only if something uses them."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"expected a {FORMAT} state, got something else")
    version = doc.get("version")
    if type(version) is not int or version > VERSION:
        raise StateError(f"expected state version {VERSION} or older, got {describe(version)}")
    try:
        SCHEMA.check(doc)
    except SchemaError as e:
        raise StateError(f"damaged state: {e.at(within) if within else e}") from None
    try:
        return _rebuild(doc, writable)
    except StateError:
        raise
    except InvariantError as e:  # every violation: say the first and how many more
        problems = str(e).split("; ")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StateError(f"damaged state: {_short(problems[0])}{more}") from None
    except (KeyError, TypeError, ValueError, IndexError, HostConfigError) as e:
        raise StateError(f"damaged state: {_short(str(e))}") from None


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rebuild(doc: dict[str, Any], writable: bool) -> Hypervisor:
    h = doc["host"]
    host: HostConfig = make_host(
        ranges=h["ranges"],
        offline=h["offline"],
        distances=h["distances"],
        cpus_per_node=h["cpus"],
        dom0_memory=h["dom0_memory"],
        cpu_khz=h["cpu_khz"],
        xen=h.get("xen", "master"),
    )
    nr_nodes = len(host.nodes)
    hv = Hypervisor(host, boot=False)
    heap = hv.heap
    if len(doc["heap"]["claimed_pages"]) != nr_nodes:
        raise StateError(f"damaged state: heap.claimed_pages: expected {nr_nodes} nodes")
    for node, zone, order, heads in doc["heap"]["free_lists"]:
        if node >= nr_nodes:
            raise StateError(f"damaged state: heap.free_lists: no node {node}")
        heap.restore_free_list(node, zone, order, heads)
    heap.offlined = sorted(doc["heap"]["offlined"])
    heap.offlining = sorted(doc["heap"]["offlining"])
    heap.outstanding_claims = doc["heap"]["outstanding_claims"]
    heap.claimed_pages = list(doc["heap"]["claimed_pages"])
    heap.metadata = sorted((s, e) for s, e in doc["heap"].get("metadata", []))
    runs = sum(RunMap.saved_length(d.get(name, ())) for d in doc["domains"] for name in _RUNMAPS)
    if runs > MAX_RUNS:
        raise StateError(f"damaged state: expected at most {MAX_RUNS} runs in all, got {runs}")
    domids = [state["domain_id"] for state in doc["domains"]]
    if len(set(domids)) != len(domids):
        raise StateError("damaged state: domains: a domain id appears twice")
    for state in doc["domains"]:
        hv.add_domain(_domain_from(state, nr_nodes))
    hv._domid_last = doc["domid_last"]
    hv._leaked_domids = set(doc["leaked_domids"])
    console = doc["console"]
    text = base64.b64decode(console["text"])
    c, p = console["conringc"], console["conringp"]
    if len(text) != p - c or len(text) > hv.console.size:
        raise StateError("damaged state: console ring indices do not match its text")
    hv.console.restore(text, c)
    hv.check_invariants(frames=writable)
    return hv


def dump(hv: Hypervisor, f: IO[str]) -> None:
    json.dump(save_state(hv), f, separators=(",", ":"))


def load(f: IO[bytes]) -> Hypervisor:
    """A host from a file :func:`dump` wrote, read in binary (its size is bounded first)."""
    try:
        doc = read_json(f)
    except SchemaError as e:
        raise StateError(f"damaged state: {e}") from None
    return load_state(doc)
