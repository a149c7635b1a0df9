"""The layer trace (xenctrl/trace.py): what one library call did beneath it, down to the
hypercall bytes and the counters that moved inside the machine.

Hosts come from the xenemu pytest plugin (``xch`` on the default 2 x 4096 MiB host).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import hypervisor_model
import xenctrl
from hypervisor_model.counters import Change
from hypervisor_model.public.errno import EINVAL, ERANGE
from hypervisor_model.public.xen import (
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
)
from xenctrl import XenError, xc_interface
from xenctrl.trace import CallRecord, HypercallRecord, Trace, machine_hook, render
from xenctrl.types import xen_memory_claim_t

MAX_MEM_KB = 64 * 1024  # 64 MiB = 16384 pages, room for every claim below


@pytest.fixture
def domid(xch: xc_interface) -> int:
    """A fresh domain (d1, the first id after dom0) that may hold 16384 pages."""
    d = xenctrl.xc_domain_create(xch)
    xenctrl.xc_domain_setmaxmem(xch, d, MAX_MEM_KB)
    return d


def only_hypercall(record: CallRecord) -> HypercallRecord:
    (hc,) = record.children
    assert isinstance(hc, HypercallRecord)
    return hc


def memory_op_entry(record: CallRecord) -> tuple[HypercallRecord, HypercallRecord]:
    """The one-entry multicall a memory_op travels in (xc_private.c xc_memory_op on Linux
    x86_64), and that entry: the memory_op as Xen ran it."""
    mc = only_hypercall(record)
    assert (mc.op, mc.args[1], mc.command, mc.structure) == (
        HYPERVISOR_multicall,
        1,
        "1 entry",
        "multicall_entry",
    )
    (entry,) = mc.entries
    return mc, entry


# -- one call, one hypercall ---------------------------------------------------------------


def test_claim_pages_is_one_xenctrl_call_with_its_arguments(xch: xc_interface, domid: int) -> None:
    with Trace() as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1000)
    (record,) = t.records
    assert (record.layer, record.function) == ("xenctrl", "xc_domain_claim_pages")
    assert record.args["domid"] == "1"
    assert record.args["nr_pages"] == "1000"
    assert record.outcome == "-> None"


def test_claim_pages_is_a_multicall_of_one_memory_op_24_with_a_decoded_reservation(
    xch: xc_interface, domid: int
) -> None:
    """xc_domain_claim_pages: memory_op(XENMEM_claim_pages) with {NULL, nr, 0, 0, domid}
    (fact sheet §4), sent as the one entry of a multicall: op 12, args[0] the command 24,
    args[1] the reservation's address, the other words 0."""
    with Trace() as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1000)
    mc, hc = memory_op_entry(t.records[0])
    assert mc.decoded_in == dict(op=12, result=0, args=[24, hc.args[1], 0, 0, 0, 0])
    assert mc.decoded_out == mc.decoded_in  # result 0 written over 0
    assert (mc.result, mc.errno) == (0, None)
    assert hc.op == HYPERVISOR_memory_op == 12
    assert hc.args[0] == 24  # cmd = XENMEM_claim_pages, start_extent 0
    assert hc.command == "XENMEM_claim_pages"
    assert hc.structure == "xen_memory_reservation"
    assert hc.decoded_in == dict(
        extent_start=0, nr_extents=1000, extent_order=0, mem_flags=0, domid=1
    )
    assert (hc.result, hc.errno) == (0, None)


def test_claim_pages_raw_bytes_are_the_64_byte_entry_and_the_32_byte_reservation() -> None:
    """multicall_entry: op @0, result @8, args[6] @16 (public/xen.h); struct
    xen_memory_reservation: handle @0, nr_extents @8, order @16, flags @20, domid @24, 6 bytes
    of tail padding (fact sheet §1.4)."""
    hv = hypervisor_model.boot(nodes=[64])
    with xenctrl.xc_interface_open(hv) as xch:
        d = xenctrl.xc_domain_create(xch)
        xenctrl.xc_domain_setmaxmem(xch, d, MAX_MEM_KB)
        with Trace() as t:
            xenctrl.xc_domain_claim_pages(xch, d, 0x1234)
    mc, hc = memory_op_entry(t.records[0])
    assert len(mc.raw_in) == 64
    assert mc.raw_in[0:16] == (12).to_bytes(8, "little") + bytes(8)  # memory_op, result 0
    assert mc.raw_in[16:32] == (24).to_bytes(8, "little") + hc.args[1].to_bytes(8, "little")
    assert mc.raw_in[32:64] == bytes(32)
    raw = hc.raw_in
    assert len(raw) == 32
    assert raw[0:8] == bytes(8)  # extent_start NULL
    assert raw[8:16] == (0x1234).to_bytes(8, "little")
    assert raw[16:24] == bytes(8)  # extent_order 0, mem_flags 0
    assert raw[24:26] == (1).to_bytes(2, "little")  # domid 1
    assert raw[26:32] == bytes(6)


