"""xl's conventions, with the xl source each comes from: help on stdout in xl's layout
(help in xl.c, the entries of xl_cmdtable.c), usage errors in def_getopt's words and exit
codes (xl_utils.c), the global options of xl.c main, pause/unpause exiting 0 after libxl's
line, ``list -l``, ``vm-list``, ``sharing``, ``uptime``, command names that keep xl's
meaning, tab completion, and the progress line. xlemu calls itself ``xlemu`` where xl
says ``xl``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from xl_helpers import Xl
from xlemu.cli import progress_line

LIST_HELP = """\
Usage: xlemu [-vtT] list [options] [Domain]


List information about all/some domains.

Options:

-l, --long              Output all VM details
-n, --numa              Prints out NUMA node affinity
"""  # xl_cmdtable.c's list entry: its usage ends in a newline, hence the second blank line

MEM_MAX_HELP = """\
Usage: xlemu [-vtTf] mem-max <Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>

Set the maximum amount reservation for a domain.

"""


# -- help ------------------------------------------------------------------------------------


def test_no_command_prints_the_full_help_on_stdout_and_fails(xl: Xl) -> None:
    """xl.c main: help(NULL) on stdout, exit 1; xl's layout " %-19s %s" per command, in
    xl_cmdtable.c's order."""
    run = xl()
    assert (run.code, run.err) == (1, "")
    lines = run.out.splitlines()
    assert lines[:4] == [
        "Usage xlemu [-vfNtT] [--state FILE] [--trace] <subcommand> [args]",
        "",
        "xlemu full list of subcommands:",
        "",
    ]
    assert lines[4:7] == [
        " create              Create a domain from config file <filename>",
        " list                List information about all/some domains",
        " destroy             Terminate a domain immediately",
    ]
    assert " vm-list             List guest domains, excluding dom0, stubdoms, etc." in lines
    names = [line.split()[0] for line in lines[4:]]
    assert "top" not in names and "help" not in names  # neither is in the table


@pytest.mark.parametrize("args", [["help"], ["-h"], ["--help"]], ids=lambda a: " ".join(a))
def test_help_prints_the_full_help_and_succeeds(xl: Xl, args: list[str]) -> None:
    assert xl(*args).out == xl().out
    assert (xl(*args).code, xl(*args).err) == (0, "")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["help", "list"], LIST_HELP),
        (["help", "li"], LIST_HELP),  # cmdtable_lookup: a unique prefix
        (["list", "-h"], LIST_HELP),
        (["list", "--help"], LIST_HELP),
        (["help", "mem-max"], MEM_MAX_HELP),
        (["help", "frob"], 'command "frob" not implemented\n'),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_help_for_a_command_on_stdout(xl: Xl, args: list[str], text: str) -> None:
    """help(command) in xl.c: "Usage: xl [-vtT<f><N>] NAME USAGE", the description with a
    full stop, then the options; an unknown one says so; all on stdout, exit 0."""
    run = xl(*args)
    assert (run.code, run.out, run.err) == (0, text, "")


def test_help_shows_f_and_n_as_the_table_allows(xl: Xl) -> None:
    """create modifies and can dry-run ("-vtTfN"); info does neither ("-vtT")."""
    assert xl.ok("help", "create").startswith(
        "Usage: xlemu [-vtTfN] create <ConfigFile> [options] [vars]\n"
    )
    assert xl.ok("help", "info") == (
        "Usage: xlemu [-vtT] info -n, --numa         List host NUMA topology information\n\n"
        "Get information about Xen host.\n\n"
    )


# -- usage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "letter"),
    [(["list", "-Z"], "Z"), (["info", "-Q"], "Q"), (["create", "-pZ", "x.cfg"], "Z")],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_an_unknown_option_is_def_getopt_s_line(xl: Xl, args: list[str], letter: str) -> None:
    """def_getopt: "option `%c' not supported.", exit 2, nothing on stdout."""
    run = xl(*args)
    assert (run.code, run.out, run.err) == (2, "", f"option `{letter}' not supported.\n")


