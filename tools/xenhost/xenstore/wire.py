"""Xen's xenstore wire protocol (``public/io/xs_wire.h``), declared once for the server and
the client: message types, the 16-byte header, the error names sent instead of numbers,
the payload limits, server features and permission bits.
"""

from __future__ import annotations

import errno
from enum import IntEnum

from construct import Struct

from hypervisor_model.public.xen import uint32_t


class XsType(IntEnum):
    """enum xsd_sockmsg_type. 20 (XS_RESTRICT) was removed and is invalid."""

    XS_CONTROL = 0
    XS_DIRECTORY = 1
    XS_READ = 2
    XS_GET_PERMS = 3
    XS_WATCH = 4
    XS_UNWATCH = 5
    XS_TRANSACTION_START = 6
    XS_TRANSACTION_END = 7
    XS_INTRODUCE = 8
    XS_RELEASE = 9
    XS_GET_DOMAIN_PATH = 10
    XS_WRITE = 11
    XS_MKDIR = 12
    XS_RM = 13
    XS_SET_PERMS = 14
    XS_WATCH_EVENT = 15
    XS_ERROR = 16
    XS_IS_DOMAIN_INTRODUCED = 17
    XS_RESUME = 18
    XS_SET_TARGET = 19
    XS_RESET_WATCHES = 21
    XS_DIRECTORY_PART = 22
    XS_GET_FEATURE = 23
    XS_SET_FEATURE = 24
    XS_GET_QUOTA = 25
    XS_SET_QUOTA = 26


XS_TYPE_COUNT = 27
XS_INVALID = 0xFFFF

# struct xsd_sockmsg: every message in either direction starts with it.
xsd_sockmsg = Struct(
    "type" / uint32_t,  # XsType
    "req_id" / uint32_t,  # echoed in the reply
    "tx_id" / uint32_t,  # transaction, 0 for none
    "len" / uint32_t,  # payload bytes after the header
)
HEADER_SIZE = 16

# struct xsd_errors, in xs_wire.h's order: errors travel as these names, not numbers.
XSD_ERRORS = (
    "EINVAL",
    "EACCES",
    "EEXIST",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "EIO",
    "ENOTEMPTY",
    "ENOSYS",
    "EROFS",
    "EBUSY",
    "EAGAIN",
    "EISCONN",
    "E2BIG",
    "EPERM",
)
# A client maps each name to its own C library's number, as libxenstore does.
ERRNO_OF = {name: getattr(errno, name) for name in XSD_ERRORS}
NAME_OF = {number: name for name, number in ERRNO_OF.items()}

XENSTORE_PAYLOAD_MAX = 4096  # a longer message kills the connection
XENSTORE_ABS_PATH_MAX = 3072
XENSTORE_REL_PATH_MAX = 2048

XENSTORE_SERVER_FEATURE_RECONNECTION = 1
XENSTORE_SERVER_FEATURE_ERROR = 2
XENSTORE_SERVER_FEATURE_WATCHDEPTH = 4
XENSTORE_SERVER_FEATURE_DOMID_ANY = 8

# Permission bits (xenstore_lib.h): a node's entries carry READ/WRITE; OWNER is implied.
XS_PERM_NONE = 0x00
XS_PERM_READ = 0x01
XS_PERM_WRITE = 0x02
XS_PERM_OWNER = 0x08


def encode(type: int, req_id: int, tx_id: int, payload: bytes) -> bytes:
    """One message: the header, then the payload."""
    header = xsd_sockmsg.build(dict(type=type, req_id=req_id, tx_id=tx_id, len=len(payload)))
    return header + payload


def strings(payload: bytes) -> list[bytes]:
    """The nul-terminated strings of a payload (get_strings); bytes after the last nul
    are not a string and are left out."""
    return payload.split(b"\0")[:-1]


def join(*parts: bytes | str) -> bytes:
    """Strings, each nul-terminated, as most payloads are."""
    return b"".join((p.encode() if isinstance(p, str) else p) + b"\0" for p in parts)
