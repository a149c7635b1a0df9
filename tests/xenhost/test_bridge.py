"""C programs linked against the real libxencall/libxenctrl, run through the privcmd bridge
against a served host: the devices as libxencall uses them, raw hypercalls, fork, the
libraries that must fall back, a NUMA claim set through xencall1, and C and Python
clients at once.

Host (``served``): two nodes of 4096 MiB, 1048576 pages each (node 0 1048575 free: MFN 0
is kept), no dom0 memory; the host speaks Xen master, 4.23-unstable: XENVER_version = 4 << 16 | 23.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from host_helpers import BUILDER, TIMEOUT, Served, environment, run_bridged, xlemu
from xenhost import bridge

import xenctrl as xc
from hypervisor_model.public.domctl import XEN_DOMCTL_INTERFACE_VERSION

HOST = 0x80000000  # XEN_DOMCTL_CLAIM_MEMORY_HOST


def test_the_devices_raw_hypercalls_and_fork(served: Served, c_program: Callable) -> None:
    run = run_bridged(c_program("privcmd_probe"), socket=served.socket)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        "open 1 1",
        "unimplemented -1 ENOTTY",  # libxenforeignmemory's probe must fail
        "mmapbatch_v2 -1 ENOTTY",
        "hypercall_dev_ioctl -1 ENOTTY",
        "mmap_privcmd ENODEV",  # no foreign mappings
        "mmap_private EINVAL",  # privcmd-buf maps shared buffers only
        f"version {4 << 16 | 23}",
        "extraversion 0",
        "extraversion_text -unstable",
        "outside_buffers -1 EFAULT",
        "child 0 -unstable",  # the child's own connection wrote into the shared buffer
        "xc_interface_open ok",  # foreignmemory and devicemodel fell back
        "foreign_map ENODEV",
        f"after_close_range {4 << 16 | 23}",  # a new connection, not a stale descriptor
    ]


def test_a_numa_claim_set_through_xencall1(served: Served, c_program: Callable) -> None:
    """1024 pages on node 0, 512 anywhere, 256 on node 1: 1792 outstanding on the domain
    and the host. A GET with room for no entry is ERANGE and says 3 are needed; the set
    comes back host-wide entry first, then by node."""
    with xc.xc_interface_open(server=served.socket) as xch:
        domid = xc.xc_domain_create(xch)
        xc.xc_domain_setmaxmem(xch, domid, 4 << 20)  # 4 GiB in KiB
        version = hex(XEN_DOMCTL_INTERFACE_VERSION)
        entries = ["0=1024", f"{HOST:#x}=512", "1=256"]
        run = run_bridged(
            c_program("claim_set"), version, str(domid), *entries, socket=served.socket
        )
        assert (run.returncode, run.stderr) == (0, "")
        assert run.stdout.splitlines() == [
            "set 0",
            "get_small ERANGE 3",
            "get 0 3",
            f"{HOST:#x} 512",
            "0x0 1024",
            "0x1 256",
        ]
        assert xc.xc_domain_getinfo_single(xch, domid).outstanding_pages == 1792
        assert xc.xc_physinfo(xch).outstanding_pages == 1792


def test_c_and_python_clients_at_once(served: Served, c_program: Callable) -> None:
    """Four C programs stake claim sets on four domains while two Python processes build
    four domains each on node 1: every C domain holds its 300 + 200 pages outstanding (2000
    in all), every Python domain its 1024 pages, node 1 lost exactly 8192 to them and 128
    to each of the 12 domains' HAP pools (beside the 4 pages of its heap metadata)."""
    with xc.xc_interface_open(server=served.socket) as xch:
        domids = [xc.xc_domain_create(xch) for _ in range(4)]
        for domid in domids:
            xc.xc_domain_setmaxmem(xch, domid, 4 << 20)
    claim = c_program("claim_set")
    env = bridge.environment(served.socket)
    version = hex(XEN_DOMCTL_INTERFACE_VERSION)
    procs = [
        subprocess.Popen(
            [str(claim), version, str(d), "0=300", f"{HOST:#x}=200"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for d in domids
    ] + [
        subprocess.Popen([sys.executable, "-c", BUILDER, str(served.socket), "1", "4"])
        for _ in range(2)
    ]
    assert [p.wait(TIMEOUT) for p in procs] == [0] * 6
    for p in procs[:4]:
        assert p.stdout is not None and p.stdout.readline() == "set 0\n"
    with xc.xc_interface_open(server=served.socket) as xch:
        assert [xc.xc_domain_getinfo_single(xch, d).outstanding_pages for d in domids] == [500] * 4
        assert xc.xc_physinfo(xch).outstanding_pages == 2000
        assert xc.xc_availheap(xch, 0, 0, 1) == (1048576 - 4 - 12 * 128 - 8192) * 4096
    built = [d for d in served.hv.domain_list() if d.domain_id not in (0, *domids)]
    assert [d.tot_pages for d in built] == [1024] * 8
    served.hv.check_invariants()


def test_without_a_server_address_the_bridge_stands_aside(
    served: Served, c_program: Callable
) -> None:
    """With no XENEMU_SERVER the devices are the real ones: none exist here (ENOENT)."""
    env = {k: v for k, v in bridge.environment(served.socket).items() if k != "XENEMU_SERVER"}
    run = subprocess.run(
        [str(c_program("privcmd_probe"))], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if Path("/dev/xen/privcmd").exists():
        pytest.skip("this machine has a real privcmd device")
    assert run.stdout.splitlines()[0] == "open 0 0"


def test_no_server_is_one_line(short_dir: Path, c_program: Callable) -> None:
    missing = short_dir / "none.sock"
    run = run_bridged(c_program("privcmd_probe"), socket=missing)
    assert run.stderr.splitlines()[0] == (
        f"xenemu bridge: cannot reach the host server at {missing}: No such file or directory"
    )


def test_no_compiler_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(bridge.BridgeError) as e:
        bridge.library()
    assert str(e.value) == "the privcmd bridge needs a C compiler: apt-get install -y gcc"


def test_debians_libxenctrl_builds_a_domain_under_exec(
    short_dir: Path, c_program: Callable
) -> None:
    """xenctrl_calls.c through ``xlemu exec`` on ``host init --xen 4.17 --nodes 2
    --node-memory 4096 --dom0-memory 0``: 2 x 1048576 pages; node 0 keeps MFN 0 and gives
    dom0's structure and shared-info page (2), node 1 gives 4 to its heap metadata
    (init_node_heap), so 2097152 - 1 - 2 - 4 = 2097145 free (node 0 1048573, node 1
    1048572); 8 CPUs (4 per node), distances 10 local / 20 remote. Domain 1 (4.17 picks a
    free domid for 0) costs Xen its structure and shared info (node 0) and the 256-page HAP
    pool, allocated a page at a time alternating between the nodes (128 each): 2097145 -
    258 = 2096887 free. 1 GiB = 262144 pages max: 262145 is EINVAL, 1024 is claimed, a
    second claim while one stands is EINVAL, 0 cancels; at 16 GiB max (4194304 pages)
    3000000 pages is ENOMEM. Claim 1024, populate 512 pages on node 1: node 0 has 1048573 -
    130 = 1048443, node 1 1048572 - 128 - 512 = 1047932, 512 stay claimed. Destroyed, all
    comes back."""
    state = short_dir / "host.json"
    env = environment(short_dir, state)
    init = ["host", "init", "--xen", "4.17", "--nodes", "2", "--node-memory", "4096"]
    assert xlemu(env, *init, "--dom0-memory", "0").returncode == 0
    run = xlemu(env, "exec", "--", str(c_program("xenctrl_calls")))
    assert (run.returncode, run.stderr) == (0, "")
    page = 4096
    assert run.stdout.splitlines() == [
        "physinfo 2 8 2097152 2097145 0",  # nodes, cpus, total, free, outstanding
        f"numainfo node0 {1048576 * page} {1048573 * page} 10 20",
        f"numainfo node1 {1048576 * page} {1048572 * page} 20 10",
        f"availheap_host {2097145 * page}",
        "create 0",
        "domid 1",
        "max_vcpus 0",
        "setmaxmem 0",
        "claim_above_max EINVAL",
        "claim 0",
        "claim_again EINVAL",
        "physinfo_claimed 2 8 2097152 2096887 1024",
        "claim_cancel 0",
        "setmaxmem_16g 0",
        "claim_too_much ENOMEM",
        "physinfo_refused 2 8 2097152 2096887 0",
        "claim_for_build 0",
        "populate 0",
        f"availheap_node0 {1048443 * page}",
        f"availheap_node1 {1047932 * page}",
        "physinfo_built 2 8 2097152 2096375 512",
        "getinfolist 2",
        "  d0 tot 0 max 0 outstanding 0 vcpus 8",
        "  d1 tot 512 max 4194304 outstanding 512 vcpus 2",
        "destroy 0",
        "getinfolist_after 1",
        "  d0 tot 0 max 0 outstanding 0 vcpus 8",
        "physinfo_after 2 8 2097152 2097145 0",
    ]
