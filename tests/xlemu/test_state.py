"""The state file: only ``host init`` makes a host (a mistyped path is an error, not a new
empty host); commands that only read write nothing, not even the lock file, so a read-only
host can be inspected; and a damaged or hostile file of any kind ends in one short line,
in bounded time and memory, the file left as it was."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from xl_helpers import Xl

READ_ONLY = [
    ["list"],
    ["list", "-n"],
    ["info"],
    ["info", "-n"],
    ["claims"],
    ["claims", "--nodes"],
    ["dmesg"],
    ["domid", "small"],
    ["domname", "1"],
    ["host", "show"],
    ["numa-picture"],
    ["list", "-l"],
    ["vm-list"],
    ["sharing"],
    ["uptime"],
    ["vcpu-list"],
    ["cpupool-list"],
    ["help"],
    ["-N", "create", "-q", "/dev/null", "name='dry'"],  # a dry run builds nothing
]


def listing(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of a directory with its inode, size and modification time."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.iterdir()
    }


# -- only host init makes a host --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["list"], ["create", "-q", "/dev/null", "name='x'"], ["destroy", "1"], ["dmesg", "-c"]],
    ids=lambda a: " ".join(a),
)
@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_mistyped_state_path_is_an_error(
    xl: Xl, monkeypatch: pytest.MonkeyPatch, args: list[str], how: str
) -> None:
    """A missing state named by --state or $XLEMU_STATE: one line naming the file and
    host init, exit 1, and nothing made (no state, no lock file, no directory)."""
    typo = xl.dir / "hots" / "host.json"
    before = listing(xl.dir)
    if how == "option":
        run = xl("--state", str(typo), *args)
    else:
        monkeypatch.setenv("XLEMU_STATE", str(typo))
        run = xl(*args)
    line = f"xlemu: {typo}: no such host state; `xlemu --state {typo} host init` makes one"
    assert (run.code, run.out, run.err_lines) == (1, "", [line])
    assert listing(xl.dir) == before


def test_host_init_makes_no_directories(xl: Xl) -> None:
    """A host in a directory that does not exist is a typo too: one line, nothing made."""
    typo = xl.dir / "hots" / "host.json"
    run = xl("--state", str(typo), "host", "init")
    assert (run.code, run.err_lines) == (1, [f"xlemu: {typo}: no such directory {typo.parent}"])
    assert not typo.parent.exists()
    assert xl.ok("--state", str(xl.dir / "other.json"), "host", "init") == (
        f"new host: 2 nodes, state in {xl.dir / 'other.json'}\n"
    )


def test_the_default_state_is_made_by_the_first_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --state, no $XLEMU_STATE: the first command, even a read-only one, boots the
    default host under $XDG_STATE_HOME (making the directories) and says so once."""
    monkeypatch.delenv("XLEMU_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    xl = Xl(tmp_path)
    state = tmp_path / "xdg" / "xlemu" / "host.json"
    run = xl("list")
    assert run.err_lines == [
        "xlemu: no host yet: booted the default host (2 nodes x 16384 MiB, dom0 1024 MiB) "
        f"in {state}"
    ]
    assert run.code == 0 and state.exists()
    assert xl("list") == xl("list")
    assert xl("list").err == ""


# -- read-only commands write nothing --------------------------------------------------------


@pytest.fixture
def small(xl: Xl) -> Xl:
    xl.ok("create", "-q", xl.config("small.cfg", 'name = "small"\nmemory = 64\n'))
    return xl


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_read_only_commands_write_nothing(small: Xl, args: list[str]) -> None:
    """The state and its directory stay exactly as they were (same inode, size, time): no
    lock file, no temporary file, no rewrite. The directory and file are made read-only,
    as a shared host would be (root is not stopped by that, the listing still is)."""
    (small.dir / "host.json.lock").unlink()
    before = listing(small.dir)
    small.state.chmod(0o444)
    small.dir.chmod(0o555)
    try:
        run = small(*args)
    finally:
        small.dir.chmod(0o755)
    assert (run.code, run.err) == (0, "")
    assert listing(small.dir) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_command_that_changes_a_read_only_host_says_why(small: Xl) -> None:
    small.dir.chmod(0o555)
    try:
        run = small("destroy", "small")
    finally:
        small.dir.chmod(0o755)
    assert (run.code, run.err_lines) == (
        1,
        [f"xlemu: {small.state}: cannot lock the state: Permission denied"],
    )


def test_state_file_is_a_directory(xl: Xl) -> None:
    run = xl("--state", str(xl.dir), "list")
    assert (run.code, run.out, run.err_lines) == (1, "", [f"xlemu: {xl.dir}: Is a directory"])


# -- damaged state files --------------------------------------------------------------------

Doc = dict[str, Any]


def _walk(doc: Doc, path: str) -> tuple[Any, Any]:
    """The container at a dotted path's parent (a number indexes a list), and the last key."""
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, int(last) if isinstance(node, list) else last


def _set(path: str, value: Any) -> Callable[[Doc], Any]:
    """A damage: the value at a dotted path replaced (or added)."""

    def damage(doc: Doc) -> Any:
        node, key = _walk(doc, path)
        node[key] = value
        return doc

    return damage


def _insert(path: str, index: int, value: Any) -> Callable[[Doc], Any]:
    """A damage: a value inserted into the list at a dotted path."""

    def damage(doc: Doc) -> Any:
        node, key = _walk(doc, path)
        node[key].insert(index, value)
        return doc

    return damage


def _drop(path: str) -> Callable[[Doc], Any]:
    def damage(doc: Doc) -> Any:
        node, key = _walk(doc, path)
        del node[key]
        return doc

    return damage


DIGITS = "@5000 digits@"  # stands for a 5000-digit number, which json.dumps refuses to write

# Each damage, and the end of the line it must print after "xlemu: FILE: ".
DAMAGES: dict[str, tuple[Callable[[Doc], Any], str]] = {
    "newer-version": (_set("version", 99), "expected state version 2 or older, got 99"),
    "version-a-string": (_set("version", "1"), "expected state version 2 or older, got '1'"),
    "newer-host-version": (_set("host.version", 99), "expected state version 4 or older, got 99"),
    "other-format": (_set("format", "something-else"), "expected an xlemu-state file"),
    "not-an-object": (lambda doc: [1, 2], "expected an xlemu-state file"),
    "unknown-top-key": (_set("colour", 1), "damaged state: unexpected key 'colour'"),
    "no-host": (_drop("host"), "damaged state: missing key 'host'"),
    "no-heap": (_drop("host.heap"), "damaged state: host: missing key 'heap'"),
    "claims-do-not-add-up": (
        _set("host.heap.outstanding_claims", 5),
        "damaged state: outstanding_claims differs from the sum of domains' outstanding_pages",
    ),
    "xenstore-not-an-object": (
        _set("xenstore", 5),
        "damaged state: xenstore: expected an object, got 5",
    ),
    "xenstore-unknown-key": (
        _set("xenstore.colour", 1),
        "damaged state: xenstore: unexpected key 'colour'; expected nodes, introduced",
    ),
    "xenstore-without-nodes": (
        _drop("xenstore.nodes"),
        "damaged state: xenstore: missing key 'nodes'",
    ),
    "nodes-not-a-list": (
        _set("xenstore.nodes", 5),
        "damaged state: xenstore.nodes: expected a list, got 5",
    ),
    "node-not-a-row": (
        _set("xenstore.nodes.1", "/tool"),
        "damaged state: xenstore.nodes[1]: expected a list of 3, got '/tool'",
    ),
    "node-path-doubled-slash": (
        _set("xenstore.nodes.1.0", "/a//b"),
        "damaged state: xenstore.nodes[1][0]: expected /|(/[A-Za-z0-9_@-]+)+|@releaseDomain|"
        "@introduceDomain, got '/a//b'",
    ),
    "node-path-huge": (
        _set("xenstore.nodes.1.0", "/" + "a" * 5000),
        "damaged state: xenstore.nodes[1][0]: expected at most 3072 characters, got 5001",
    ),
    "node-before-its-parent": (
        _insert("xenstore.nodes", 1, ["/x/y", "", ["n0"]]),
        "damaged state: xenstore.nodes[1]: /x/y listed before its parent /x",
    ),
    "node-twice": (
        _insert("xenstore.nodes", 1, ["/", "", ["n0"]]),
        "damaged state: xenstore.nodes[1]: / listed twice",
    ),
    "node-value-huge": (
        _insert("xenstore.nodes", 1, ["/v", "x" * 5000, ["n0"]]),
        "damaged state: xenstore.nodes[1][1]: expected at most 4096 characters, got 5000",
    ),
    "node-value-not-bytes": (
        _insert("xenstore.nodes", 1, ["/v", "\u20ac", ["n0"]]),
        "damaged state: xenstore.nodes[1]: expected a value of bytes as Latin-1 text",
    ),
    "node-permission-unknown": (
        _insert("xenstore.nodes", 1, ["/v", "", ["x0"]]),
        "damaged state: xenstore.nodes[1][2][0]: expected [nrwb]-?[0-9]{1,10}, got 'x0'",
    ),
    "node-without-owner": (
        _insert("xenstore.nodes", 1, ["/v", "", []]),
        "damaged state: xenstore.nodes[1]: expected at least the owner's permission",
    ),
    "introduced-dom0": (
        _set("xenstore.introduced", [0]),
        "damaged state: xenstore.introduced[0]: expected 1..65535, got 0",
    ),
    "digits-5000": (
        _set("host.domid_last", DIGITS),
        "damaged state: not a state: an integer of thousands of digits",
    ),
    "digits-100": (
        _set("host.domains.1.tot_pages", 10**99),
        "damaged state: host.domains[1].tot_pages: expected 0..18446744073709551615, "
        "got an integer of 30 digits or more",
    ),
    "float": (
        _set("host.domains.1.max_pages", 1.5),
        "damaged state: host.domains[1].max_pages: expected an integer, got the number 1.5",
    ),
    "infinity": (
        _set("host.domains.1.max_pages", float("inf")),
        "damaged state: host.domains[1].max_pages: expected an integer, got the number inf",
    ),
    "domain-unknown-field": (
        _set("host.domains.1.colour", 1),
        "damaged state: host.domains[1]: unexpected key 'colour'",
    ),
    "domain-id-twice": (
        _set("host.domains.1.domain_id", 0),
        "damaged state: domains: a domain id appears twice",
    ),
    "run-of-strings": (
        _set("host.domains.1.pages", [["a", 1, None, 1]]),
        "damaged state: host.domains[1].pages[0][0]: expected an integer, got 'a'",
    ),
    "run-of-five": (
        _set("host.domains.1.pages", [[0, 1, None, 1, 2]]),
        "damaged state: host.domains[1].pages[0]: expected a list of 4 or 7, got a list of 5",
    ),
    "runs-recurring-below-zero": (  # gfns 0, -1, -2: the third run's value is out of range
        _set("host.domains.1.pages", [[1000, 1, 0, 1, 3, 512, -1]]),
        "damaged state: host.domains[1].pages[0]: its last run's value: "
        "expected 0..18446744073709551615, got -2",
    ),
    "runs-recurring-beyond-any-state": (  # 2 x 2 000 000 runs and dom0's one, over a bound of
        # 2 000 000 runs in all: what a state of plain rows of 4 values could hold
        _set("host.domains.1.pages", [[0, 1, None, 1, 2_000_000, 2, 0]] * 2),
        "damaged state: expected at most 2000000 runs in all, got 4000001",
    ),
    "claim-on-node-70": (
        _set("host.domains.1.claims", [[70, 1]]),
        "damaged state: host.domains[1].claims[0][0]: expected 0..63, got 70",
    ),
    "claim-on-node-5": (
        _set("host.domains.1.claims", [[5, 1]]),
        "damaged state: d1: claims names no node",
    ),
    "last-alloc-node-5": (
        _set("host.domains.1.last_alloc_node", 5),
        "damaged state: d1: last_alloc_node names no node",
    ),
    "free-list-node-99": (
        _set("host.heap.free_lists.0.0", 99),
        "damaged state: host.heap.free_lists[0][0]: expected 0..63, got 99",
    ),
    "free-list-order-99": (
        _set("host.heap.free_lists.0.2", 99),
        "damaged state: host.heap.free_lists[0][2]: expected 0..18, got 99",
    ),
    "free-list-head-negative": (
        _set("host.heap.free_lists.0.3", [-1]),
        "damaged state: host.heap.free_lists[0][3][0]: expected 0..1099511627775, got -1",
    ),
    "free-block-twice": (
        lambda doc: _set("host.heap.free_lists", doc["host"]["heap"]["free_lists"] * 2)(doc),
        "damaged state: node 0: avail[][] differs from its free lists (and 1 more)",
    ),
    "ranges-overlap": (
        _set("host.host.ranges", [[[0, 100]], [[50, 150]]]),
        "damaged state: nodes 0 and 1: expected disjoint ranges, got overlap",
    ),
    "console-not-base64": (
        _set("host.console.text", "!!"),
        "damaged state: host.console.text: expected [A-Za-z0-9+/=]*, got '!!'",
    ),
    "console-indices": (
        _set("host.console.conringp", 3),
        "damaged state: console ring indices do not match its text",
    ),
}


# Version 1 kept a record per domain under "xenstore": still read, so still checked.
V1_DAMAGES: dict[str, tuple[Callable[[Doc], Any], str]] = {
    "xenstore-domains-a-list": (
        _set("xenstore.domains", [1]),
        "damaged state: xenstore.domains: expected an object, got a list of 1",
    ),
    "record-unknown-field": (
        _set("xenstore.domains.1.colour", "red"),
        "damaged state: xenstore.domains.1: unexpected key 'colour'; expected name, type, "
        "memory_kb, maxmem_kb, video_kb, vcpus",
    ),
    "record-without-name": (
        _drop("xenstore.domains.1.name"),
        "damaged state: xenstore.domains.1: missing key 'name'",
    ),
    "name-a-number": (
        _set("xenstore.domains.1.name", 7),
        "damaged state: xenstore.domains.1.name: expected a string, got 7",
    ),
    "name-a-list": (
        _set("xenstore.domains.1.name", ["a"]),
        "damaged state: xenstore.domains.1.name: expected a string, got a list of 1",
    ),
    "name-null": (
        _set("xenstore.domains.1.name", None),
        "damaged state: xenstore.domains.1.name: expected a string, got null",
    ),
    "name-huge": (
        _set("xenstore.domains.1.name", "x" * 5000),
        "damaged state: xenstore.domains.1.name: expected at most 1024 characters, got 5000",
    ),
    "type-unknown": (
        _set("xenstore.domains.1.type", "xen"),
        "damaged state: xenstore.domains.1.type: expected one of hvm, pv, pvh, got 'xen'",
    ),
    "vcpus-negative": (
        _set("xenstore.domains.1.vcpus", -1),
        "damaged state: xenstore.domains.1.vcpus: expected 0..4294967295, got -1",
    ),
    "vcpus-true": (
        _set("xenstore.domains.1.vcpus", True),
        "damaged state: xenstore.domains.1.vcpus: expected an integer, got true",
    ),
    "domid-key-a-word": (
        lambda doc: _set("xenstore.domains.abc", {"name": "b"})(doc),
        "damaged state: xenstore.domains: key 'abc': expected 0|[1-9][0-9]*, got 'abc'",
    ),
}


def _texts() -> dict[str, tuple[bytes, str]]:
    """Damaged files that are not a JSON document at all, and the end of their line."""
    many_lists = b'{"a":[' + b"[0,0,0,[1]]," * 1_000_000 + b"[0]]}"
    return {
        "empty": (b"", "damaged state: not JSON: Expecting value at line 1 column 1"),
        "garbage": (b"garbage{", "damaged state: not JSON: Expecting value at line 1 column 1"),
        "not-utf8": (b"\xff\xfe\x00", "damaged state: not JSON: not UTF-8 at byte 0"),
        "truncated": (
            b'{"format": "xlemu-state", "version": 1',
            "damaged state: not JSON: Expecting ',' delimiter at line 1 column 39",
        ),
        "nested-100000": (
            b"[" * 100_000,
            "damaged state: not a state: lists or objects nested too deeply",
        ),
        "nested-500": (b"[" * 500 + b"]" * 500, "expected an xlemu-state file"),
        "two-million-lists": (
            many_lists + many_lists,
            "damaged state: expected at most 2000000 lists and objects",
        ),
        "ten-million-values": (
            b"[" + b"0," * 10_000_000 + b"0]",
            "damaged state: expected at most 8000000 values",
        ),
    }


def _check_one_line(xl: Xl, tail: str) -> None:
    before = xl.state.read_bytes()
    for args in (["list"], ["create", "-q", "/dev/null", "name='b'"]):
        run = xl(*args)
        assert (run.code, run.out, run.err_lines) == (1, "", [f"xlemu: {xl.state}: {tail}"])
    assert xl.state.read_bytes() == before


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_state_is_one_short_line(small: Xl, how: str) -> None:
    """A state this version cannot trust: "xlemu: FILE: why", exit 1, for a command that
    reads and one that writes; the file is left alone."""
    damage, tail = DAMAGES[how]
    text = json.dumps(damage(json.loads(small.state.read_text())))
    small.state.write_text(text.replace(json.dumps(DIGITS), "9" * 5000))
    _check_one_line(small, tail)


def as_version_1(doc: Doc) -> Doc:
    """A state as version 1 wrote it: the same host, its domains as records."""
    doc["version"] = 1
    doc["xenstore"] = {
        "domains": {
            "1": {
                "name": "small",
                "type": "pv",
                "memory_kb": 65536,
                "maxmem_kb": 65536,
                "video_kb": 0,
                "vcpus": 1,
            }
        }
    }
    return doc


@pytest.mark.parametrize("how", V1_DAMAGES)
def test_a_damaged_version_1_state_is_one_short_line(small: Xl, how: str) -> None:
    damage, tail = V1_DAMAGES[how]
    small.state.write_text(json.dumps(damage(as_version_1(json.loads(small.state.read_text())))))
    _check_one_line(small, tail)


def test_a_version_1_state_is_converted(small: Xl) -> None:
    """Its records become what libxl writes to xenstore; the next save is version 2."""
    listed = small.ok("list")
    small.state.write_text(json.dumps(as_version_1(json.loads(small.state.read_text()))))
    assert small.ok("list") == listed
    assert json.loads(small.state.read_text())["version"] == 1  # list writes nothing
    small.ok("mem-max", "small", "128")
    doc = json.loads(small.state.read_text())
    assert doc["version"] == 2
    values = {path: value for path, value, _ in doc["xenstore"]["nodes"]}
    assert values["/local/domain/1/name"] == "small"
    assert values["/local/domain/1/memory/static-max"] == "131072"
    assert values["/local/domain/1/memory/target"] == "65536"
    assert values["/local/domain/0/name"] == "Domain-0"
    assert values["/libxl/1/type"] == "pv"


@pytest.mark.parametrize("how", list(_texts()))
def test_an_unparsable_state_is_one_short_line(xl: Xl, how: str) -> None:
    content, tail = _texts()[how]
    xl.state.write_bytes(content)
    _check_one_line(xl, tail)


BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
sys.argv = ["xlemu", "--state", sys.argv[1], "list"]
from xlemu.cli import main
main()
"""
MEMORY = 1 << 30


@pytest.mark.parametrize("megabytes", [99, 60])
def test_a_huge_state_costs_bounded_memory(tmp_path: Path, megabytes: int) -> None:
    """99 MB of bogus free-list entries (and 60 MB, under the size bound but over the count
    of values) end in one line within 1 GiB of address space."""
    state = tmp_path / "host.json"
    entry = b"[0,1,0,[1]],"
    with open(state, "wb") as f:
        f.write(b'{"format":"xlemu-state","version":1,"host":{"heap":{"free_lists":[')
        f.write(entry * (megabytes * 1_000_000 // len(entry)) + b"[0,1,0,[1]]]}}}")
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED.replace("MEMORY", str(MEMORY)), str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)),
    )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    reason = (
        f"expected at most 64 MiB, got {megabytes * 1_000_000 / (1 << 20):.0f} MiB"
        if megabytes > 64
        else "expected at most 8000000 values"  # 4 commas per 12-byte entry
    )
    assert line == f"xlemu: {state}: damaged state: {reason}"
