"""The host server: one emulated host served to callers in other processes.

Each connection is one caller (:mod:`xenctrl.wire`) served by its own thread, with its own
calling domain and its own hypercall buffers; the server calls the same
``Hypervisor.hypercall`` entry as an in-process caller. There is no lock around hypercalls:
the model's own locks serialize them, so builders in different processes interleave as
threads do. The one thing that spans the host is a gate between hypercalls and a snapshot:
saving waits for the calls in flight and holds new ones back while it copies the state.

A client that sends garbage gets an ERROR line and a closed connection; a client that dies
mid-call leaves the call to finish and the server serving.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from itertools import pairwise
from pathlib import Path
from typing import Any

from hypervisor_model import Hypervisor
from hypervisor_model.guest_memory import GuestFault, GuestMemory
from hypervisor_model.public.errno import EACCES
from hypervisor_model.public.releases import Release, version_mismatch
from hypervisor_model.public.xen import (
    DOMID_FIRST_RESERVED,
    HYPERVISOR_domctl,
    HYPERVISOR_sysctl,
)
from hypervisor_model.snapshot import save_state
from xenctrl import wire

SAVE_INTERVAL = 1.0  # seconds between saves of a host that changed
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class ServerError(Exception):
    """The server cannot start (e.g. its socket path is unusable)."""


class CallerBuffers(GuestMemory):
    """A remote caller's hypercall buffers, as it sent them with one hypercall.

    The hypervisor reads and writes these copies; :meth:`written` is what goes back: for
    each buffer written, the span from its first to its last byte written."""

    def __init__(self, ranges: list[wire.Range]) -> None:
        spans = sorted(((addr, memoryview(data)) for addr, data in ranges), key=lambda r: r[0])
        for (a, da), (b, _) in pairwise(spans):
            if a + len(da) > b:
                raise wire.ProtocolError(
                    f"expected disjoint buffers, got {a:#x} overlapping {b:#x}"
                )
        if spans and spans[-1][0] + len(spans[-1][1]) > 1 << 64:
            raise wire.ProtocolError(f"expected buffers below 2^64, got one at {spans[-1][0]:#x}")
        self._starts = [addr for addr, _ in spans]
        self._data = [data for _, data in spans]
        self._dirty: dict[int, tuple[int, int]] = {}

    def _locate(self, addr: int, size: int) -> tuple[int, int]:
        i = bisect_right(self._starts, addr) - 1
        if i < 0 or addr + size > self._starts[i] + len(self._data[i]):
            raise GuestFault(f"no hypercall memory at {addr:#x}+{size:#x}")
        return i, addr - self._starts[i]

    def readable(self, addr: int) -> int:
        try:
            i, offset = self._locate(addr, 0)
        except GuestFault:
            return 0
        return len(self._data[i]) - offset

    def copy_from_guest(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        i, offset = self._locate(addr, size)
        return bytes(self._data[i][offset : offset + size])

    def copy_to_guest(self, addr: int, data: bytes | bytearray) -> None:
        if not data:
            return
        i, offset = self._locate(addr, len(data))
        end = offset + len(data)
        self._data[i][offset:end] = data
        lo, hi = self._dirty.get(i, (offset, end))
        self._dirty[i] = (min(lo, offset), max(hi, end))

    def written(self) -> list[wire.Range]:
        return [
            (self._starts[i] + lo, self._data[i][lo:hi])
            for i, (lo, hi) in sorted(self._dirty.items())
        ]


class Gate:
    """Hypercalls pass together; a snapshot waits for them to finish and holds new ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls = 0
        self._snapshots = 0  # taking or waiting to take one: new calls wait

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._snapshots)
            self._calls += 1
        try:
            yield
        finally:
            with self._cond:
                self._calls -= 1
                self._cond.notify_all()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._cond:
            self._snapshots += 1
            self._cond.wait_for(lambda: not self._calls)
        try:
            yield
        finally:
            with self._cond:
                self._snapshots -= 1
                self._cond.notify_all()