def test_claim_pages_reports_exactly_the_counters_it_moved(xch: xc_interface, domid: int) -> None:
    """A legacy claim of 1000 on a domain with nothing allocated: target - tot_pages = 1000
    outstanding, host-wide (v7 notes §8); free memory does not move."""
    with Trace() as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1000)
    mc, entry = memory_op_entry(t.records[0])
    assert entry.counters == []  # the machine reports per hypercall: the multicall
    assert mc.counters == [
        Change("outstanding_claims", 0, 1000),
        Change("d1.outstanding_pages", 0, 1000),
    ]


def test_claim_set_reports_node_and_domain_claim_counters(xch: xc_interface, domid: int) -> None:
    """{node0: 5, HOST: 3}: outstanding 8 host-wide and for d1, of which 5 are claimed on
    node 0 (claimed_pages[0] and d1's claims[0]); host counters first, then nodes, then
    domains."""
    claim_set = [
        xen_memory_claim_t(5, 0),
        xen_memory_claim_t(3, xenctrl.XEN_DOMCTL_CLAIM_MEMORY_HOST),
    ]
    with Trace() as t:
        xenctrl.xc_domain_claim_memory(
            xch, domid, xenctrl.XEN_DOMCTL_CLAIM_MEMORY_SET, 2, claim_set
        )
    assert only_hypercall(t.records[0]).counters == [
        Change("outstanding_claims", 0, 8),
        Change("node0.claimed_pages", 0, 5),
        Change("d1.claims[0]", 0, 5),
        Change("d1.outstanding_pages", 0, 8),
    ]


def test_failing_call_records_the_errno_name_and_the_exception(xch: xc_interface) -> None:
    """A new domain has max_pages 0, so any claim is EINVAL (fact sheet §6.2)."""
    d = xenctrl.xc_domain_create(xch)
    with Trace() as t, pytest.raises(XenError) as e:
        xenctrl.xc_domain_claim_pages(xch, d, 1)
    assert e.value.errno == EINVAL
    mc, hc = memory_op_entry(t.records[0])
    assert (mc.result, mc.errno) == (0, None)  # the multicall itself ran its entry
    assert mc.decoded_out["result"] == 2**64 - EINVAL  # the long -22 in the entry
    assert (hc.result, hc.errno) == (-EINVAL, "EINVAL")
    assert mc.counters == []
    assert t.records[0].outcome.startswith("raised XenError")


def test_erange_is_recorded_with_nr_entries_as_xen_wrote_it_back(
    xch: xc_interface, domid: int
) -> None:
    """v7 GET with capacity 1 on a 2-entry set ({HOST 0, node0 5}): ERANGE, and the domctl
    copied back carries the needed count 2 (v7 notes §1, step 11)."""
    xenctrl.xc_domain_claim_memory(
        xch, domid, xenctrl.XEN_DOMCTL_CLAIM_MEMORY_SET, 1, [xen_memory_claim_t(5, 0)]
    )
    with Trace() as t, pytest.raises(XenError):
        xenctrl.xc_domain_claim_memory(
            xch, domid, xenctrl.XEN_DOMCTL_CLAIM_MEMORY_GET, 1, (xen_memory_claim_t * 1)()
        )
    hc = only_hypercall(t.records[0])
    assert (hc.op, hc.command, hc.errno) == (HYPERVISOR_domctl, "XEN_DOMCTL_claim_memory", "ERANGE")
    assert hc.result == -ERANGE
    assert hc.decoded_in["u"]["nr_entries"] == 1
    assert hc.decoded_out["u"]["nr_entries"] == 2


