"""The nodes of the xenstore and the rules for their names and permissions.

A node holds a value (bytes), its permission entries (the first names the owner and the
access of everyone not listed) and the names of its children in creation order; nodes are
immutable, so a transaction can keep the version it read. Paths and permissions are parsed
as xenstored parses them (core.c canonicalize, xenstore-common.h).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from hypervisor_model.public.xen import DOMID_ANY
from xenhost.xenstore.errors import XenstoreError
from xenhost.xenstore.wire import XS_PERM_NONE, XS_PERM_READ, XS_PERM_WRITE

NODE_HDR_SIZE = 16  # struct node_hdr: generation, num_perms, datalen, childlen
PERM_SIZE = 8  # struct xs_permissions: perms, id
SPECIAL_NODES = ("@releaseDomain", "@introduceDomain")

_LETTERS = {
    "n": XS_PERM_NONE,
    "r": XS_PERM_READ,
    "w": XS_PERM_WRITE,
    "b": XS_PERM_READ | XS_PERM_WRITE,
}
_LETTER_OF = {v: k for k, v in _LETTERS.items()}
_VALID = re.compile(r"[A-Za-z0-9\-/_@]*")  # core.c valid_chars
_C_LONG = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


class Perm(NamedTuple):
    """One permission entry: a domain and its access (XS_PERM_READ / XS_PERM_WRITE bits)."""

    domid: int
    access: int

    def __str__(self) -> str:
        """xenstore_perm_to_string: the letter, then the id as a signed int."""
        domid = self.domid - (1 << 32) if self.domid >= 1 << 31 else self.domid
        return f"{_LETTER_OF[self.access]}{domid}"


class Node(NamedTuple):
    value: bytes
    perms: tuple[Perm, ...]
    children: tuple[str, ...] = ()
    generation: int = 0

    @property
    def owner(self) -> int:
        return self.perms[0].domid

    def size(self) -> int:
        """calc_node_acc_size: what the node-size quota limits."""
        childlen = sum(len(c) + 1 for c in self.children)
        return NODE_HDR_SIZE + PERM_SIZE * len(self.perms) + len(self.value) + childlen


def c_long(text: str) -> tuple[int, str] | None:
    """strtol(text, &end, 0): the number and the rest, or None when no digits start it."""
    m = _C_LONG.match(text)
    if m is None:
        return None
    digits = m.group(2)
    base = 16 if digits[:2] in ("0x", "0X") else 8 if digits.startswith("0") else 10
    value = int(digits, base)
    return (-value if m.group(1) == "-" else value), text[m.end() :]


def c_atoi(text: str) -> int:
    """atoi: leading blanks, a sign and decimal digits; 0 when there are none."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def parse_domid(text: str) -> int:
    """domain.c parse_domid: strtoul in base 10 with nothing after it, at most 65535."""
    m = re.fullmatch(r"\s*([+-]?)(\d*)", text)
    if m is None:
        raise XenstoreError("EINVAL", f"expected a domid, got {text!r}")
    value = int(m.group(2) or 0)
    if m.group(1) == "-" and value:  # strtoul negates into a huge unsigned long
        value = (1 << 64) - value
    if value > 65535:
        raise XenstoreError("EINVAL", f"expected a domid up to 65535, got {text!r}")
    return value


def parse_perms(texts: list[str]) -> tuple[Perm, ...]:
    """xenstore_strings_to_perms: a letter (r, w, b, n) and a domid in C's notation."""
    perms = []
    for text in texts:
        access = _LETTERS.get(text[:1])
        number = c_long(text[1:]) if access is not None else None
        if access is None or number is None or number[1]:
            raise XenstoreError("EINVAL", f"expected a permission such as r0 or b5, got {text!r}")
        perms.append(Perm(number[0] & 0xFFFFFFFF, access))
    return tuple(perms)


def valid_name(name: str) -> bool:
    """A canonical node name: valid characters, no trailing or doubled slash (canonicalize)."""
    return (
        _VALID.fullmatch(name) is not None
        and (not name.endswith("/") or name == "/")
        and "//" not in name
        and name[:1] in ("/", "@")
    )


def parent_of(name: str) -> str:
    """get_parent: everything before the last slash after the first character, else "/"."""
    cut = name.rfind("/", 1)
    return name[:cut] if cut > 0 else "/"


def child_path(parent: str, child: str) -> str:
    return f"/{child}" if parent == "/" else f"{parent}/{child}"


def basename(name: str) -> str:
    return name[name.rfind("/") + 1 :]


def allows(domid: int, target: int | None, perm: Perm) -> bool:
    """perm_allows_conn: the entry names this domain, the domain it targets, or any."""
    return perm.domid in (domid, DOMID_ANY) or (target is not None and perm.domid == target)