@pytest.mark.parametrize(
    ("args", "count"),
    [(["create"], "1 argument"), (["mem-max", "1"], "2 arguments"), (["domid"], "1 argument")],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_too_few_arguments_is_def_getopt_s_line_then_help(
    xl: Xl, args: list[str], count: str
) -> None:
    """def_getopt: "'xl CMD' requires at least N argument(s)." and a blank line on stderr,
    the command's help on stdout, exit 2."""
    run = xl(*args)
    assert run.code == 2
    assert run.err == f"'xlemu {args[0]}' requires at least {count}.\n\n"
    assert run.out == xl.ok("help", args[0])


# -- global options (xl.c main: getopt "+vftTN") ------------------------------------------


def test_global_options_are_accepted_before_the_command(xl: Xl) -> None:
    assert xl.ok("-v", "-f", "-t", "-T", "list") == xl.ok("list")
    assert xl.ok("-vvftT", "list") == xl.ok("list")


@pytest.mark.parametrize(
    ("args", "code", "err"),
    [
        (["-Q", "list"], 1, "unknown global option\n"),
        (["-N", "list"], 1, "command does not implement -N (dryrun) option\n"),
        (["list", "-v"], 2, "option `v' not supported.\n"),  # after the command: list's
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_global_option_errors(xl: Xl, args: list[str], code: int, err: str) -> None:
    run = xl(*args)
    assert (run.code, run.out, run.err) == (code, "", err)


@pytest.mark.parametrize("args", [["-N", "create"], ["create", "-n"]], ids=["global", "own"])
def test_dry_run_create_prints_the_configuration_and_builds_nothing(
    xl: Xl, args: list[str]
) -> None:
    """create_domain in xl_vmcontrol.c: with -N (or create -n) the configuration as parsed
    goes to stdout as libxl_domain_config JSON, and nothing is built: memory 512 MiB is
    524288 KiB, maxmem unset so the same; libxl's defaults (video RAM) are not in yet."""
    before = xl.state.read_bytes()
    cfg = xl.config("d.cfg", 'name = "d"\ntype = "hvm"\nmemory = 512\nvcpus = 2\n')
    run = xl(*args, "-q", cfg)
    assert (run.code, run.err) == (0, "")
    config = json.loads(run.out)
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", config["c_info"].pop("uuid"))
    assert config == {
        "c_info": {"type": "hvm", "name": "d"},
        "b_info": {
            "max_vcpus": 2,
            "avail_vcpus": [0, 1],
            "max_memkb": 524288,
            "target_memkb": 524288,
        },
    }
    assert xl.state.read_bytes() == before


# -- pause and unpause ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["pause", "99"], "libxl: error: Domain 99:Pausing domain: No such process"),
        # libxl__domain_unpause asks for the domain's type first (libxl__domain_type)
        (["unpause", "99"], "libxl: error: Domain 99:unable to get dominfo: No such process"),
        # not paused by the controller: Xen's EINVAL (domain_unpause_by_systemcontroller)
        (["unpause", "1"], "libxl: error: Domain 1:Unpausing domain: Invalid argument"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_pause_and_unpause_exit_0_after_libxl_s_line(xl: Xl, args: list[str], line: str) -> None:
    """pause_domain/unpause_domain (xl_vmcontrol.c) ignore libxl's result: exit 0."""
    xl.ok("create", "-q", xl.config("s.cfg", 'name = "s"\nmemory = 64\n'))
    run = xl(*args)
    assert (run.code, run.out, run.err_lines) == (0, "", [line])


def test_pause_then_unpause(xl: Xl) -> None:
    xl.ok("create", "-q", xl.config("s.cfg", 'name = "s"\nmemory = 64\n'))
    assert xl("pause", "s").err == ""
    assert xl.ok("list", "s").splitlines()[1].split()[4][2] == "p"
    assert xl("unpause", "s").err == ""
    assert xl.ok("list", "s").splitlines()[1].split()[4][2] == "-"


# -- more lists ----------------------------------------------------------------------------

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def two(xl: Xl) -> Xl:
    """web (HVM 1024 MiB, 2 vCPUs) and db (HVM, vNUMA 512 MiB on node 0), then mem-max web
    2048 and mem-set web 900."""
    xl.ok("create", "-q", xl.config("web.cfg", 'name="web"\ntype="hvm"\nmemory=1024\nvcpus=2\n'))
    db = 'name="db"\ntype="hvm"\nvnuma=[["pnode=0","size=512","vcpus=0"]]\n'
    xl.ok("create", "-q", xl.config("db.cfg", db))
    xl.ok("mem-max", "web", "2048")
    xl.ok("mem-set", "web", "900")
    return xl


def test_list_long_is_each_domain_s_configuration(two: Xl) -> None:
    """list_domains_details (xl_info.c): a JSON array of {"domid", "config"}, the config
    as libxl_retrieve_domain_configuration gives it (current target and static-max from
    xenstore, video RAM filled in by libxl); dom0 has no stored configuration and is left
    out."""
    run = two("list", "-l")
    assert run.code == 0
    domains = json.loads(run.out)
    for d in domains:
        assert re.fullmatch(UUID, d["config"]["c_info"].pop("uuid"))
    assert domains == [
        {
            "domid": 1,
            "config": {
                "c_info": {"type": "hvm", "name": "web"},
                "b_info": {
                    "max_vcpus": 2,
                    "avail_vcpus": [0, 1],
                    "max_memkb": 2048 << 10,
                    "target_memkb": 900 << 10,
                    "video_memkb": 8192,
                },
            },
        },
        {
            "domid": 2,
            "config": {
                "c_info": {"type": "hvm", "name": "db"},
                "b_info": {
                    "max_vcpus": 1,
                    "avail_vcpus": [0],
                    "max_memkb": 512 << 10,
                    "target_memkb": 512 << 10,
                    "video_memkb": 8192,
                },
            },
        },
    ]
    assert run.out.startswith('[\n    {\n        "domid": 1,\n')  # yajl's four spaces
    assert [d["domid"] for d in json.loads(two.ok("list", "-l", "db"))] == [2]


def test_vm_list(two: Xl) -> None:
    """list_vm (xl_info.c): every domain but stub domains, dom0 included, uuid as the
    handle Xen keeps (dom0's is zero), the name padded to 30 columns."""
    lines = two.ok("vm-list").splitlines()
    assert lines[0] == "UUID                                  ID    name"
    assert lines[1] == "00000000-0000-0000-0000-000000000000  0    Domain-0" + " " * 22
    assert re.fullmatch(UUID + r"  1    web {27}", lines[2])
    assert re.fullmatch(UUID + r"  2    db {28}", lines[3])
    listed = json.loads(two.ok("list", "-l"))
    assert lines[2].split()[0] == listed[0]["config"]["c_info"]["uuid"]


def test_sharing(two: Xl) -> None:
    """sharing (xl_mem.c): Mem as in list (allocated + claimed), Shared from shr_pages.
    web: the build's (1024 - 8) MiB - 32 pages + 16 = 260080 pages and the device model's
    8 MiB of video RAM, 2048 pages: 262128 * 4 // 1024 = 1023; db: (512 - 8) MiB = 129024
    - 32 + 16 = 129008, + 2048 = 131056 pages -> 511."""
    assert two.ok("sharing").splitlines() == [
        "Name                                        ID   Mem Shared",
        "Domain-0                                     0  1024      0",
        "web                                          1  1023      0",
        "db                                           2   511      0",
    ]
    assert two.ok("sharing", "db").splitlines()[1:] == [
        "db                                           2   511      0"
    ]


def test_uptime(two: Xl) -> None:
    """print_uptime (xl_info.c): "%-33s %4s %s" rows; dom0's uptime is that of the machine
    xl runs on (its /proc/uptime), a guest's counts from its /vm/<uuid>/start_time; -s
    gives " HH:MM:SS up H:MM, NAME (ID)"."""
    lines = two.ok("uptime").splitlines()
    assert lines[0] == f"{'Name':<33} {'ID':>4} Uptime"
    assert re.fullmatch(rf"{'Domain-0':<33}    0 (\d+ days?, )?[ \d]\d:\d\d:\d\d", lines[1])
    for line, (name, domid) in zip(lines[2:], [("web", 1), ("db", 2)], strict=True):
        assert re.fullmatch(rf"{name:<33} {domid:4d}  0:0\d:\d\d", line), line
    short = two.ok("uptime", "-s", "web")
    assert re.fullmatch(r" \d\d:\d\d:\d\d up  0:0\d, web \(1\)\n", short)


@pytest.mark.parametrize(
    ("seconds", "long", "short"),
    [
        (0, " 0:00:00", " 0:00"),
        (3661, " 1:01:01", " 1:01"),
        (86400 + 7322, "1 day,  2:02:02", "1 day,  2:02"),
        (3 * 86400 + 45, "3 days,  0:00:45", "3 days,  0:00"),
    ],
)
def test_uptime_text(seconds: int, long: str, short: str) -> None:
    """uptime_to_string (xl_info.c): "%d day(s), %2d:%02d[:%02d]", days only when any."""
    from xlemu.toolstack import uptime_text

    assert (uptime_text(seconds, False), uptime_text(seconds, True)) == (long, short)


VCPU_HEADER = (
    "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)"
)


def test_vcpu_list(xl: Xl) -> None:
    """vcpulist and print_vcpuinfo (xl_vcpu.c): "%-32s %5u %5u", then "%5u %3c%c- " (CPU,
    running, blocked) for an online vCPU or "%5c %3c%cp " for one that is down, the time and
    both affinities as print_bitmap shows them. Default host: 8 CPUs, 4 per node. vCPU n
    sits on the n-th CPU of its domain's nodes (sched_select_initial_cpu): dom0's 8 on CPUs
    0-7, vCPU 0 running, the rest idle (blocked); web, placed on node 0, on CPUs 0 and 1,
    idle; db, placed on node 1 (node 0 has web's 2 vCPUs more: numa_cmpf), created paused,
    has vCPU 0 up on CPU 4 (the build sets its context) but neither running nor blocked, and
    vCPU 1 down. Every affinity is all 8 CPUs."""
    xl.ok("create", "-q", xl.config("web.cfg", 'name="web"\ntype="hvm"\nmemory=256\nvcpus=2\n'))
    xl.ok("create", "-q", "-p", xl.config("db.cfg", 'name="db"\nmemory=64\nvcpus=2\n'))
    dom0 = [f"Domain-0                             0 {v:5d}{v:5d}   {'r' if v == 0 else '-'}"
            f"{'-' if v == 0 else 'b'}-       0.0  all / all" for v in range(8)]  # fmt: skip
    assert xl.ok("vcpu-list").splitlines() == [
        VCPU_HEADER,
        *dom0,
        "web                                  1     0    0   -b-       0.0  all / all",
        "web                                  1     1    1   -b-       0.0  all / all",
        "db                                   2     0    4   ---       0.0  all / all",
        "db                                   2     1    -   --p       0.0  all / all",
    ]
    assert xl.ok("vcpu-list", "db", "web").splitlines()[1::2] == [
        "db                                   2     0    4   ---       0.0  all / all",
        "web                                  1     0    0   -b-       0.0  all / all",
    ]


def test_cpupool_list(xl: Xl) -> None:
    """main_cpupoollist (xl_cpupool.c): "%-19s" then "%3d %9s       y       %4d" (CPUs,
    scheduler, domains) or, with -c, the CPU list. One pool, Pool-0 (named in xenstore by
    xen-init-dom0), with the 8 CPUs, credit2 and dom0 and web in it."""
    xl.ok("create", "-q", xl.config("web.cfg", 'name="web"\nmemory=64\n'))
    assert xl.ok("cpupool-list").splitlines() == [
        "Name               CPUs   Sched     Active   Domain count",
        "Pool-0               8   credit2       y          2",
    ]
    assert xl.ok("cpupool-list", "-c", "Pool-0").splitlines() == [
        "Name               CPU list",
        "Pool-0             0,1,2,3,4,5,6,7",
    ]
    run = xl("cpupool-list", "Pool-9")
    assert (run.code, run.out, run.err) == (1, "", "Pool 'Pool-9' does not exist\n")


# -- names -----------------------------------------------------------------------------------


def test_top_is_the_picture_s_old_name_and_says_so(xl: Xl) -> None:
    """xl's top is xentop; the NUMA picture has its own name. The old name still draws it,
    with one line on stderr naming the new one."""
    old, new = xl("top", "--width", "20"), xl("numa-picture", "--width", "20")
    assert (old.code, old.out) == (new.code, new.out) == (0, new.out)
    assert old.err_lines == ["xlemu: `top` is xl's xentop; the NUMA picture is now `numa-picture`"]
    assert new.err == ""


# -- tab completion --------------------------------------------------------------------------


def complete(xl: Xl, words: str) -> list[str]:
    """What bash completion offers for the last word (click's bash_complete protocol)."""
    env = {**os.environ, "_XLEMU_COMPLETE": "bash_complete", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    done = subprocess.run(
        [sys.executable, "-m", "xlemu"], env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout.splitlines()


def test_completion_of_domain_and_file_arguments(two: Xl) -> None:
    """Domain arguments complete to the host's domain names, config arguments to file
    names (the shell's), commands to command names; completing writes nothing."""
    before = {p.name for p in two.dir.iterdir()}
    assert complete(two, "xlemu destroy w") == ["plain,web"]
    assert complete(two, "xlemu list ") == ["plain,Domain-0", "plain,web", "plain,db"]
    assert complete(two, "xlemu create we") == ["file,we"]
    assert complete(two, "xlemu mem-") == ["plain,mem-max", "plain,mem-set"]
    assert {p.name for p in two.dir.iterdir()} == before


# -- the progress line -----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_reaches_100_percent_and_clears_its_line() -> None:
    """Updates while a 2^20-page build runs; it ends at 100 % and erases the line."""
    out = Terminal()
    with progress_line(out)(1 << 20) as update:
        update(1 << 18)
        update(1 << 19)
    shown = out.getvalue().split("\r")[1:]
    assert [s[-4:] for s in shown[:-1]] == [" 25%", " 50%", "100%"]
    assert shown[-1] == "\x1b[K"


def test_progress_clears_its_line_when_the_build_fails() -> None:
    out = Terminal()
    with pytest.raises(RuntimeError), progress_line(out)(1 << 20) as update:
        update(1 << 18)
        raise RuntimeError("populate failed")
    assert out.getvalue().endswith(" 25%\r\x1b[K")


def test_no_progress_off_a_terminal_or_for_a_small_build() -> None:
    for stream, pages in ((io.StringIO(), 1 << 20), (Terminal(), 1 << 17)):
        with progress_line(stream)(pages) as update:
            update(pages)
        assert stream.getvalue() == ""
