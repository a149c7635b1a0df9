"""The host server's wire protocol: hypercalls as bytes over a Unix stream socket.

A host server holds one emulated host for callers in other processes: Python handles
(:mod:`xenctrl.remote`) and C programs through the privcmd bridge (``xenhost/bridge.c``,
which re-expresses this framing in C). Only bytes cross, as at the in-process boundary: a
hypercall is its number, its argument words and the caller's live hypercall buffers; the
answer is the result and the bytes the hypervisor wrote back into them.

Every message is a header, ``u32 kind, u32 length``, then ``length`` bytes of body; all
integers are little-endian. A *range* is ``u64 addr, u64 size`` followed by ``size`` bytes.

====================  =====================================================================
client -> server      body
====================  =====================================================================
``HELLO``     (1)     ``u32 version, u32 domid``: first, once; the connection's calling domain
``HYPERCALL`` (2)     ``u64 op, u64 args[6], u32 nr_ranges, u32 0``, then the ranges: every
                      live hypercall buffer of the caller
``SAVE``      (3)     empty: write the host's state now (a command that changed it is done)
====================  =====================================================================

====================  =====================================================================
server -> client      body
====================  =====================================================================
``OK``     (0x81)     ``u32 version`` after HELLO; empty after SAVE
``RESULT`` (0x82)     ``i64 result, u32 nr_ranges, u32 notice_length``, the ranges written
                      (each a span of one buffer the client sent), then the notice: UTF-8,
                      usually empty, one line worth showing the person running the caller
                      (e.g. that the caller speaks another Xen release)
``ERROR``  (0xFF)     one line of UTF-8; the server closes the connection after it
====================  =====================================================================

Each connection is one caller with its own address space: a guest handle is resolved in
the buffers that connection sent, and an address outside them is EFAULT. Requests on one
connection are answered in order, one at a time; connections run concurrently.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the socket is the caller's: this module only reads and writes it
    import socket

VERSION = 1
HELLO, HYPERCALL, SAVE = 1, 2, 3
OK, RESULT, ERROR = 0x81, 0x82, 0xFF
ARGS = 6  # argument words per hypercall, as x86_64 passes them
MAX_BODY = 1 << 28  # 256 MiB: a 32 M-extent list; anything longer is a broken peer

HEADER = struct.Struct("<II")
HELLO_BODY = struct.Struct("<II")
CALL_HEAD = struct.Struct(f"<Q{ARGS}QII")
RESULT_HEAD = struct.Struct("<qII")
RANGE_HEAD = struct.Struct("<QQ")

Range = tuple[int, bytes | bytearray | memoryview]


class ProtocolError(Exception):
    """A message that breaks the protocol; the connection cannot go on."""


def send(sock: socket.socket, kind: int, *parts: bytes | bytearray | memoryview) -> None:
    """Send one message whose body is ``parts`` joined."""
    length = sum(len(p) for p in parts)
    sock.sendall(b"".join([HEADER.pack(kind, length), *parts]))


def recv(sock: socket.socket) -> tuple[int, bytearray] | None:
    """The next message, or None at a clean end of the stream between messages."""
    head = _recv_exact(sock, HEADER.size, eof_ok=True)
    if head is None:
        return None
    kind, length = HEADER.unpack(head)
    if length > MAX_BODY:
        raise ProtocolError(f"expected a message body of at most {MAX_BODY} bytes, got {length}")
    body = _recv_exact(sock, length, eof_ok=False)
    assert body is not None
    return kind, body


def _recv_exact(sock: socket.socket, n: int, *, eof_ok: bool) -> bytearray | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            if eof_ok and got == 0:
                return None
            raise ProtocolError(f"connection closed {got} bytes into a {n}-byte read")
        got += k
    return buf


def ranges(entries: Iterable[Range]) -> list[bytes | bytearray | memoryview]:
    """The wire form of ranges, as parts for :func:`send`."""
    parts: list[bytes | bytearray | memoryview] = []
    for addr, data in entries:
        parts += [RANGE_HEAD.pack(addr, len(data)), data]
    return parts


def parse_ranges(body: bytearray, offset: int, count: int) -> tuple[list[Range], int]:
    """``count`` ranges from ``offset``; returns them (views into ``body``) and the end."""
    view = memoryview(body)
    out: list[Range] = []
    for _ in range(count):
        if offset + RANGE_HEAD.size > len(body):
            raise ProtocolError(f"expected {count} ranges, the message ends after {len(out)}")
        addr, size = RANGE_HEAD.unpack_from(body, offset)
        offset += RANGE_HEAD.size
        if offset + size > len(body):
            raise ProtocolError(f"expected {size} bytes at {addr:#x}, got {len(body) - offset}")
        out.append((addr, view[offset : offset + size]))
        offset += size
    return out, offset


def hypercall_parts(
    op: int, args: Sequence[int], buffers: Sequence[Range]
) -> list[bytes | bytearray | memoryview]:
    words = [*args, *[0] * (ARGS - len(args))]
    return [CALL_HEAD.pack(op, *words, len(buffers), 0), *ranges(buffers)]


def parse_hypercall(body: bytearray) -> tuple[int, list[int], list[Range]]:
    """A HYPERCALL body: op, the argument words and the caller's buffers."""
    if len(body) < CALL_HEAD.size:
        raise ProtocolError(
            f"expected a hypercall of at least {CALL_HEAD.size} bytes, got {len(body)}"
        )
    op, *rest = CALL_HEAD.unpack_from(body)
    words, count = list(rest[:ARGS]), rest[ARGS]
    buffers, end = parse_ranges(body, CALL_HEAD.size, count)
    if end != len(body):
        raise ProtocolError(f"expected {end} bytes of hypercall, got {len(body)}")
    return op, words, buffers


def parse_result(body: bytearray) -> tuple[int, list[Range], str]:
    """A RESULT body: the result, the ranges written back and the notice."""
    if len(body) < RESULT_HEAD.size:
        raise ProtocolError(
            f"expected a result of at least {RESULT_HEAD.size} bytes, got {len(body)}"
        )
    rc, count, notice_length = RESULT_HEAD.unpack_from(body)
    written, end = parse_ranges(body, RESULT_HEAD.size, count)
    if end + notice_length != len(body):
        raise ProtocolError(f"expected {end + notice_length} bytes of result, got {len(body)}")
    return rc, written, bytes(body[end:]).decode("utf-8", "replace")