class HostServer:
    """Serve ``hv`` on the Unix socket ``path`` until :meth:`close`.

    ``save`` writes the host's saved state (``save_state``, taken with no hypercall in
    flight; the writing happens after calls resume) with whatever the caller keeps beside
    it, which ``changed`` says has changed since ``save`` last ran (the xenstore). It is
    called when either changed: checked every ``save_interval`` seconds, on a client's SAVE
    request, and once more on close. The host as given is taken to be saved already. A
    failed save is reported and retried."""

    def __init__(
        self,
        hv: Hypervisor,
        path: str | os.PathLike[str],
        *,
        save: Callable[[dict[str, Any]], None] | None = None,
        changed: Callable[[], bool] = lambda: False,
        save_interval: float = SAVE_INTERVAL,
    ) -> None:
        self.hv = hv
        self.path = Path(path)
        self._save = save
        self._changed = changed
        self._save_interval = save_interval
        self._gate = Gate()
        self._save_lock = threading.Lock()  # one save at a time, in order
        self._dirty = False
        self._saved = save_state(hv) if save else None  # as given: saved already
        self._closing = threading.Event()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        self._threads: list[threading.Thread] = []  # the acceptor and the saver
        self._bound = False
        if len(os.fsencode(self.path)) > SOCKET_PATH_MAX:
            raise ServerError(
                f"expected a socket path of at most {SOCKET_PATH_MAX} bytes, got {self.path}"
            )
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> HostServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (replacing a stale socket file) and serve in background threads."""
        if self.path.exists() or self.path.is_symlink():
            self._remove_stale_socket()
        try:
            self._listener.bind(str(self.path))
        except OSError as e:
            raise ServerError(f"cannot listen on {self.path}: {e.strerror or e}") from None
        self._bound = True
        self._listener.listen(64)
        for target in (self._accept_loop, self._save_loop):
            t = threading.Thread(target=target, name=f"xenhost-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    def _remove_stale_socket(self) -> None:
        """Take over a socket file a dead server left; never one in use or another file."""
        if not self.path.is_socket():
            raise ServerError(f"cannot listen on {self.path}: it exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.path))
            except ConnectionRefusedError:
                self.path.unlink(missing_ok=True)
                return
            except OSError:
                pass
        raise ServerError(f"cannot listen on {self.path}: another server is listening there")

    def close(self) -> None:
        """Stop accepting, end every connection after its call in flight, save."""
        if self._closing.is_set():
            return
        self._closing.set()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for t in self._threads:
            t.join()
        with self._conns_lock:
            conns = dict(self._conns)
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RD)  # a call in flight still gets its answer
        for t in conns.values():
            t.join()
        if self._bound:
            self.path.unlink(missing_ok=True)
        self.save()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Wait for the hypercalls in flight and hold new ones: the host is at rest inside."""
        with self._gate.snapshot():
            yield

    def save(self) -> None:
        """Write the state now if it changed since the last save."""
        if self._save is None:
            return
        with self._save_lock:
            with self.paused():
                beside = self._changed()
                if not (self._dirty or beside):
                    return
                self._dirty = False
                doc = save_state(self.hv)
            if doc == self._saved and not beside:
                return  # only reads since the last save
            try:
                self._save(doc)
            except Exception as e:  # a full disk must not take the server down
                self._dirty = True
                print(f"xenhost: saving the host failed: {e}", file=sys.stderr)
            else:
                self._saved = doc

    # -- threads ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            t = threading.Thread(target=self._serve, args=(conn,), name="xenhost-caller")
            t.daemon = True
            with self._conns_lock:
                self._conns[conn] = t
            t.start()

    def _save_loop(self) -> None:
        while not self._closing.wait(self._save_interval):
            self.save()

    def _serve(self, conn: socket.socket) -> None:
        """One caller: HELLO, then hypercalls and saves until it hangs up."""
        try:
            domid = self._hello(conn)
            notified = False
            while (msg := wire.recv(conn)) is not None:
                kind, body = msg
                if kind == wire.HYPERCALL:
                    rc, written, notice = self._hypercall(domid, body)
                    notice, notified = ("", True) if notified else (notice, bool(notice))
                    data = notice.encode()
                    head = wire.RESULT_HEAD.pack(rc, len(written), len(data))
                    wire.send(conn, wire.RESULT, head, *wire.ranges(written), data)
                elif kind == wire.SAVE and not body:
                    self.save()
                    wire.send(conn, wire.OK)
                else:
                    raise wire.ProtocolError(
                        f"expected a HYPERCALL or SAVE message, got kind {kind:#x}"
                        f" with {len(body)} bytes"
                    )
        except wire.ProtocolError as e:
            with suppress(OSError):
                wire.send(conn, wire.ERROR, str(e).encode())
        except OSError:
            pass  # the caller went away; its call in flight has finished
        except Exception as e:  # a fault in the model must not take the server down
            print(f"xenhost: internal error serving a caller: {e!r}", file=sys.stderr)
            with suppress(OSError):
                wire.send(conn, wire.ERROR, f"internal error: {e!r}".encode())
        finally:
            with self._conns_lock:
                self._conns.pop(conn, None)
            conn.close()

    def _hello(self, conn: socket.socket) -> int:
        msg = wire.recv(conn)
        if msg is None:
            raise OSError("closed before HELLO")
        kind, body = msg
        if kind != wire.HELLO or len(body) != wire.HELLO_BODY.size:
            raise wire.ProtocolError(f"expected HELLO first, got kind {kind:#x}")
        version, domid = wire.HELLO_BODY.unpack(body)
        if version != wire.VERSION:
            raise wire.ProtocolError(f"expected protocol version {wire.VERSION}, got {version}")
        if domid >= DOMID_FIRST_RESERVED:
            raise wire.ProtocolError(f"expected a calling domid below 0x7ff0, got {domid:#x}")
        wire.send(conn, wire.OK, wire.HELLO_BODY.pack(wire.VERSION, domid)[:4])
        return domid

    def _hypercall(self, domid: int, body: bytearray) -> tuple[int, list[wire.Range], str]:
        op, words, ranges = wire.parse_hypercall(body)
        memory = CallerBuffers(ranges)
        with self._gate.call():
            rc = self.hv.hypercall(op, *words, caller=domid, memory=memory)
            self._dirty = True
        notice = interface_notice(self.hv.release, op, words[0], memory, rc)
        return rc, memory.written(), notice


def interface_notice(release: Release, op: int, arg: int, memory: GuestMemory, rc: int) -> str:
    """One line for a caller refused because it speaks another release's interface."""
    if rc != -EACCES or op not in (HYPERVISOR_domctl, HYPERVISOR_sysctl):
        return ""
    try:  # both envelopes open with u32 cmd, u32 interface_version
        _, version = struct.unpack("<II", memory.copy_from_guest(arg, 8))
    except GuestFault:
        return ""
    return version_mismatch(release, op, version) or ""
