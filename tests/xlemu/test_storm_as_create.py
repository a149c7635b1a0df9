"""``xlemu storm N cfg`` builds what N ``create cfg`` would, down one code path: the same
memory target and maximum, vCPUs, type, placement and refusals; and it fails (exit 3, as
a failed create) when no build was admitted.

Host: the default one (2 x 16384 MiB, dom0 1024 MiB on node 1), claim_mode 1 (xl's default).
"""

from __future__ import annotations

import pytest
from xenhost.xenstore import XsHandle
from xl_helpers import Xl
from xlemu.state import read_state


def rows(xl: Xl, *args: str) -> dict[str, list[str]]:
    """``list`` rows by name, without the name and domid columns."""
    out = xl.ok("list", *args).splitlines()[1:]
    return {row.split()[0]: row.split()[2:] for row in out}


def records(xl: Xl) -> dict[str, tuple[object, ...]]:
    """What each domain was built with, as libxl wrote it to xenstore: type, target less
    video RAM, static maximum, video RAM, vCPUs."""
    _, store = read_state(xl.state)
    built = {}
    with XsHandle.local(store) as xs:
        for domid in xs.directory("/local/domain"):
            home = f"/local/domain/{domid}"
            if domid == "0":
                continue
            built[xs.read(f"{home}/name").decode()] = (
                xs.read(f"/libxl/{domid}/type"),
                *(
                    xs.read(f"{home}/memory/{leaf}")
                    for leaf in ("target", "static-max", "videoram")
                ),
                len(xs.directory(f"{home}/cpu")),
            )
    return built


@pytest.mark.parametrize(
    ("config", "affinities"),
    [
        # PV, a target below its maximum, 3 vCPUs: automatic placement on one node (which
        # one depends on the vCPUs already placed, so on how the builders interleave)
        ("memory = 512\nmaxmem = 1024\nvcpus = 3\n", {"0", "1"}),
        # HVM bound by cpus= to node 1's CPUs (4..7): placement within node 1
        ('type = "hvm"\nmemory = 1024\nvcpus = 2\ncpus = "nodes:1"\n', {"1"}),
        # HVM with a vNUMA layout over both nodes: no placement, no node affinity set
        (
            'type = "hvm"\nvcpus = 2\n'
            'vnuma = [ ["pnode=0", "size=512", "vcpus=0"], ["pnode=1", "size=512", "vcpus=1"] ]\n',
            {"all"},
        ),
    ],
    ids=["pv-target-below-max", "hvm-cpus-node1", "hvm-vnuma"],
)
def test_a_storm_builds_what_create_builds(xl: Xl, config: str, affinities: set[str]) -> None:
    """One create and a storm of 3 of the same config: every storm domain has the created
    one's record (type, target, maximum, video RAM, vCPUs), its row in list (memory,
    vCPUs, state), and a node affinity create could have given it."""
    cfg = xl.config("g.cfg", f'name = "g"\n{config}')
    xl.ok("create", "-q", cfg)
    run = xl("storm", "3", cfg)
    assert run.code == 0, run.err
    assert run.out.splitlines()[-2] == (
        "claim mode legacy: 3 admitted, 0 refused at claim time, 0 failed part-way"
    )
    built = records(xl)
    assert built["g-1"] == built["g-2"] == built["g-3"] == built["g"]
    listed = rows(xl)
    assert listed["g-1"] == listed["g-2"] == listed["g-3"] == listed["g"]
    nodes = {row[-1] for name, row in rows(xl, "-n").items() if name != "Domain-0"}
    assert nodes <= affinities


def test_a_storm_refuses_what_create_refuses(xl: Xl) -> None:
    """PV vNUMA: create refuses it (initiate_domain_create, exit 6); so does every build of
    the storm, which then admitted none: the table says why, exit 3, nothing left."""
    cfg = xl.config("v.cfg", 'name = "v"\nvnuma = [ ["pnode=0", "size=512"] ]\n')
    run = xl("storm", "2", cfg, "--seed", "7")
    assert run.code == 3
    assert run.out.splitlines() == [
        "NAME  DOMID  OUTCOME  MEMORY(MiB)  LOCALITY  ERROR",
        "v-1   -      failed   512          -         libxl: error: PV vNUMA is not yet supported",
        "v-2   -      failed   512          -         libxl: error: PV vNUMA is not yet supported",
        "claim mode legacy: 0 admitted, 0 refused at claim time, 0 failed part-way, "
        "2 failed otherwise",
        "turns: seed 7 (the same seed replays this storm)",
    ]
    assert list(rows(xl)) == ["Domain-0"]


def test_a_storm_that_admits_none_fails(xl: Xl) -> None:
    """Two 40000 MiB HVM guests on 31743 MiB free: each legacy claim is refused (ENOMEM),
    nothing populated; exit 3 and no domain left."""
    cfg = xl.config("huge.cfg", 'name = "huge"\ntype = "hvm"\nmemory = 40000\n')
    run = xl("storm", "2", cfg, "--seed", "7")
    assert run.code == 3
    assert run.out.splitlines()[-2:] == [
        "claim mode legacy: 0 admitted, 2 refused at claim time, 0 failed part-way",
        "turns: seed 7 (the same seed replays this storm)",
    ]
    assert list(rows(xl)) == ["Domain-0"]
    assert xl.ok("info", "outstanding_claims") == "0\n"
