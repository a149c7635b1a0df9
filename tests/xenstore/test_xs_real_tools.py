"""Debian's unmodified libxenstore clients against the server, found through
$XENSTORED_PATH: the xenstore-* tools (package xenstore-utils) and Xen's own xenstore test
program (tools/tests/xenstore, in xen-utils-4.17). Without them the tests skip with the
apt command, unless $XENEMU_REQUIRE_REAL_TOOLS is set (CI), where they must run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from xenhost.xenstore import Store, XenstoreServer, XsHandle

TOOLS = ["xenstore-read", "xenstore-write", "xenstore-ls", "xenstore-rm", "xenstore-watch"]
TEST_XENSTORE = Path("/usr/lib/xen-4.17/bin/test-xenstore")
TIMEOUT = 20


def need(what: str, package: str) -> None:
    message = f"{what} missing: apt-get install -y --no-install-recommends {package}"
    if os.environ.get("XENEMU_REQUIRE_REAL_TOOLS"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def xenstore_tools() -> None:
    if not all(shutil.which(t) for t in TOOLS):
        need("Debian's xenstore tools are", "xenstore-utils")


def run(server: XenstoreServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XENSTORED_PATH": str(server.path)}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_write_read_rm(server: XenstoreServer) -> None:
    assert run(server, "xenstore-write", "/vm/a/name", "web", "/vm/a/id", "7").returncode == 0
    got = run(server, "xenstore-read", "/vm/a/name", "/vm/a/id")
    assert (got.returncode, got.stdout) == (0, "web\n7\n")
    assert run(server, "xenstore-rm", "/vm/a/name").returncode == 0
    missing = run(server, "xenstore-read", "/vm/a/name")
    assert missing.returncode == 1
    assert missing.stderr == "xenstore-read: couldn't read path /vm/a/name\n"


def test_ls_shows_the_tree(store: Store, server: XenstoreServer) -> None:
    with XsHandle.local(store) as xs:
        xs.write("/local/domain/0/name", "Domain-0")
        xs.write("/local/domain/3/name", "web")
        xs.write("/local/domain/3/memory/target", "1048576")
    got = run(server, "xenstore-ls", "/local")
    assert got.returncode == 0
    assert got.stdout.splitlines() == [
        'domain = ""',
        ' 0 = ""',
        '  name = "Domain-0"',
        ' 3 = ""',
        '  name = "web"',
        '  memory = ""',
        '   target = "1048576"',
    ]


def test_chmod_and_permissions_listing(server: XenstoreServer) -> None:
    run(server, "xenstore-write", "/p", "v")
    assert run(server, "xenstore-chmod", "/p", "n0", "r5", "b6").returncode == 0
    listing = run(server, "xenstore-ls", "-p", "/").stdout.splitlines()
    assert next(line for line in listing if line.startswith("p = ")).endswith("(n0,r5,b6)")


def test_list_and_exists(server: XenstoreServer) -> None:
    run(server, "xenstore-write", "/d/x", "1", "/d/y", "2")
    assert run(server, "xenstore-list", "/d").stdout == "x\ny\n"
    assert run(server, "xenstore-exists", "/d/x").returncode == 0
    assert run(server, "xenstore-exists", "/d/z").returncode == 1


def test_watch(server: XenstoreServer) -> None:
    """xenstore-watch prints the first event at once, then the change, and stops at -n."""
    env = {**os.environ, "XENSTORED_PATH": str(server.path)}
    with subprocess.Popen(
        ["xenstore-watch", "-n", "2", "/w"], env=env, stdout=subprocess.PIPE, text=True
    ) as watcher:
        assert watcher.stdout is not None
        assert watcher.stdout.readline() == "/w\n"
        run(server, "xenstore-write", "/w/changed", "1")
        assert watcher.stdout.readline() == "/w/changed\n"
        assert watcher.wait(timeout=TIMEOUT) == 0


def test_xens_own_xenstore_test(store: Store, server: XenstoreServer) -> None:
    """read, write, directory, rm, empty and read-modify-write transactions and a
    conflicting one that must get EAGAIN: every test passes and cleans up after itself."""
    if not TEST_XENSTORE.exists():
        need("Xen's test-xenstore is", "xen-utils-4.17")
    got = run(server, str(TEST_XENSTORE))
    assert got.returncode == 0, got.stdout + got.stderr
    names = [line.split(":")[0].strip() for line in got.stdout.splitlines()]
    assert names == [
        "read 1", "read 2000", "write 1", "write 2000", "dir", "rm node", "rm dir",
        "ta empty", "ta empty x", "ta rmw", "ta rmw x", "ta err",
    ]  # fmt: skip
    with XsHandle.local(store) as xs:
        assert xs.try_read("/local/domain/0/xenstore-test") is None
