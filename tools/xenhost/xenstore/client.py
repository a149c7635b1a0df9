"""libxenstore's calls (tools/libs/store/xs.c) for Python: a handle on a xenstore served
on a socket, or on a :class:`Store` in this process. Both speak the same wire messages, so
a toolstack behaves alike whether or not a server holds the store.

A refused request raises :class:`XenstoreError` (an OSError whose errno is the one
libxenstore would set). Watch events wait in the handle until ``read_watch``. A handle
belongs to one thread at a time.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from xenhost.xenstore.connection import Connection, Message
from xenhost.xenstore.errors import XenstoreError
from xenhost.xenstore.protocol import handle
from xenhost.xenstore.store import Store
from xenhost.xenstore.wire import (
    ERRNO_OF,
    HEADER_SIZE,
    XENSTORE_PAYLOAD_MAX,
    XsType,
    encode,
    join,
    strings,
    xsd_sockmsg,
)

XBT_NULL = 0
XEN_RUN_STORED = "/var/run/xenstored"  # Debian's rundir
T = TypeVar("T")


def daemon_path() -> str:
    """xs_daemon_socket: $XENSTORED_PATH, else the socket in $XENSTORED_RUNDIR."""
    if path := os.environ.get("XENSTORED_PATH"):
        return path
    return os.path.join(os.environ.get("XENSTORED_RUNDIR", XEN_RUN_STORED), "socket")


def _bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class Channel(Protocol):
    """Where whole messages go and come from."""

    def send(self, message: Message) -> None: ...

    def receive(self, timeout: float | None) -> Message | None: ...

    def close(self) -> None: ...

    def reopen(self) -> Channel:
        """Another connection to the same xenstore."""
        ...


class SocketChannel:
    def __init__(self, path: str) -> None:
        import socket  # only a client of a served store needs it

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self._buf = bytearray()

    def send(self, message: Message) -> None:
        self.sock.sendall(encode(*message))

    def receive(self, timeout: float | None) -> Message | None:
        self.sock.settimeout(timeout)
        try:
            while True:
                if len(self._buf) >= HEADER_SIZE:
                    header = xsd_sockmsg.parse(bytes(self._buf[:HEADER_SIZE]))
                    end = HEADER_SIZE + header.len
                    if len(self._buf) >= end:
                        payload = bytes(self._buf[HEADER_SIZE:end])
                        del self._buf[:end]
                        return header.type, header.req_id, header.tx_id, payload
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionResetError("the xenstore closed the connection")
                self._buf += data
        except (TimeoutError, BlockingIOError):  # nothing within the timeout (0: now)
            return None

    def close(self) -> None:
        self.sock.close()

    def reopen(self) -> SocketChannel:
        return SocketChannel(self.path)


class LocalChannel:
    """A connection to a store in this process; requests are answered on the spot."""

    def __init__(self, store: Store, domid: int = 0) -> None:
        self.conn = Connection(store, domid)

    def send(self, message: Message) -> None:
        handle(self.conn, *message)

    def receive(self, timeout: float | None) -> Message | None:
        return self.conn.take(timeout)

    def close(self) -> None:
        self.conn.close()

    def reopen(self) -> LocalChannel:
        return LocalChannel(self.conn.store, self.conn.domid)


class XsHandle:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._req_id = 0
        self._events: deque[tuple[str, str]] = deque()

    @classmethod
    def open(cls, path: str | None = None) -> XsHandle:
        """xs_open: connect to the xenstore's socket (``path`` or :func:`daemon_path`)."""
        return cls(SocketChannel(path or daemon_path()))

    @classmethod
    def local(cls, store: Store, domid: int = 0) -> XsHandle:
        """A handle on ``store`` in this process, speaking for ``domid``."""
        return cls(LocalChannel(store, domid))

    @property
    def socket(self) -> str | None:
        """The socket another process would connect to (None: a store in this process)."""
        return self.channel.path if isinstance(self.channel, SocketChannel) else None

    def another(self) -> XsHandle:
        """A handle of its own on the same xenstore, for another thread or builder."""
        return XsHandle(self.channel.reopen())

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> XsHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the exchange --------------------------------------------------------------------------

    def talk(self, msg_type: int, payload: bytes, t: int = XBT_NULL) -> bytes:
        """xs_talkv: send one request and wait for its reply, keeping events for later."""
        if len(payload) > XENSTORE_PAYLOAD_MAX:  # the server would close the connection
            raise XenstoreError("E2BIG", f"a {len(payload)}-byte request")
        self._req_id = (self._req_id + 1) & 0xFFFFFFFF
        self.channel.send((msg_type, self._req_id, t, payload))
        while True:
            message = self.channel.receive(None)
            assert message is not None
            reply_type, req_id, _, data = message
            if reply_type == XsType.XS_WATCH_EVENT:
                path, token = [*strings(data), b"", b""][:2]
                self._events.append((_text(path), _text(token)))
            elif req_id == self._req_id:
                break
        if reply_type == XsType.XS_ERROR:
            name = _text(data.rstrip(b"\0"))
            known = msg_type in XsType._value2member_map_
            request = XsType(msg_type).name if known else f"request type {msg_type}"
            raise XenstoreError(name if name in ERRNO_OF else "EINVAL", request)
        return data

    def _ok(self, msg_type: XsType, payload: bytes, t: int = XBT_NULL) -> None:
        self.talk(msg_type, payload, t)

    # -- nodes ---------------------------------------------------------------------------------

    def read(self, path: str, t: int = XBT_NULL) -> bytes:
        return self.talk(XsType.XS_READ, join(_bytes(path)), t)

    def try_read(self, path: str, t: int = XBT_NULL) -> bytes | None:
        """The value, or None if there is no such node (libxl__xs_read)."""
        try:
            return self.read(path, t)
        except XenstoreError as e:
            if e.name == "ENOENT":
                return None
            raise

    def write(self, path: str, value: str | bytes, t: int = XBT_NULL) -> None:
        self._ok(XsType.XS_WRITE, _bytes(path) + b"\0" + _bytes(value), t)

    def mkdir(self, path: str, t: int = XBT_NULL) -> None:
        self._ok(XsType.XS_MKDIR, join(_bytes(path)), t)

    def rm(self, path: str, t: int = XBT_NULL) -> None:
        self._ok(XsType.XS_RM, join(_bytes(path)), t)

    def directory(self, path: str, t: int = XBT_NULL) -> list[str]:
        """xs_directory: a list too long for one reply is read in parts (DIRECTORY_PART),
        from the start again whenever the node changed between parts."""
        try:
            listing = self.talk(XsType.XS_DIRECTORY, join(_bytes(path)), t)
            return [_text(c) for c in strings(listing)]
        except XenstoreError as e:
            if e.name != "E2BIG":
                raise
        listing, generation = b"", b""
        while True:
            reply = self.talk(XsType.XS_DIRECTORY_PART, join(_bytes(path), str(len(listing))), t)
            gen, _, part = reply.partition(b"\0")
            if listing and gen != generation:  # changed meanwhile: start again
                listing = b""
                continue
            generation, listing = gen, listing + part
            if len(listing) <= 1 or listing[-2:-1] == b"\0":  # an empty name ends the list
                return [_text(c) for c in strings(listing[:-1])]

    def get_permissions(self, path: str, t: int = XBT_NULL) -> list[str]:
        return [_text(p) for p in strings(self.talk(XsType.XS_GET_PERMS, join(_bytes(path)), t))]

    def set_permissions(self, path: str, perms: Iterable[str], t: int = XBT_NULL) -> None:
        self._ok(XsType.XS_SET_PERMS, join(_bytes(path), *(_bytes(p) for p in perms)), t)

    # -- transactions --------------------------------------------------------------------------

    def transaction_start(self) -> int:
        return int(self.talk(XsType.XS_TRANSACTION_START, b"\0").rstrip(b"\0"))

    def transaction_end(self, t: int, abort: bool = False) -> None:
        """Commit (or abort) ``t``; a conflicting commit raises XenstoreError EAGAIN."""
        self._ok(XsType.XS_TRANSACTION_END, b"F\0" if abort else b"T\0", t)

    def transact(self, work: Callable[[int], T]) -> T:
        """``work(t)`` in a transaction, run again while the commit meets EAGAIN, as libxl
        retries (retry_transaction); any other failure aborts it."""
        while True:
            t = self.transaction_start()
            try:
                result = work(t)
            except BaseException:
                with contextlib.suppress(XenstoreError):
                    self.transaction_end(t, abort=True)
                raise
            try:
                self.transaction_end(t)
            except XenstoreError as e:
                if e.name != "EAGAIN":
                    raise
                continue
            return result

    # -- watches -------------------------------------------------------------------------------

    def watch(self, path: str, token: str, depth: int | None = None) -> None:
        extra = () if depth is None else (str(depth),)
        self._ok(XsType.XS_WATCH, join(_bytes(path), _bytes(token), *extra))

    def unwatch(self, path: str, token: str) -> None:
        self._ok(XsType.XS_UNWATCH, join(_bytes(path), _bytes(token)))

    def read_watch(self, timeout: float | None = None) -> tuple[str, str] | None:
        """The next watch event (path, token), waiting up to ``timeout`` seconds."""
        while not self._events:
            message = self.channel.receive(timeout)
            if message is None:
                return None
            if message[0] == XsType.XS_WATCH_EVENT:
                path, token = [*strings(message[3]), b"", b""][:2]
                self._events.append((_text(path), _text(token)))
        return self._events.popleft()

    def reset_watches(self) -> None:
        self._ok(XsType.XS_RESET_WATCHES, b"\0")

    # -- domains -------------------------------------------------------------------------------

    def get_domain_path(self, domid: int) -> str:
        return _text(self.talk(XsType.XS_GET_DOMAIN_PATH, join(str(domid))).rstrip(b"\0"))

    def introduce_domain(self, domid: int, mfn: int, eventchn: int) -> None:
        self._ok(XsType.XS_INTRODUCE, join(str(domid), str(mfn), str(eventchn)))

    def release_domain(self, domid: int) -> None:
        self._ok(XsType.XS_RELEASE, join(str(domid)))

    def resume_domain(self, domid: int) -> None:
        self._ok(XsType.XS_RESUME, join(str(domid)))

    def set_target(self, domid: int, target: int) -> None:
        self._ok(XsType.XS_SET_TARGET, join(str(domid), str(target)))

    def is_domain_introduced(self, domid: int) -> bool:
        return self.talk(XsType.XS_IS_DOMAIN_INTRODUCED, join(str(domid))) == b"T\0"

    def get_features(self, domid: int | None = None) -> int:
        payload = b"" if domid is None else join(str(domid))
        return int(self.talk(XsType.XS_GET_FEATURE, payload).rstrip(b"\0"))

    def set_features(self, domid: int, features: int) -> None:
        self._ok(XsType.XS_SET_FEATURE, join(str(domid), str(features)))

    def get_quota(self, name: str, domid: int | None = None) -> int:
        args = (name,) if domid is None else (str(domid), name)
        return int(self.talk(XsType.XS_GET_QUOTA, join(*args)).rstrip(b"\0"))

    def set_quota(self, name: str, value: int, domid: int | None = None) -> None:
        args = (name, str(value)) if domid is None else (str(domid), name, str(value))
        self._ok(XsType.XS_SET_QUOTA, join(*args))

    def control(self, *args: str) -> str:
        """xs_control_command: the reply text ("OK" for a plain acknowledgement)."""
        return _text(self.talk(XsType.XS_CONTROL, join(*(_bytes(a) for a in args))).rstrip(b"\0"))