def test_the_claim_get_probe_reads_as_a_probe(
    xch: xc_interface, domid: int, xenctrl_api: xenctrl.api.Xenctrl
) -> None:
    """Xenctrl.domain_get_claims asks with room for one entry and learns from ERANGE how
    many there are: the trace calls that first GET a probe, not a failure."""
    xenctrl.xc_domain_claim_memory(
        xch, domid, xenctrl.XEN_DOMCTL_CLAIM_MEMORY_SET, 1, [xen_memory_claim_t(5, 0)]
    )
    with Trace() as t:
        assert xenctrl_api.domain_get_claims(domid) == {xenctrl.api.HOST: 0, 0: 5}
    probe, get = t.records
    why = "a probe: Xen says how many entries to ask for"
    assert probe.outcome == f"-> ERANGE ({why})"
    assert f"-34 (ERANGE, expected: {why})" in render(probe)
    assert "raised" not in t.text() and get.outcome == "-> 2"


def test_print_of_a_trace_prints_the_trace(xch: xc_interface, domid: int) -> None:
    with Trace() as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1024)
    out = io.StringIO()
    print(t, file=out)
    assert out.getvalue() == t.text() + "\n"
    assert out.getvalue().startswith("xenctrl: xc_domain_claim_pages(domid=1, nr_pages=1024)")


def test_arguments_and_results_show_their_values(xch: xc_interface, domid: int) -> None:
    """C structures and arrays show their fields and items, never an object's address;
    long ones are cut short, saying how many items there were."""
    with Trace() as t:
        xenctrl.xc_domain_create(xch, config=xenctrl.default_createdomain(True, 2))
        xenctrl.xc_domain_getinfolist(xch, 0, 16)
        xenctrl.xc_physinfo(xch)
    text = t.text()
    assert "object at 0x" not in text
    create, infolist, physinfo = t.records
    assert create.args["config"].startswith("xen_domctl_createdomain{ssidref=0, handle=")
    assert "max_vcpus=2" in create.args["config"]
    assert infolist.outcome.startswith("-> [xc_domaininfo_t{domain=0, flags=")
    assert infolist.outcome.endswith("...") and len(infolist.outcome) <= 103
    assert physinfo.outcome.startswith("-> xc_physinfo_t{threads_per_core=1, cores_per_socket=")


# -- command names ---------------------------------------------------------------------------


def _create(xch: xc_interface, d: int) -> None:
    xenctrl.xc_domain_create(xch)


CALLS: list[tuple[str, Callable[[xc_interface, int], object], str]] = [
    ("createdomain", _create, "XEN_DOMCTL_createdomain"),
    ("destroydomain", xenctrl.xc_domain_destroy, "XEN_DOMCTL_destroydomain"),
    ("pausedomain", xenctrl.xc_domain_pause, "XEN_DOMCTL_pausedomain"),
    ("unpausedomain", xenctrl.xc_domain_unpause, "XEN_DOMCTL_unpausedomain"),
    ("getdomaininfo", xenctrl.xc_domain_getinfo_single, "XEN_DOMCTL_getdomaininfo"),
    ("max_mem", lambda x, d: xenctrl.xc_domain_setmaxmem(x, d, 4), "XEN_DOMCTL_max_mem"),
    ("physinfo", lambda x, d: xenctrl.xc_physinfo(x), "XEN_SYSCTL_physinfo"),
    ("maximum_ram_page", lambda x, d: xenctrl.xc_maximum_ram_page(x), "XENMEM_maximum_ram_page"),
]


