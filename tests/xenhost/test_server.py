"""The host server and the remote xenctrl handle: the same calls give the same numbers as in
process; each connection is its own address space; many processes at once lose no update;
garbage and killed clients never take the server down.

Host (``served``): two nodes of 4096 MiB = 1048576 pages each; MFN 0 is kept from the heap,
so node 0 has 1048575 free pages and node 1 1048576; no dom0 memory.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from host_helpers import BUILDER, TIMEOUT, Served
from xenhost.server import HostServer, ServerError

import hypervisor_model
import xenctrl as xc
from hypervisor_model.guest_memory import ARENA_BASE
from hypervisor_model.public import version
from hypervisor_model.public.errno import EFAULT, ENOSYS
from hypervisor_model.public.xen import HYPERVISOR_xen_version
from xenctrl import wire


def test_remote_handle_gives_the_in_process_numbers(served: Served) -> None:
    """The README's example through a server: 2 extents of order 9 = 1024 pages populated,
    the claim of 262144 pages falls by them to 261120, host-wide as on the domain. Node 1
    lost them, 128 pages of the domain's HAP pool and, at boot, 4 of heap metadata."""
    with xc.xc_interface_open(server=served.socket) as xch:
        domid = xc.xc_domain_create(xch)
        xc.xc_domain_setmaxmem(xch, domid, 2 << 20)
        xc.xc_domain_claim_pages(xch, domid, 262144)
        done = xc.xc_domain_populate_physmap(xch, domid, 2, 9, xc.XENMEMF_exact_node(1), [0, 512])
        info = xc.xc_domain_getinfo_single(xch, domid)
        assert (done, info.tot_pages, info.outstanding_pages) == (2, 1024, 261120)
        assert xc.xc_physinfo(xch).outstanding_pages == 261120
        assert xc.xc_availheap(xch, 0, 0, 1) == (1048576 - 4 - 128 - 1024) * 4096
    assert served.hv.find_domain(domid) is not None


def extraversion(conn: xc.remote.Connection, addr: int) -> int:
    return conn.hypercall(HYPERVISOR_xen_version, version.XENVER_extraversion, addr)


def test_each_connection_is_its_own_address_space(served: Served) -> None:
    """Two callers use the same address: each one's reply lands in its own buffer only."""
    host = xc.RemoteHost(served.socket)
    a, b = host.connect(), host.connect()
    try:
        buf_a, buf_b = a.arena.alloc(16), b.arena.alloc(16)
        assert buf_a.addr == buf_b.addr == ARENA_BASE
        buf_b.mem[:16] = b"untouched by a!!"
        assert extraversion(a, buf_a.addr) == 0
        assert bytes(buf_a.mem[:16]) == b"-unstable".ljust(16, b"\0")  # Xen 4.23-unstable
        assert bytes(buf_b.mem[:16]) == b"untouched by a!!"
    finally:
        a.close()
        b.close()


def test_a_handle_outside_the_buffers_sent_is_efault(served: Served) -> None:
    """The server holds none of the caller's memory but what it sent: a guest handle
    anywhere else, or into a freed buffer, is EFAULT; an unknown hypercall is ENOSYS."""
    conn = xc.RemoteHost(served.socket).connect()
    try:
        assert extraversion(conn, 0x1000) == -EFAULT
        buf = conn.arena.alloc(16)
        buf.free()
        assert extraversion(conn, buf.addr) == -EFAULT
        assert conn.hypercall(1 << 63) == -ENOSYS
    finally:
        conn.close()


def test_calls_as_another_domain_after_hello(served: Served) -> None:
    """A connection's calling domain is the one its HELLO names: no such domain, ESRCH."""
    conn = xc.RemoteHost(served.socket).connect(domid=7)
    try:
        assert conn.hypercall(HYPERVISOR_xen_version, version.XENVER_version, 0) == -3  # ESRCH
    finally:
        conn.close()


def test_a_call_in_flight_does_not_hold_up_other_callers(served: Served) -> None:
    """Caller A's populate stops before its extent at gfn 10 until caller B has been served:
    B sees A's 10 pages mid-call. With a lock around hypercalls B would wait for A forever."""
    with (
        xc.xc_interface_open(server=served.socket) as a,
        xc.xc_interface_open(server=served.socket) as b,
    ):
        domid = xc.xc_domain_create(a)
        xc.xc_domain_setmaxmem(a, domid, 4096)
        reached, released = threading.Event(), threading.Event()

        def hold() -> None:
            reached.set()
            assert released.wait(TIMEOUT)

        served.hv.faults.at_populate(domid, 10, hold)
        populate = threading.Thread(
            target=xc.xc_domain_populate_physmap_exact,
            args=(a, domid, 1024, 0, 0, list(range(1024))),
        )
        populate.start()
        assert reached.wait(TIMEOUT)
        assert xc.xc_domain_getinfo_single(b, domid).tot_pages == 10
        released.set()
        populate.join(TIMEOUT)
        assert xc.xc_domain_getinfo_single(b, domid).tot_pages == 1024


