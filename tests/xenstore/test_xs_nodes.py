"""Reading and changing nodes as xenstored does (core.c do_read, do_write, do_mkdir,
do_rm, send_directory, send_directory_part), through the wire messages."""

from __future__ import annotations

import pytest
from xenhost.xenstore import Store, XsHandle
from xenhost.xenstore.wire import XsType, join
from xs_helpers import error_of


def test_initial_tree(xs: XsHandle) -> None:
    """setup_structure: / holds tool/xenstored, all owned by dom0 with no access for others."""
    assert xs.directory("/") == ["tool"]
    assert xs.directory("/tool") == ["xenstored"]
    assert xs.get_permissions("/") == ["n0"]
    # the special nodes exist but are not children of /; anyone may read @releaseDomain
    assert xs.get_permissions("@releaseDomain") == ["n0", "r32757"]  # 32757 = DOMID_ANY
    assert xs.get_permissions("@introduceDomain") == ["n0"]


def test_write_creates_missing_parents_empty(xs: XsHandle) -> None:
    xs.write("/local/domain/3/name", "guest")
    assert xs.read("/local/domain/3/name") == b"guest"
    assert xs.read("/local") == b"" and xs.read("/local/domain/3") == b""
    assert xs.directory("/local/domain") == ["3"]


def test_values_are_bytes_nuls_included(xs: XsHandle) -> None:
    value = bytes(range(256))
    xs.write("/blob", value)
    assert xs.read("/blob") == value
    xs.write("/blob", b"")
    assert xs.read("/blob") == b""


def test_children_in_creation_order(xs: XsHandle) -> None:
    for name in ("zeta", "alpha", "mid"):
        xs.write(f"/d/{name}", "")
    assert xs.directory("/d") == ["zeta", "alpha", "mid"]
    xs.rm("/d/alpha")
    xs.write("/d/alpha", "")  # a new child goes to the end
    assert xs.directory("/d") == ["zeta", "mid", "alpha"]


def test_mkdir_keeps_an_existing_value(xs: XsHandle) -> None:
    xs.write("/a", "kept")
    xs.mkdir("/a")
    xs.mkdir("/b/c")
    assert xs.read("/a") == b"kept"
    assert xs.read("/b/c") == b""


def test_rm_removes_the_subtree(xs: XsHandle) -> None:
    xs.write("/a/b/c", "1")
    xs.write("/a/d", "2")
    xs.rm("/a/b")
    assert xs.directory("/a") == ["d"]
    assert error_of(xs.read, "/a/b/c") == "ENOENT"


def test_rm_of_a_missing_node(xs: XsHandle) -> None:
    """Fine when the parent exists; ENOENT when the parent is missing too (do_rm)."""
    xs.mkdir("/a")
    xs.rm("/a/missing")
    assert error_of(xs.rm, "/nope/missing") == "ENOENT"


def test_rm_root_is_refused(xs: XsHandle) -> None:
    assert error_of(xs.rm, "/") == "EINVAL"


def test_relative_paths_are_below_dom0(xs: XsHandle) -> None:
    """A socket client is dom0 (the store domain): relative paths start at its home."""
    xs.write("data/x", "1")
    assert xs.read("/local/domain/0/data/x") == b"1"
    assert xs.get_domain_path(7) == "/local/domain/7"


@pytest.mark.parametrize(
    "path",
    ["/a/", "/a//b", "/a b", "/a+b", "", "@releaseDomain", "/ä"],
)
def test_bad_paths(xs: XsHandle, path: str) -> None:
    """canonicalize: valid characters only, no trailing or doubled slash, no special path."""
    assert error_of(xs.write, path, "v") == "EINVAL"
    assert error_of(xs.read, path) == "EINVAL"


def test_payload_strings_are_checked(store: Store, xs: XsHandle) -> None:
    """onearg: exactly one nul-terminated string; WRITE needs a nul after the path."""
    assert error_of(xs.talk, XsType.XS_READ, b"/tool") == "EINVAL"  # no nul
    assert error_of(xs.talk, XsType.XS_READ, b"/tool\0extra\0") == "EINVAL"
    assert error_of(xs.talk, XsType.XS_WRITE, b"/nonul") == "EINVAL"
    assert error_of(xs.talk, XsType.XS_SET_PERMS, join("/tool")) == "EINVAL"


def test_unknown_request_types(xs: XsHandle) -> None:
    """20 was XS_RESTRICT, 15 and 16 only travel from the server, 27 is past the table."""
    for msg_type in (15, 16, 20, 27, 0xFFFF):
        assert error_of(xs.talk, msg_type, b"") == "ENOSYS"


def test_directory_too_long_for_one_reply(xs: XsHandle) -> None:
    """500 children of 10-byte names list as 500 * 11 = 5500 bytes > 4096: DIRECTORY says
    E2BIG and the client reads the list in parts with DIRECTORY_PART."""
    names = [f"child{i:05d}" for i in range(500)]
    for name in names:
        xs.mkdir(f"/big/{name}")
    assert error_of(xs.talk, XsType.XS_DIRECTORY, join("/big")) == "E2BIG"
    assert xs.directory("/big") == names


def test_directory_part_pieces(xs: XsHandle) -> None:
    """The reply is the generation, then whole names while they fit in 4096 bytes; the
    last part ends with an extra nul, and an offset past the end gives only that."""
    names = [f"child{i:05d}" for i in range(500)]
    for name in names:
        xs.mkdir(f"/big/{name}")
    first = xs.talk(XsType.XS_DIRECTORY_PART, join("/big", "0"))
    gen, _, part = first.partition(b"\0")
    # room: 4096 - len(gen + nul) - 1; each name takes 11 bytes and needs len + 10 < room
    room = 4096 - (len(gen) + 1) - 1
    fits = max(k for k in range(501) if (k - 1) * 11 + 10 < room)
    assert part == b"".join(n.encode() + b"\0" for n in names[:fits])
    rest = xs.talk(XsType.XS_DIRECTORY_PART, join("/big", str(fits * 11)))
    assert rest == gen + b"\0" + b"".join(n.encode() + b"\0" for n in names[fits:]) + b"\0"
    end = xs.talk(XsType.XS_DIRECTORY_PART, join("/big", "5500"))
    assert end == gen + b"\0\0"


def test_directory_part_generation_moves_with_children(xs: XsHandle) -> None:
    xs.mkdir("/d")
    before = xs.talk(XsType.XS_DIRECTORY_PART, join("/d", "0")).split(b"\0")[0]
    xs.mkdir("/d/x")
    after = xs.talk(XsType.XS_DIRECTORY_PART, join("/d", "0")).split(b"\0")[0]
    assert int(after) > int(before)


def test_values_up_to_the_payload_limit(xs: XsHandle) -> None:
    """A value fills what a 4096-byte request leaves after the path and its nul; the
    client refuses a longer request rather than have the server close the connection."""
    value = b"v" * (4096 - len(b"/x\0"))
    xs.write("/x", value)
    assert xs.read("/x") == value
    assert error_of(xs.write, "/x", value + b"v") == "E2BIG"  # the request itself is too long
