"""The xenstore on a socket: many clients at once, events between them, and clients that
misbehave (garbage, oversized messages, vanishing mid-message, never reading) costing only
their own connection."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from xenhost.xenstore import Store, XenstoreServer, XsHandle
from xenhost.xenstore import server as server_module
from xenhost.xenstore.wire import XsType, encode, join, xsd_sockmsg
from xs_helpers import error_of


def raw(server: XenstoreServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(server.path))
    sock.settimeout(5)
    return sock


def receive(sock: socket.socket) -> tuple[int, int, int, bytes]:
    data = b""
    while len(data) < 16:
        chunk = sock.recv(16 - len(data))
        assert chunk, "connection closed"
        data += chunk
    header = xsd_sockmsg.parse(data)
    payload = b""
    while len(payload) < header.len:
        payload += sock.recv(header.len - len(payload))
    return header.type, header.req_id, header.tx_id, payload


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def still_serving(server: XenstoreServer) -> None:
    with XsHandle.open(str(server.path)) as xs:
        xs.write("/alive", "yes")
        assert xs.read("/alive") == b"yes"


def test_replies_echo_the_request(server: XenstoreServer) -> None:
    """A reply carries the request's type, req_id and tx_id; an error is type ERROR with
    the errno's name."""
    with raw(server) as sock:
        sock.sendall(encode(XsType.XS_WRITE, 77, 0, b"/a\0value"))
        assert receive(sock) == (XsType.XS_WRITE, 77, 0, b"OK\0")
        sock.sendall(encode(XsType.XS_READ, 78, 5, join("/a")))
        assert receive(sock) == (XsType.XS_ERROR, 78, 5, b"ENOENT\0")  # no transaction 5
        sock.sendall(encode(XsType.XS_READ, 79, 0, join("/a")))
        assert receive(sock) == (XsType.XS_READ, 79, 0, b"value")


def test_events_reach_other_clients(server: XenstoreServer) -> None:
    with XsHandle.open(str(server.path)) as watcher, XsHandle.open(str(server.path)) as xs:
        watcher.watch("/w", "tok")
        assert watcher.read_watch(timeout=5) == ("/w", "tok")
        xs.write("/w/x", "1")
        assert watcher.read_watch(timeout=5) == ("/w/x", "tok")
        assert watcher.read_watch(timeout=0) is None


def test_in_process_changes_reach_socket_clients(store: Store, server: XenstoreServer) -> None:
    """Another thread using the store directly wakes the server to send the event."""
    with XsHandle.open(str(server.path)) as watcher:
        watcher.watch("/w", "tok")
        assert watcher.read_watch(timeout=5) == ("/w", "tok")
        with XsHandle.local(store) as local:
            local.write("/w", "from-this-process")
        assert watcher.read_watch(timeout=5) == ("/w", "tok")


def test_many_clients_lose_no_update(server: XenstoreServer) -> None:
    """8 clients add 1 to one counter 25 times each in transactions: EAGAIN makes the
    losers retry, so the counter ends at 8 * 25 = 200."""
    with XsHandle.open(str(server.path)) as xs:
        xs.write("/counter", "0")

    def bump(xs: XsHandle, t: int) -> None:
        xs.write("/counter", str(int(xs.read("/counter", t)) + 1), t)

    def worker() -> None:
        with XsHandle.open(str(server.path)) as xs:
            for _ in range(25):
                xs.transact(lambda t: bump(xs, t))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with XsHandle.open(str(server.path)) as xs:
        assert xs.read("/counter") == b"200"


def test_an_oversized_message_closes_only_that_connection(server: XenstoreServer) -> None:
    with raw(server) as bad:
        bad.sendall(xsd_sockmsg.build(dict(type=XsType.XS_READ, req_id=1, tx_id=0, len=4097)))
        assert closed(bad)
    still_serving(server)


def test_garbage(server: XenstoreServer) -> None:
    """Random bytes parse as headers of unknown types (ENOSYS), as requests with bad
    payloads (errors), or as an oversized length (closed): never a dead server."""
    rng = __import__("random").Random(7)
    for _ in range(20):
        with raw(server) as bad:
            bad.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
            bad.settimeout(0.2)
            try:
                while bad.recv(4096):
                    pass
            except (TimeoutError, ConnectionResetError):
                pass
    still_serving(server)
    wait_for(lambda: server.clients == 0)


