"""``xlemu host init --xen``: the host speaks one Xen release, kept in the state file, and
every command works on it unchanged (the toolstack's handle learns the release).

Host: ``host init --nodes 2 --node-memory 4096 --dom0-memory 512 --xen 4.17``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from xl_helpers import Xl

WEB = 'name = "web"\ntype = "hvm"\nmemory = 1024\nvcpus = 2\n'
DB = 'name = "db"\ntype = "pv"\nmemory = 512\n'


@pytest.fixture
def xl_417(xl: Xl) -> Xl:
    xl.ok("host", "init", "--nodes", "2", "--node-memory", "4096", "--dom0-memory", "512",
          "--xen", "4.17")  # fmt: skip
    return xl


def test_create_list_and_destroy_on_a_417_host(xl_417: Xl) -> None:
    """web: (1024 - 8) MiB = 260096 pages - 32 (VGA hole) + 16 special + 2048 video RAM =
    262128 pages, 262128 * 4 // 1024 = 1023 MiB; db: 512 MiB. 4.17 picks domids 1 and 2 as
    master would."""
    for name, text in (("web", WEB), ("db", DB)):
        xl_417.ok("create", "-q", xl_417.config(f"{name}.cfg", text))
    assert xl_417.ok("list").splitlines()[1:] == [
        "Domain-0                                     0   512     8     r-----       0.0",
        "web                                          1  1023     2     -b----       0.0",
        "db                                           2   512     1     -b----       0.0",
    ]
    assert xl_417.ok("domid", "db") == "2\n"
    xl_417.ok("destroy", "db")
    assert [line.split()[0] for line in xl_417.ok("list").splitlines()[1:]] == ["Domain-0", "web"]


def test_the_release_survives_between_commands(xl_417: Xl) -> None:
    assert xl_417.ok("info", "xen_version") == "4.17.5\n"
    assert xl_417.ok("info", "xen_version") == "4.17.5\n"


def test_default_host_is_master(xl: Xl) -> None:
    assert xl.ok("info", "xen_version") == "4.23-unstable\n"


def test_the_host_toml_names_the_release_and_the_option_overrides_it(
    xl: Xl, tmp_path: Path
) -> None:
    toml = tmp_path / "host.toml"
    toml.write_text('xen = "4.17"\n[[node]]\nmemory = 1024\n', encoding="utf-8")
    xl.ok("host", "init", "--from", str(toml))
    assert xl.ok("info", "xen_version") == "4.17.5\n"
    xl.ok("host", "init", "--from", str(toml), "--xen", "master")
    assert xl.ok("info", "xen_version") == "4.23-unstable\n"


def test_an_unknown_release_is_one_line(xl: Xl, tmp_path: Path) -> None:
    run = xl("host", "init", "--xen", "4.18")
    assert (run.code, run.out) == (2, "")
    assert run.err_lines == [
        "xlemu: Invalid value for '--xen': '4.18' is not one of 'master', '4.17'."
    ]
    toml = tmp_path / "host.toml"
    toml.write_text("xen = 4.17\n[[node]]\nmemory = 1024\n", encoding="utf-8")  # not a string
    run = xl("host", "init", "--from", str(toml))
    assert (run.code, run.err_lines) == (
        1,
        [f"xlemu: {toml}:1: xen: expected one of 'master', '4.17', got 4.17"],  # its line
    )