# -- many clients, killed clients, garbage ---------------------------------------------------


def test_builders_in_separate_processes_lose_no_update(served: Served) -> None:
    """Four processes build four domains each at once, two per node: each of the 16 domains
    holds exactly its 1024 pages, each node lost 8 * 1024 = 8192 pages to them and 128 to
    each domain's HAP pool (node 0 also 2 per domain for its structure and shared info), no
    claim is left. At boot node 0 had 1048575 free less dom0's 2, node 1 1048576 less 4."""
    procs = [
        subprocess.Popen([sys.executable, "-c", BUILDER, str(served.socket), str(i % 2), "4"])
        for i in range(4)
    ]
    assert [p.wait(TIMEOUT) for p in procs] == [0] * 4
    hv = served.hv
    guests = [d for d in hv.domain_list() if d.domain_id]
    assert len(guests) == 16
    assert {d.tot_pages for d in guests} == {1024}
    with xc.xc_interface_open(hv) as xch:
        assert xc.xc_availheap(xch, 0, 0, 0) == (1048575 - 2 - 16 * 130 - 8192) * 4096
        assert xc.xc_availheap(xch, 0, 0, 1) == (1048576 - 4 - 16 * 128 - 8192) * 4096
        assert xc.xc_physinfo(xch).outstanding_pages == 0
    hv.check_invariants()


KILLED = textwrap.dedent(
    """
    import sys
    import xenctrl as xc
    with xc.xc_interface_open(server=sys.argv[1]) as xch:
        domid = xc.xc_domain_create(xch)
        xc.xc_domain_setmaxmem(xch, domid, 4096)
        print(domid, flush=True)
        sys.stdin.readline()  # the fault is armed
        xc.xc_domain_populate_physmap_exact(xch, domid, 1024, 0, 0, list(range(1024)))
    """
)


def test_a_client_killed_mid_call_leaves_the_server_serving(served: Served) -> None:
    """The client is SIGKILLed while the server populates its extent at gfn 500: the call
    runs to its end (1024 pages, as Xen finishes a hypercall whose caller died), the answer
    finds no one, and the next client is served on a consistent host."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(served.socket)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    domid = int(proc.stdout.readline())

    def kill() -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)

    served.hv.faults.at_populate(domid, 500, kill)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.wait(TIMEOUT) == -signal.SIGKILL
    with served.server.paused():  # the orphaned call has run to its end
        served.hv.check_invariants()
    with xc.xc_interface_open(server=served.socket) as xch:
        assert xc.xc_domain_getinfo_single(xch, domid).tot_pages == 1024
        xc.xc_domain_destroy(xch, domid)
    served.hv.check_invariants()


def hello(version: int = wire.VERSION, domid: int = 0) -> bytes:
    return wire.HEADER.pack(wire.HELLO, 8) + wire.HELLO_BODY.pack(version, domid)


def message(kind: int, body: bytes) -> bytes:
    return wire.HEADER.pack(kind, len(body)) + body


def call_head(nr_ranges: int, op: int = HYPERVISOR_xen_version) -> bytes:
    return wire.CALL_HEAD.pack(op, *[0] * wire.ARGS, nr_ranges, 0)


def exchange(path: Path, data: bytes) -> bytes:
    """Send ``data``, close our side, and return everything the server sent until it closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(path))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # the server closed with our garbage unread: the kernel resets
    return b"".join(chunks)


def error_line(reply: bytes) -> str:
    """The reply's ERROR line, after any well-formed messages before it."""
    offset, kind, body = 0, None, b""
    while offset < len(reply):
        kind, length = wire.HEADER.unpack_from(reply, offset)
        body = reply[offset + 8 : offset + 8 + length]
        offset += 8 + length
    assert kind == wire.ERROR, f"expected an ERROR last, got {reply!r}"
    return body.decode()