def test_a_client_gone_mid_message(store: Store, server: XenstoreServer) -> None:
    """Its half message is dropped, its watches and transactions with it."""
    with raw(server) as sock:
        sock.sendall(encode(XsType.XS_WATCH, 1, 0, join("/w", "t")))
        receive(sock)
        sock.sendall(encode(XsType.XS_WRITE, 2, 0, b"/half\0value")[:20])
        wait_for(lambda: any(c.watches for c in store.connections))
    wait_for(lambda: server.clients == 0)
    assert not any(c.watches for c in store.connections)
    with XsHandle.open(str(server.path)) as xs:
        assert error_of(xs.read, "/half") == "ENOENT"


CHILD = """
import os, socket, sys
from xenhost.xenstore.wire import XsType, encode, join
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
sock.sendall(encode(XsType.XS_TRANSACTION_START, 1, 0, b"\\0"))
sock.recv(64)
sock.sendall(encode(XsType.XS_WRITE, 2, 1, b"/killed\\0value"))
sock.recv(64)
sock.sendall(encode(XsType.XS_WRITE, 3, 0, b"/x\\0")[:18])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_killed_client_process(store: Store, server: XenstoreServer) -> None:
    """SIGKILL in the middle of a message and of a transaction: the transaction is
    forgotten (its write never happens) and the server goes on."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(server.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    assert any(c.transactions for c in store.connections)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    wait_for(lambda: server.clients == 0)
    with XsHandle.open(str(server.path)) as xs:
        assert error_of(xs.read, "/killed") == "ENOENT"
    assert not any(c.transactions for c in store.connections)


def test_a_client_that_never_reads_is_dropped(
    server: XenstoreServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_PENDING", 64 << 10)
    with raw(server) as lazy:
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.sendall(encode(XsType.XS_WATCH, 1, 0, join("/", "t")))
        with XsHandle.open(str(server.path)) as xs:
            for i in range(2000):  # 2000 events of ~220 bytes: far beyond the socket's buffer
                xs.write(f"/{'n' * 200}{i}", "")
        wait_for(lambda: server.clients == 0)
    still_serving(server)


def test_stop_removes_the_socket(store: Store, sock_dir: Path) -> None:
    path = sock_dir / "socket"
    with XenstoreServer(store) as srv:
        srv.start(path)
        assert path.is_socket()
    assert not path.exists()


def test_a_live_socket_is_not_taken_over(store: Store, server: XenstoreServer) -> None:
    assert server.path is not None
    with pytest.raises(FileExistsError, match="serving there already"):
        XenstoreServer(store).start(server.path)


def test_a_stale_socket_is_replaced(store: Store, sock_dir: Path) -> None:
    path = sock_dir / "stale"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    with XenstoreServer(store) as srv:
        srv.start(path)
        with XsHandle.open(str(path)) as xs:
            assert xs.directory("/") == ["tool"]


def test_a_plain_file_is_not_replaced(store: Store, sock_dir: Path) -> None:
    path = sock_dir / "file"
    path.write_text("mine")
    with pytest.raises(FileExistsError, match="not a socket"):
        XenstoreServer(store).start(path)
    assert path.read_text() == "mine"


def test_default_socket_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """xs_daemon_socket: $XENSTORED_PATH, else socket in $XENSTORED_RUNDIR or the rundir."""
    from xenhost.xenstore import daemon_path

    monkeypatch.delenv("XENSTORED_PATH", raising=False)
    monkeypatch.delenv("XENSTORED_RUNDIR", raising=False)
    assert daemon_path() == "/var/run/xenstored/socket"
    monkeypatch.setenv("XENSTORED_RUNDIR", "/run/x")
    assert daemon_path() == "/run/x/socket"
    monkeypatch.setenv("XENSTORED_PATH", "/tmp/s")
    assert daemon_path() == "/tmp/s"
