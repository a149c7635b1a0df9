"""The xenstore served on a Unix socket, where libxenstore looks for xenstored.

One thread runs a selector loop over the listening socket and every client, as xenstored's
single thread polls its connections; each client is a dom0 connection. A message longer
than XENSTORE_PAYLOAD_MAX closes its connection (handle_input), a client that vanishes
mid-message loses only its own watches and transactions, and a client that stops reading
while its replies and events pile up beyond ``MAX_PENDING`` bytes is dropped: no client
can stop the server or the others. Other threads may use the same store meanwhile (an
in-process :class:`~xenhost.xenstore.client.XsHandle`); what they queue for a socket client
wakes the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from xenhost.xenstore.connection import Connection
from xenhost.xenstore.protocol import handle
from xenhost.xenstore.store import Store
from xenhost.xenstore.wire import HEADER_SIZE, XENSTORE_PAYLOAD_MAX, encode, xsd_sockmsg

log = logging.getLogger(__name__)
MAX_PENDING = 16 << 20  # bytes queued for one client that is not reading
RECV_SIZE = 1 << 16


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    conn: Connection
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    writing: bool = False


class XenstoreServer:
    """Serves ``store`` on a socket: ``start(path)`` returns once clients may connect,
    ``stop()`` closes every connection and removes the socket."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path: Path | None = None
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._clients: dict[socket.socket, _Client] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self, path: str | os.PathLike[str]) -> None:
        """Listen on ``path`` (its directory is created; a stale socket is replaced, a
        live one is an error) and serve from a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("the xenstore server is running already")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="xenstored", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: the loop ends, clients are disconnected, the socket removed."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        self._thread.join()
        self._thread = None
        for client in list(self._clients.values()):
            self._drop(client)
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        self._selector.unregister(self._wake_r)
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def close(self) -> None:
        self.stop()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> XenstoreServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def clients(self) -> int:
        return len(self._clients)

    # -- the loop ------------------------------------------------------------------------------

    def _wake(self) -> None:
        """Rouse the loop for what another thread queued (the loop flushes its own)."""
        if threading.current_thread() is self._thread:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _serve(self) -> None:
        while not self._stopping:
            for key, mask in self._selector.select():
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                else:
                    client = self._clients.get(key.fileobj)  # type: ignore[call-overload]
                    if client is not None and mask & selectors.EVENT_READ:
                        self._receive(client)
                    if client is not None and client.sock in self._clients:
                        self._flush(client)
            for client in list(self._clients.values()):  # events other clients caused
                self._flush(client)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors: refuse this one, keep serving
                log.warning("xenstore: accept failed: %s", e)
                return
            sock.setblocking(False)
            client = _Client(sock, Connection(self.store, notify=self._wake))
            self._clients[sock] = client
            self._selector.register(sock, selectors.EVENT_READ)

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbuf += data
        while len(client.inbuf) >= HEADER_SIZE:
            header = xsd_sockmsg.parse(bytes(client.inbuf[:HEADER_SIZE]))
            if header.len > XENSTORE_PAYLOAD_MAX:
                log.warning("xenstore: a client sent a %d-byte message", header.len)
                self._drop(client)
                return
            end = HEADER_SIZE + header.len
            if len(client.inbuf) < end:
                return
            payload = bytes(client.inbuf[HEADER_SIZE:end])
            del client.inbuf[:end]
            try:
                handle(client.conn, header.type, header.req_id, header.tx_id, payload)
            except Exception:  # a bug must cost one connection, never the server
                log.exception("xenstore: request type %d failed", header.type)
                self._drop(client)
                return

    def _flush(self, client: _Client) -> None:
        while (message := client.conn.take()) is not None:
            client.outbuf += encode(*message)
        if client.outbuf:
            try:
                sent = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(client)
                return
            del client.outbuf[:sent]
        if len(client.outbuf) > MAX_PENDING:
            log.warning("xenstore: dropping a client that does not read its replies")
            self._drop(client)
            return
        writing = bool(client.outbuf)
        if writing != client.writing:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
            self._selector.modify(client.sock, events)
            client.writing = writing

    def _drop(self, client: _Client) -> None:
        """Disconnect ``client``; it counts in ``clients`` until its watches and
        transactions are gone too."""
        if client.sock not in self._clients:
            return
        self._selector.unregister(client.sock)
        client.sock.close()
        client.conn.close()
        del self._clients[client.sock]


def _remove_stale(path: Path) -> None:
    """Remove a socket nobody listens on; refuse to take over a live one or a file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path}: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise FileExistsError(f"{path}: a xenstore is serving there already")