@pytest.mark.parametrize(("call", "expected"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_hypercall_is_named_by_its_command_constant(
    xch: xc_interface, domid: int, call: Callable[[xc_interface, int], object], expected: str
) -> None:
    """Command numbers share values with flag constants (createdomain = 1 = CDF_hvm =
    CLAIM_MEMORY_GET); the trace must name the command, public/domctl.h's lowercase name."""
    with Trace() as t:
        call(xch, domid)
    (hc,) = list(t.records[0].hypercalls())
    if hc.op == HYPERVISOR_multicall:  # a memory_op, in its one entry
        (hc,) = hc.entries
    assert hc.command == expected


# -- nesting ---------------------------------------------------------------------------------


def test_a_traced_call_made_by_another_is_nested_inside_it(xch: xc_interface, domid: int) -> None:
    """xc_get_tot_pages is xc_domain_getinfo_single underneath: one record, one child call,
    one hypercall inside that."""
    with Trace() as t:
        assert xenctrl.xc_get_tot_pages(xch, domid) == 0
    (record,) = t.records
    assert record.function == "xc_get_tot_pages"
    (inner,) = record.children
    assert isinstance(inner, CallRecord)
    assert inner.function == "xc_domain_getinfo_single"
    assert only_hypercall(inner).command == "XEN_DOMCTL_getdomaininfo"
    assert len(list(record.hypercalls())) == 1


def test_populate_exact_nests_populate_and_the_counters_move_by_the_extents(
    xch: xc_interface, domid: int
) -> None:
    """Two order-0 extents exactly on node 1 for a fresh HVM domain: free 2096887 -> 2096885
    (2097145 at boot less the domain's structure, shared info and 256-page HAP pool),
    node 1 free 1048444 -> 1048442 (1048572 past its heap metadata, less its 128 pool
    pages), d1 tot 0 -> 2 (all on node 1)."""
    with Trace() as t:
        xenctrl.xc_domain_populate_physmap_exact(
            xch, domid, 2, 0, xenctrl.XENMEMF_exact_node(1), [0, 1]
        )
    (record,) = t.records
    (inner,) = record.children
    assert isinstance(inner, CallRecord)
    assert (inner.function, inner.outcome) == ("xc_domain_populate_physmap", "-> 2")
    mc, hc = memory_op_entry(inner)
    assert (hc.command, hc.result) == ("XENMEM_populate_physmap", 2)
    assert mc.counters == [
        Change("total_avail_pages", 2096887, 2096885),
        Change("node1.node_avail_pages", 1048444, 1048442),
        Change("d1.pages_on_node1", 0, 2),
        Change("d1.tot_pages", 0, 2),
    ]


# -- rendering -------------------------------------------------------------------------------


def test_render_shows_call_hypercall_fields_bytes_and_counters(
    xch: xc_interface, domid: int
) -> None:
    with Trace() as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1000)
    text = render(t.records[0])
    for expected in [
        "xenctrl: xc_domain_claim_pages(domid=1, nr_pages=1000)",
        "\n  hypercall multicall(13) 1 entry: 0\n",
        "\n    multicall_entry in:  op=0xc, result=0, args=[0x18, 0x7f",
        "\n    entry 0: memory_op(12) XENMEM_claim_pages: 0\n",
        "\n      xen_memory_reservation in:",
        "xen_memory_reservation in:",
        "nr_extents=0x3e8",  # 1000
        "domid=1",
        "\n        0000: 00 00 00 00 00 00 00 00 e8 03 00 00 00 00 00 00",
        "\n        0010: 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00",
        "\n    counters: outstanding_claims 0->1000 (+1000)",
        "d1.outstanding_pages 0->1000 (+1000)",
    ]:
        assert expected in text, expected
    assert t.text() == text


def test_a_multicall_that_fails_has_no_entry_to_show(xen_host: hypervisor_model.Hypervisor) -> None:
    """A handle issuing as a domain that does not exist: the multicall itself is ESRCH
    (only an existing domain issues hypercalls), so its entry never ran."""
    ghost = xenctrl.xc_interface_open(xen_host, domid=42)
    with Trace() as t, pytest.raises(XenError):
        xenctrl.xc_maximum_ram_page(ghost)
    mc = only_hypercall(t.records[0])
    assert (mc.op, mc.errno, mc.entries) == (HYPERVISOR_multicall, "ESRCH", [])
    assert "multicall(13) 1 entry: -3 (ESRCH)" in render(t.records[0])


def test_render_of_a_failure_shows_the_errno_and_no_counters(xch: xc_interface) -> None:
    d = xenctrl.xc_domain_create(xch)
    with Trace() as t, pytest.raises(XenError):
        xenctrl.xc_domain_claim_pages(xch, d, 1)
    text = render(t.records[0])
    assert "XENMEM_claim_pages: -22 (EINVAL)" in text
    assert "no counters moved" in text
    assert "raised XenError" in text


def test_render_without_raw_bytes_leaves_the_hex_out(xch: xc_interface, domid: int) -> None:
    with Trace(raw_bytes=False) as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1000)
    text = t.text()
    assert "XENMEM_claim_pages" in text
    assert "bytes in" not in text
    assert "0000:" not in text


