"""A host held by a server in another process: one more way of opening a libxenctrl handle.

``xc_interface_open(server=PATH)`` (or ``xc_interface_open(RemoteHost(PATH))``) connects to
a host server's socket. As each ``xencall_open`` opens its own privcmd file, each handle
opens its own connection: one caller with its own hypercall buffers, allocated here in this
process and sent with every hypercall (:mod:`xenctrl.wire`), so the same ``xc_*`` code runs
unchanged against an in-process host or a served one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hypervisor_model.guest_memory import Arena
from xenctrl import wire


class ServerError(OSError):
    """The host server cannot be reached, refused us, or went away."""


class RemoteHost:
    """The address of a host server: a Unix socket. Handles opened on it connect there."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RemoteHost({str(self.path)!r})"

    def connect(self, domid: int = 0) -> Connection:
        return Connection(self.path, domid)


class Connection:
    """One caller on a host server: its calling domain and its own hypercall buffers."""

    def __init__(self, path: Path, domid: int = 0) -> None:
        self.path = path
        self.domid = domid
        self.arena = Arena()  # this caller's address space, sent with each hypercall
        self.notices: list[str] = []
        self._lock = threading.Lock()  # one request at a time on the stream
        import socket  # only a served host needs it: an in-process one is far more common

        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(path))
            self._request(wire.HELLO, wire.HELLO_BODY.pack(wire.VERSION, domid), expect=wire.OK)
        except OSError as e:
            self._sock.close()
            raise ServerError(f"host server at {path}: {e.strerror or e}") from None

    def hypercall(self, op: int, *args: int) -> int:
        """Issue one hypercall with this caller's live buffers; apply what Xen wrote back."""
        buffers = [(b.addr, b.mem[: b.size]) for b in self.arena.live()]
        parts = wire.hypercall_parts(op, args, buffers)
        rc, written, notice = wire.parse_result(self._request(wire.HYPERCALL, *parts))
        for addr, data in written:
            self.arena.copy_to_guest(addr, bytes(data))
        if notice:
            self.notices.append(notice)
        return rc

    def save(self) -> None:
        """Ask the server to write the host's state now."""
        self._request(wire.SAVE, expect=wire.OK)

    def close(self) -> None:
        self._sock.close()

    def _request(
        self, kind: int, *parts: bytes | bytearray | memoryview, expect: int = wire.RESULT
    ) -> bytearray:
        with self._lock:
            try:
                wire.send(self._sock, kind, *parts)
                reply = wire.recv(self._sock)
            except wire.ProtocolError as e:
                raise ServerError(f"host server at {self.path}: {e}") from None
            except OSError as e:
                raise ServerError(f"host server at {self.path}: {e.strerror or e}") from None
        if reply is None:
            raise ServerError(f"host server at {self.path}: connection closed")
        got, body = reply
        if got == wire.ERROR:
            raise ServerError(f"host server at {self.path}: {body.decode('utf-8', 'replace')}")
        if got != expect:
            raise ServerError(
                f"host server at {self.path}: expected reply {expect:#x}, got {got:#x}"
            )
        return body