RANGE = wire.RANGE_HEAD.pack


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (message(wire.HYPERCALL, call_head(0)), "expected HELLO first, got kind 0x2"),
        (hello(version=2), "expected protocol version 1, got 2"),
        (hello(domid=0x7FF0), "expected a calling domid below 0x7ff0, got 0x7ff0"),
        (hello() + wire.HEADER.pack(wire.HYPERCALL, wire.MAX_BODY + 1), "at most 268435456"),
        (hello() + message(wire.HYPERCALL, call_head(5)), "expected 5 ranges"),
        (hello() + message(wire.HYPERCALL, call_head(1) + RANGE(0x1000, 99)), "expected 99 bytes"),
        (
            hello() + message(wire.HYPERCALL, call_head(2) + RANGE(0x1000, 8) + bytes(8) * 2),
            "expected 2 ranges",
        ),
        (
            hello()
            + message(
                wire.HYPERCALL, call_head(2) + RANGE(0x1000, 16) + bytes(16) + RANGE(0x1008, 0)
            ),
            "expected disjoint buffers",
        ),
        (hello() + message(9, b""), "expected a HYPERCALL or SAVE message, got kind 0x9"),
        (hello() + message(wire.SAVE, b"x"), "got kind 0x3 with 1 bytes"),
        (hello() + wire.HEADER.pack(wire.HYPERCALL, 64) + bytes(10), "connection closed 10 bytes"),
        (hello() + message(wire.HYPERCALL, call_head(0) + b"tail"), "expected 64 bytes"),
    ],
)
def test_garbage_gets_an_error_line_and_the_server_serves_on(
    served: Served, data: bytes, error: str
) -> None:
    assert error in error_line(exchange(served.socket, data))
    with xc.xc_interface_open(server=served.socket) as xch:
        assert xc.xc_version(xch, version.XENVER_version) == 0x40017  # 4.23-unstable


def test_random_bytes_never_kill_the_server(served: Served) -> None:
    """Seeded random streams, half after a valid HELLO, some with well-framed hypercalls of
    random ops and words over random buffers: each gets answers, an ERROR or a close; the
    host stays consistent and serves on."""
    rng = random.Random(20260508)
    ops = [1 << 40, 12, 13, 17, 35, 36]  # unknown, memory_op, multicall, version, sysctl, domctl
    for i in range(120):
        data = rng.randbytes(rng.randrange(0, 200))
        if i % 2:
            data = hello() + data
        if i % 3 == 0:
            body = rng.randbytes(rng.randrange(0, 256))
            words = [rng.choice([0, 0x1000, 0x1010, rng.getrandbits(64)]) for _ in range(6)]
            head = wire.CALL_HEAD.pack(rng.choice(ops), *words, 1, 0)
            data = hello() + message(wire.HYPERCALL, head + RANGE(0x1000, len(body)) + body)
        reply = exchange(served.socket, data)
        if reply:
            kind, _ = wire.HEADER.unpack_from(reply)
            assert kind in (wire.OK, wire.RESULT, wire.ERROR)
    served.hv.check_invariants()
    with xc.xc_interface_open(server=served.socket) as xch:
        assert xc.xc_physinfo(xch).nr_nodes == 2


# -- saving ----------------------------------------------------------------------------------


def test_saves_what_changed_on_request_and_on_close(short_dir: Path) -> None:
    """SAVE writes the host's saved state when it changed since the last save, and only
    then (calls that only read change nothing); closing saves what is left. (The interval
    is an hour: only requests and close save here.)"""
    hv = hypervisor_model.boot(nodes=[4096])
    saves: list[int] = []
    server = HostServer(
        hv,
        short_dir / "s.sock",
        save=lambda doc: saves.append(len(doc["domains"])),
        save_interval=3600,
    )
    with server:
        conn = xc.RemoteHost(server.path).connect()
        conn.save()
        with xc.xc_interface_open(server=server.path) as xch:
            xc.xc_physinfo(xch)
        conn.save()
        assert saves == []  # nothing changed
        with xc.xc_interface_open(server=server.path) as xch:
            xc.xc_domain_create(xch)
        conn.save()
        conn.save()
        assert saves == [2]  # dom0 and the new domain, saved once
        with xc.xc_interface_open(server=server.path) as xch:
            xc.xc_domain_create(xch)
        conn.close()
    assert saves == [2, 3]
    assert not server.path.exists()


def test_a_socket_path_longer_than_sun_path_is_refused(short_dir: Path) -> None:
    path = short_dir / ("x" * 120)
    with pytest.raises(ServerError, match="at most 107 bytes"):
        HostServer(hypervisor_model.boot(nodes=[64]), path)


def test_no_server_is_one_clear_error(short_dir: Path) -> None:
    with pytest.raises(xc.ServerError, match=f"host server at {short_dir}/none: "):
        xc.xc_interface_open(server=short_dir / "none")
    assert os.listdir(short_dir) == []
