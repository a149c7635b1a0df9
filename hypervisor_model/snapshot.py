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

from hypervisor_model.domain import Domain
from hypervisor_model.host import HostConfig, HostConfigError, make_host
from hypervisor_model.hypervisor import Hypervisor
from hypervisor_model.invariants import InvariantError
from hypervisor_model.runmap import RunMap

FORMAT = "xenemu-host"
VERSION = 1
_RUNMAPS = ("pages", "p2m")
_SKIPPED = ("page_alloc_lock",)


class StateError(ValueError):
    """A saved host that cannot be loaded: unknown format, newer version, or damaged."""


def _runs(runmap: RunMap) -> list[list[Any]]:
    return [[r.start, r.length, r.value, r.step] for r in runmap]


def _domain_state(d: Domain) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for f in fields(d):
        if f.name in _SKIPPED:
            continue
        value = getattr(d, f.name)
        if f.name in _RUNMAPS:
            value = _runs(value)
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
            },
            "heap": {
                "free_lists": [list(entry) for entry in heap.free_lists()],
                "offlined": list(heap.offlined),
                "offlining": list(heap.offlining),
                "outstanding_claims": heap.outstanding_claims,
                "claimed_pages": list(heap.claimed_pages),
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


def _domain_from(state: dict[str, Any]) -> Domain:
    kwargs = dict(state)
    for name in _RUNMAPS:
        runmap = RunMap()
        for start, length, value, step in kwargs.pop(name):
            runmap.insert(start, length, value, step, None)
        kwargs[name] = runmap
    kwargs["handle"] = bytes.fromhex(kwargs["handle"])
    kwargs["claims"] = {int(k): int(v) for k, v in kwargs["claims"]}
    kwargs["node_pages"] = {int(k): int(v) for k, v in kwargs["node_pages"]}
    return Domain(**kwargs)


def load_state(doc: Any) -> Hypervisor:
    """A host from :func:`save_state`'s data; raises StateError if it cannot be trusted."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"expected a {FORMAT} state, got something else")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise StateError(f"expected state version {VERSION} or older, got {version!r}")
    try:
        h = doc["host"]
        host: HostConfig = make_host(
            ranges=h["ranges"],
            offline=h["offline"],
            distances=h["distances"],
            cpus_per_node=h["cpus"],
            dom0_memory=h["dom0_memory"],
            cpu_khz=h["cpu_khz"],
        )
        hv = Hypervisor(host, boot=False)
        heap = hv.heap
        for node, zone, order, heads in doc["heap"]["free_lists"]:
            heap.restore_free_list(node, zone, order, heads)
        heap.offlined = sorted(doc["heap"]["offlined"])
        heap.offlining = sorted(doc["heap"]["offlining"])
        heap.outstanding_claims = doc["heap"]["outstanding_claims"]
        heap.claimed_pages = list(doc["heap"]["claimed_pages"])
        for state in doc["domains"]:
            hv.add_domain(_domain_from(state))
        hv._domid_last = doc["domid_last"]
        hv._leaked_domids = set(doc["leaked_domids"])
        console = doc["console"]
        text = base64.b64decode(console["text"])
        c, p = console["conringc"], console["conringp"]
        if len(text) != p - c or len(text) > hv.console.size:
            raise StateError("damaged state: console ring indices do not match its text")
        hv.console.restore(text, c)
        hv.check_invariants()
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, HostConfigError, InvariantError) as e:
        raise StateError(f"damaged state: {type(e).__name__}: {e}") from None
    return hv


def dump(hv: Hypervisor, f: IO[str]) -> None:
    json.dump(save_state(hv), f, separators=(",", ":"))


def load(f: IO[str]) -> Hypervisor:
    try:
        doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StateError(f"damaged state: not JSON ({e})") from None
    return load_state(doc)