def test_a_sink_receives_each_record_as_it_completes(xch: xc_interface, domid: int) -> None:
    sink = io.StringIO()
    with Trace(sink) as t:
        xenctrl.xc_domain_claim_pages(xch, domid, 1000)
        assert sink.getvalue() == render(t.records[0]) + "\n"


# -- threads and activation ------------------------------------------------------------------


def test_calls_from_two_threads_are_both_collected(xch: xc_interface) -> None:
    """Builders run in parallel; one Trace sees every thread's calls as separate records."""
    doms = [xenctrl.xc_domain_create(xch) for _ in range(2)]
    for d in doms:
        xenctrl.xc_domain_setmaxmem(xch, d, MAX_MEM_KB)

    def builder(d: int) -> None:
        xenctrl.xc_domain_claim_pages(xch, d, 100)

    with Trace() as t:
        threads = [threading.Thread(target=builder, args=(d,)) for d in doms]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert sorted(r.args["domid"] for r in t.records) == ["1", "2"]
    assert all(r.function == "xc_domain_claim_pages" for r in t.records)
    assert all(only_hypercall(r).result == 0 for r in t.records)


def test_no_active_trace_records_nothing_and_the_machine_probe_is_removed(
    xch: xc_interface, domid: int
) -> None:
    hv = xch.hv
    xenctrl.xc_physinfo(xch)
    assert hv.trace_hooks == []  # never tracing: no probe on the machine
    with Trace() as t:
        xenctrl.xc_physinfo(xch)
        assert hv.trace_hooks == [machine_hook]
    xenctrl.xc_domain_claim_pages(xch, domid, 1000)
    assert [r.function for r in t.records] == ["xc_physinfo"]
    assert hv.trace_hooks == []  # the first call after the trace took the probe away


def test_two_active_traces_both_receive_a_record(xch: xc_interface) -> None:
    with Trace() as outer:
        with Trace() as inner:
            xenctrl.xc_physinfo(xch)
        xenctrl.xc_maximum_ram_page(xch)
    assert [r.function for r in inner.records] == ["xc_physinfo"]
    assert [r.function for r in outer.records] == ["xc_physinfo", "xc_maximum_ram_page"]


# -- XENEMU_TRACE ----------------------------------------------------------------------------

SCRIPT = """
import hypervisor_model, xenctrl
hv = hypervisor_model.boot(nodes=[64])
xch = xenctrl.xc_interface_open(hv)
d = xenctrl.xc_domain_create(xch)
xenctrl.xc_domain_setmaxmem(xch, d, 4096)
xenctrl.xc_domain_claim_pages(xch, d, 512)
"""


def _run_script(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "XENEMU_TRACE"}
    if value is not None:
        env["XENEMU_TRACE"] = value
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )


def test_xenemu_trace_1_prints_the_trace_of_a_script_on_stderr() -> None:
    stderr = _run_script("1").stderr
    assert "xenctrl: xc_domain_claim_pages(domid=1, nr_pages=512)" in stderr
    assert "XENMEM_claim_pages: 0" in stderr
    assert "outstanding_claims 0->512 (+512)" in stderr
    assert "XEN_DOMCTL_createdomain" in stderr


@pytest.mark.parametrize("value", [None, "0"], ids=["unset", "zero"])
def test_without_xenemu_trace_a_script_prints_nothing(value: str | None) -> None:
    result = _run_script(value)
    assert (result.stdout, result.stderr) == ("", "")


def test_xenemu_trace_path_appends_to_that_file(tmp_path: Path) -> None:
    log = tmp_path / "trace.txt"
    log.write_text("earlier\n")
    result = _run_script(str(log))
    text = log.read_text()
    assert text.startswith("earlier\n")
    assert "xc_domain_claim_pages(domid=1, nr_pages=512)" in text
    assert result.stderr == ""
