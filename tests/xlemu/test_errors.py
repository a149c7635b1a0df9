"""Every failure of ``xlemu`` is one line on stderr (or xl's own multi-line text) and xl's
exit code, never a traceback; and a failed command leaves the host as it was.

Messages and exit codes from xl: xl.c main ("command not implemented"), xl_utils.c
(find_domain, SWITCH_FOREACH_OPT), xl_vmcontrol.c (create_domain, destroy_domain), xl_mem.c,
xl_info.c (main_list, main_domid, main_domname), xl_parse.c (parse_config_data). Run through
``xlemu.cli.main``, as the console script is; the host is the default one (2 x 16 GiB,
dom0 1 GiB) that the first command boots.
"""

from __future__ import annotations

import pytest
from xl_helpers import Run, Xl

SMALL = 'name = "small"\nmemory = 64\n'  # PV, 64 MiB
DEFAULT_FREE_MEMORY = "31743\n"  # (8388608 - 262144 dom0 - 1 MFN 0) // 256 = 8126463 // 256


def one_line(run: Run, code: int, line: str) -> None:
    assert (run.code, run.out, run.err_lines) == (code, "", [line])


@pytest.fixture
def small(xl: Xl) -> Xl:
    """The default host with one small PV guest, domid 1."""
    xl.ok("create", "-q", xl.config("small.cfg", SMALL))
    return xl


# -- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["frob"], ["d"], ["de"], ["claim"], [""], ["host", "frob"]],
    ids=["unknown", "ambiguous-d", "ambiguous-de", "ambiguous-claim", "empty", "host-frob"],
)
def test_unknown_or_ambiguous_command(xl: Xl, args: list[str]) -> None:
    """cmdtable_lookup: an exact name or a unique prefix; else "command not implemented", 1
    ("claim" prefixes claims and claim-set; "" prefixes every command)."""
    one_line(xl(*args), 1, "command not implemented")


def test_unique_prefix_runs_the_command(xl: Xl) -> None:
    """cmdtable_lookup: "li" is only a prefix of "list"."""
    assert xl.ok("li") == xl.ok("list")


# -- create ---------------------------------------------------------------------------------


def test_create_missing_file(xl: Xl) -> None:
    """create_domain reads the file before "Parsing config from": only the error, exit 3."""
    path = str(xl.dir / "nosuch.cfg")
    line = f"Failed to read config file: {path}: No such file or directory"
    one_line(xl("create", path), 3, line)


def test_create_directory_as_config(xl: Xl) -> None:
    """libxl_read_file_contents fails with EISDIR: the same message, exit 3."""
    one_line(xl("create", str(xl.dir)), 3, f"Failed to read config file: {xl.dir}: Is a directory")


def test_create_parse_error_names_the_line(xl: Xl) -> None:
    """A syntax error: "Parsing config from", libxlu's line with FILE:LINE, then xl's
    "Failed to parse config: strerror(EINVAL)" (parse_config_data in xl_parse.c), exit 1."""
    path = xl.config("bad.cfg", 'name = "a"\nmemory = @@\n')
    run = xl("create", path)
    assert (run.code, run.out) == (1, "")
    assert run.err_lines == [
        f"Parsing config from {path}",
        f"{path}:2: config parsing error near `@@': lexical error",
        "Failed to parse config: Invalid argument",
    ]


def test_create_parse_error_of_python_gives_xl_s_hint(xl: Xl) -> None:
    """The lexer met '.', '(' and ')' outside strings: libxlu adds its three warning lines
    (parse in libxlu_cfg.c) before xl's line."""
    path = xl.config("py.cfg", 'name = "a"\nkernel = os.path.join("a", "b")\n')
    run = xl("create", "-q", path)
    assert (run.code, run.err_lines) == (
        1,
        [
            f"{path}:2: config parsing error near `os.path.join': syntax error, unexpected "
            "IDENT, expecting STRING or NUMBER or '['",
            "warning: Config file looks like it contains Python code.",
            "warning:  Arbitrary Python is no longer supported.",
            "warning:  See https://wiki.xen.org/wiki/PythonInXlConfig",
            "Failed to parse config: Invalid argument",
        ],
    )


@pytest.mark.parametrize(
    ("content", "near"),
    [
        (b'name = "a"\r\nmemory = 64\r\n', "`\\r'"),  # CRLF: the CR is a bad character
        (b'name = "a"\nmemory = 6\xff4\n', "`\\xff4'"),  # not UTF-8
        (b'name = "a"\nmemory = 64\x1b[2J\n', "`\\x1b[2J'"),  # an escape sequence
    ],
    ids=["crlf", "not-utf8", "escape-sequence"],
)
def test_create_parse_error_is_printed_escaped(xl: Xl, content: bytes, near: str) -> None:
    """libxlu prints the bytes near the error raw; here they are shown as C escapes, so a
    CR, a byte that is not UTF-8 or a terminal escape cannot garble the terminal."""
    path = xl.dir / "bad.cfg"
    path.write_bytes(content)
    run = xl("create", "-q", str(path))
    line = 1 if b"\r" in content else 2
    assert (run.code, run.err_lines) == (
        1,
        [
            f"{path}:{line}: config parsing error near {near}: lexical error",
            "Failed to parse config: Invalid argument",
        ],
    )


def test_bad_xl_conf_is_xl_s_lines(xl: Xl) -> None:
    """parse_global_config (xl.c): libxlu's line, then "Failed to parse config file"."""
    xl.xl_conf.write_text("claim_mode = @\n")
    run = xl("list")
    assert (run.code, run.out, run.err_lines) == (
        1,
        "",
        [
            f"{xl.xl_conf}:1: config parsing error near `@': lexical error",
            "Failed to parse config file: Invalid argument",
        ],
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("memory = 64\n", "Domain name must be specified."),
        ('name = "t"\ntype = "xen"\n', "Invalid domain type xen."),
        (
            'name = "v"\ntype = "hvm"\nvnuma = [ [ "pnode=5", "size=512" ] ]\n',
            "xl: invalid pnode number: 5",  # pnode >= nr_nodes (2)
        ),
    ],
    ids=["missing-name", "bad-type", "invalid-pnode"],
)
def test_create_config_errors_exit_1(xl: Xl, text: str, line: str) -> None:
    """parse_config_data / parse_vnuma_config: one line, exit 1, no domain made."""
    one_line(xl("create", "-q", xl.config("vm.cfg", text)), 1, line)
    assert xl.ok("list").count("\n") == 2  # header and Domain-0


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (["memory=0"], "memory = 0: the guest needs some memory: raise memory"),
        (
            ["memory=2", 'type="hvm"'],  # libxl gives an HVM guest 8 MiB of video RAM
            "memory = 2: the guest needs more than its 8 MiB of video RAM: raise memory",
        ),
        (
            ["memory=8", 'type="hvm"'],
            "memory = 8: the guest needs more than its 8 MiB of video RAM: raise memory",
        ),
    ],
    ids=["zero", "hvm-2", "hvm-8"],
)
def test_create_with_too_little_memory_says_so(xl: Xl, settings: list[str], line: str) -> None:
    """xl and libxl pass such sizes on and the build fails deep inside; xlemu refuses them
    first, exit 1 as for a config error, no domain made."""
    one_line(xl("create", "-q", "/dev/null", "name='t'", *settings), 1, line)
    assert xl.ok("list").count("\n") == 2


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        # legacy: one host-wide claim of (40000 - 8) MiB; free_memory is 31743
        ("1", "meminit_hvm: staking a legacy claim: ENOMEM: the guest needs 40000 MiB, the "
         "host has 31743 MiB free"),
        # numa, vNUMA 20000 MiB on each node; read once the failed domain is destroyed:
        # node 0 has 4194303 - 2 (dom0's structure and shared info) = 4194301 pages (16383
        # MiB), node 1 4194304 - 4 (heap metadata) - 262144 dom0 = 3932156 (15359 MiB)
        ("numa", "meminit_hvm: staking a numa claim: ENOMEM: the guest needs 40000 MiB, the "
         "host has 31743 MiB free, node 0 16383 MiB unclaimed, node 1 15359 MiB unclaimed"),
    ],
    ids=["legacy", "numa"],
)  # fmt: skip
def test_create_larger_than_the_host_says_so(xl: Xl, mode: str, why: str) -> None:
    """A refused claim says how much the guest needs and how much there is: exit 3."""
    xl.claim_mode(mode)
    vnuma = 'vnuma=[["pnode=0","size=20000","vcpus=0"],["pnode=1","size=20000"]]'
    extra = [vnuma] if mode == "numa" else ["memory=40000"]
    run = xl("create", "-q", "/dev/null", "name='big'", "type='hvm'", *extra)
    one_line(run, 3, f"libxl: error: Domain 1:cannot (re-)build domain: -3: {why}")


def test_create_with_cpus_of_no_host_cpu(xl: Xl) -> None:
    """cpus="99" on an 8-CPU host: libxl_bitmap_set drops the bit, the hard affinity is
    empty, Xen refuses it (EINVAL) and libxl__build_pre fails: libxl's lines, exit 3, the
    domid used up."""
    run = xl("create", "-q", "/dev/null", "name='c'", "memory=64", "cpus='99'")
    assert (run.code, run.out, run.err_lines) == (
        3,
        "",
        [
            "libxl: error: Domain 1:Setting vcpu affinity: Invalid argument",
            "libxl: error: setting affinity failed on vcpu `0'",
            "libxl: error: Domain 1:cannot (re-)build domain: -3",
        ],
    )
    assert xl.ok("list").count("\n") == 2


def test_create_with_vnuma_smaller_than_memory_warns(xl: Xl) -> None:
    """xl takes it silently and the guest gets only what its vnodes hold: say so. The guest
    holds (256 - 8) MiB = 63488 pages - 32 (VGA hole) + 16 special + 2048 video RAM = 65520
    -> 255 MiB."""
    run = xl("create", "-q", "/dev/null", "name='v'", "type='hvm'", "memory=512",
             'vnuma=[["pnode=0","size=256","vcpus=0"]]')  # fmt: skip
    assert (run.code, run.err_lines) == (
        0,
        ["xlemu: warning: vnuma holds 256 MiB, less than memory = 512: the guest gets 256 MiB"],
    )
    assert xl.ok("list", "v").splitlines()[1].split()[2] == "255"


def test_create_with_memory_not_a_number_warns_as_xl(xl: Xl) -> None:
    """memory="1G": xlu_cfg_get_long warns and xl leaves memory unset, so libxl's default
    of 32 MiB applies (libxl__domain_build_info_setdefault)."""
    run = xl("create", "-q", "/dev/null", "name='g'", 'memory="1G"')
    assert (run.code, run.err_lines) == (
        0,
        ["/dev/null:3: warning: parameter `memory' is not a valid number"],
    )
    assert xl.ok("list", "g").splitlines()[1].split()[2] == "32"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            'name = "v"\ntype = "pv"\nvnuma = [ [ "pnode=0", "size=512" ] ]\n',
            "libxl: error: PV vNUMA is not yet supported",
        ),
        (
            'name = "v"\ntype = "hvm"\nmemory = 256\nvnuma = [ [ "pnode=0", "size=512" ] ]\n',
            "libxl: error: Cannot enable PoD and vNUMA at the same time",  # 256 < maxmem 512
        ),
    ],
    ids=["pv-vnuma", "pod-and-vnuma"],
)
def test_create_refused_by_libxl_exits_6(xl: Xl, text: str, line: str) -> None:
    """initiate_domain_create refuses before making a domain: ERROR_INVAL -> exit 6, and the
    next domain is still domid 1."""
    one_line(xl("create", "-q", xl.config("vm.cfg", text)), 6, line)
    xl.ok("create", "-q", xl.config("small.cfg", SMALL))
    assert xl.ok("domid", "small") == "1\n"


def test_create_duplicate_name_uses_up_a_domid(small: Xl) -> None:
    """libxl__domain_make creates domain 2, then refuses the name: exit 3; the next domain
    is 3 (Xen hands out domids after the last one)."""
    run = small("create", "-q", small.config("dup.cfg", SMALL))
    one_line(run, 3, 'libxl: error: Domain 2:Domain with name "small" already exists.')
    small.ok("create", "-q", small.config("other.cfg", 'name = "other"\nmemory = 64\n'))
    assert small.ok("domid", "other") == "3\n"


def test_storm_refuses_names_already_taken(xl: Xl) -> None:
    """A second storm of the same config would name its domains s-1, s-2 again: refused
    before anything is built (names are unique, libxl__domain_rename)."""
    cfg = xl.config("s.cfg", 'name = "s"\nmemory = 64\n')
    xl.ok("storm", "2", cfg)
    before = xl.ok("list")
    one_line(xl("storm", "3", cfg), 3, 'libxl: error: Domain with name "s-1" already exists.')
    assert xl.ok("list") == before


@pytest.mark.parametrize("mode", ["1", "numa", "0"], ids=["legacy", "numa", "off"])
def test_create_that_cannot_be_met_leaves_nothing_behind(xl: Xl, mode: str) -> None:
    """A 40000 MiB HVM guest on 31743 MiB free: the claim (or, without claims, populate)
    fails; libxl destroys the domain: exit 3, no domain, no claim, free memory unchanged."""
    xl.claim_mode(mode)
    run = xl("create", "-q", xl.config("huge.cfg", 'name = "huge"\ntype = "hvm"\nmemory = 40000\n'))
    assert (run.code, run.out, len(run.err_lines)) == (3, "", 1)
    assert run.err.startswith("libxl: error: Domain 1:cannot (re-)build domain: -3")
    assert xl.ok("list").splitlines()[1:] == [
        "Domain-0                                     0  1024     8     r-----       0.0"
    ]
    assert xl.ok("claims", "--nodes").splitlines()[1:] == [
        "Domain-0                                     0       0       0       0"
    ]
    assert xl.ok("info", "free_memory") == DEFAULT_FREE_MEMORY
    assert xl.ok("info", "outstanding_claims") == "0\n"


# -- domains --------------------------------------------------------------------------------


def test_destroy_domain_0_without_force(xl: Xl) -> None:
    """destroy_domain: xl's own two lines and a blank line, exit 1."""
    run = xl("destroy", "0")
    assert (run.code, run.out) == (1, "")
    assert run.err == (
        "Not destroying domain 0; use -f to force.\n"
        "This can only be done when using a disaggregated hardware domain and toolstack.\n\n"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["destroy", "77"], "destroy failed (rc=-21)"),  # libxl_domain_destroy: DOMAIN_NOTFOUND
        (["destroy", "nosuch"], "nosuch is an invalid domain identifier (rc=-6)"),
        (["mem-max", "small", "5x"], "invalid memory size: 5x"),
        (["mem-set", "small", "1.5g"], "invalid memory size: 1.5g"),
        (["mem-max", "nosuch", "5x"], "nosuch is an invalid domain identifier (rc=-6)"),
        (
            ["domid", "nosuch"],
            "Can't get domid of domain name 'nosuch', maybe this domain does not exist.",
        ),
        (["domid", "1"], "Can't get domid of domain name '1', maybe this domain does not exist."),
        (
            ["domname", "99"],
            "Can't get domain name of domain id '99', maybe this domain does not exist.",
        ),
        (["list", "99"], "Error: Domain '99' does not exist."),  # a domid: libxl_domain_info
        (["list", "nosuch"], "nosuch is an invalid domain identifier (rc=-6)"),  # find_domain
        (["claims", "extra"], "xlemu: Got unexpected extra argument (extra)"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_domain_errors_are_one_line_exit_1(small: Xl, args: list[str], line: str) -> None:
    """Each failure prints xl's line; the state is unchanged."""
    before = small.state.read_bytes()
    run = small(*args)
    code = 2 if line.startswith("xlemu: ") else 1
    one_line(run, code, line)
    assert small.state.read_bytes() == before


def test_domname_without_digits(xl: Xl) -> None:
    """main_domname: "Invalid domain id." and a blank line, exit 1."""
    run = xl("domname", "abc")
    assert (run.code, run.out, run.err) == (1, "", "Invalid domain id.\n\n")


@pytest.mark.parametrize(
    ("args", "ok"),
    [
        # memory/target = 2048 MiB - 8 MiB video = 2040 MiB (libxl__build_post)
        (["mem-max", "web", "2040"], True),
        (["mem-max", "web", "2039"], False),
        # new target = size - 8 MiB video, at most static-max 2048 MiB (libxl_set_memory_target)
        (["mem-set", "web", "2056"], True),
        (["mem-set", "web", "2057"], False),
        (["mem-set", "0", "136"], True),  # dom0: 136 - 0 video >= 128 MiB (LIBXL_MIN_DOM0_MEM)
        (["mem-set", "0", "127"], False),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_mem_max_and_mem_set_limits(xl: Xl, args: list[str], ok: bool) -> None:
    """libxl's checks; a refusal prints libxl's line saying why (libxl_domain_setmaxmem,
    libxl_set_memory_target in libxl_mem.c), then xl's, naming the size as typed
    (set_memory_max/_target, xl_mem.c)."""
    xl.ok("create", "-q", xl.config("web.cfg", 'name = "web"\ntype = "hvm"\nmemory = 2048\n'))
    run = xl(*args)
    if ok:
        assert (run.code, run.out, run.err) == (0, "", "")
        return
    domid = "0" if args[1] == "0" else "1"
    why = {
        "mem-max": "memory_static_max must be greater than or or equal to memory_dynamic_max",
        "mem-set": "memory_dynamic_max must be less than or equal to memory_static_max",
    }[args[0]]
    if domid == "0":  # 127 MiB = 130048 KiB, below LIBXL_MIN_DOM0_MEM (128 MiB)
        why = "New target 130048 for dom0 is below the minimum threshold"
    which = "static" if args[0] == "mem-max" else "dynamic"
    assert (run.code, run.out, run.err_lines) == (
        1,
        "",
        [
            f"libxl: error: Domain {domid}:{why}",
            f"cannot set domid {domid} {which} max memory to : {args[2]}",
        ],
    )


@pytest.mark.parametrize("command", ["mem-max", "mem-set"])
def test_mem_max_and_mem_set_of_no_domain(xl: Xl, command: str) -> None:
    """A numeric domid that does not exist: libxl cannot read its memory/target, and says
    so in each function's words (libxl_domain_setmaxmem, libxl_set_memory_target)."""
    run = xl(command, "77", "64")
    which, what = ("static", "memory") if command == "mem-max" else ("dynamic", "target memory")
    assert (run.code, run.err_lines) == (
        1,
        [
            f"libxl: error: Domain 77:Cannot get {what} info from /local/domain/77/memory/"
            "target: No such file or directory",
            f"cannot set domid 77 {which} max memory to : 64",
        ],
    )


# -- claim-set ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "line"),
    [
        (["node0"], "expected TARGET=SIZE (node0=2G, host=512M), got 'node0'"),
        (["cpu0=1G"], "expected a target node<N> or host, got 'cpu0'"),
        (["node0=5x"], "invalid memory size: 5x"),
        ([], "expected at least one TARGET=SIZE, or --clear"),
        (["node0=1M", "node0=2M"], "node0 given twice: give each target once"),
        # 99999 GiB on node 0 > node 0's 4194303 free pages less small's 16384 (placed on
        # node 0, the one with more free memory) = 4177919 pages = 16319 MiB -> ENOMEM
        (
            ["node0=99999G"],
            "cannot set the claim set of domain 1: node 0 has 16319 MiB unclaimed: claim at "
            "most that there (ENOMEM)",
        ),
        # node 9 is not online -> ENOENT
        (
            ["node9=1M"],
            "cannot set the claim set of domain 1: no node 9: the host has nodes 0-1 (ENOENT)",
        ),
        # max_pages (64 + 1) MiB, 16384 pages (64 MiB) owned: 1 GiB more -> EINVAL
        (
            ["host=1G"],
            "cannot set the claim set of domain 1: claim 1024 MiB + tot_pages 64 MiB exceeds "
            "max_mem 65 MiB: raise it with mem-max (EINVAL)",
        ),
    ],
    ids=["no-size", "bad-target", "bad-size", "nothing", "twice", "enomem", "enoent", "einval"],
)
def test_claim_set_errors(small: Xl, targets: list[str], line: str) -> None:
    """claim-set: one line, exit 1, the claims unchanged (domain_set_claim_entries is atomic)."""
    one_line(small("claim-set", "small", *targets), 1, line)
    assert small.ok("info", "outstanding_claims") == "0\n"


# -- the host, its state file and xl.conf ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["--nodes", "0"], 2, "Invalid value for '--nodes': 0 is not in the range 1<=x<=64."),
        (["--nodes", "-1"], 2, "Invalid value for '--nodes': -1 is not in the range 1<=x<=64."),
        (["--nodes", "65"], 2, "Invalid value for '--nodes': 65 is not in the range 1<=x<=64."),
        (
            ["--cpus", "5000"],
            2,
            "Invalid value for '--cpus': 5000 is not in the range 0<=x<=4096.",
        ),
        # 2 nodes x 3000 CPUs: more than NR_CPUS in all
        (["--cpus", "3000"], 1, "expected 1..4096 CPUs in all (NR_CPUS), got 6000"),
        (["--cpus", "0"], 1, "expected 1..4096 CPUs in all (NR_CPUS), got 0"),
        (
            ["--node-memory", "-5"],
            2,
            "Invalid value for '--node-memory': -5 is not in the range x>=0.",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_host_init_bad_value(xl: Xl, args: list[str], code: int, line: str) -> None:
    """Refused as given (never echoed as another value), the host left as it was."""
    before = xl.state.read_bytes()
    one_line(xl("host", "init", *args), code, f"xlemu: {line}")
    assert xl.state.read_bytes() == before


def test_bad_claim_mode_in_xl_conf(xl: Xl) -> None:
    xl.claim_mode("sometimes")
    one_line(
        xl("list"),
        1,
        f"{xl.xl_conf}: claim_mode: expected 0, 1, legacy, numa or off, got 'sometimes'",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["create", "-q", "/dev/null", "memory=@"],
        ["create", "-q", "/dev/null", "name='x'", "memory='lots'"],
        ["create", "-q", "/dev/null", "name='x'", "cpus='node:9'"],
        ["create", "-q", "/dev/null", "name='x'", "cpus='3-1'"],
        ["create", "-q", "/dev/null", "name='x'", "type='hvm'", "vnuma=[['size=1']]"],
        ["create", "-q", "/dev/null", "name='x'", "type='hvm'", "vnuma=['pnode=0']"],
        ["create", "-q", "/dev/null", "name='x'", "vcpus=4", "maxvcpus=2"],
        ["create", "-q", "/dev/null", "name='x'", "memory=1", "vnuma=[['pnode=0','size=2']]"],
        ["mem-max", "0", ""],
        ["mem-set", "99", "64"],
        ["pause", "nosuch"],
        ["unpause", "1"],
        ["claim-set", "99", "node0=1M"],
        ["claim-set", "0", "node0=1M", "node0=2M"],
        ["debug-keys", ""],
        ["top", "--svg", "/nonexistent-dir/x.svg"],
        ["numa-picture", "--svg", "/nonexistent-dir/x.svg"],
        ["numa-picture", "--theme", "blue"],
        ["vcpu-list", "nosuch"],
        ["uptime", "99"],
        ["sharing", "99"],
        ["list", "-l", "nosuch"],
        ["cpupool-list", "-c", "foo"],
        ["help", "host", "frob"],
        ["-N", "help"],
        ["storm", "0", "x.cfg"],
        ["storm", "2", "/nonexistent.cfg"],
        ["host", "init", "--from", "/nonexistent.toml"],
        ["info", "-n", "-n", "-n"],
    ],
    ids=lambda a: " ".join(a),
)
def test_odd_input_never_gives_a_traceback(xl: Xl, args: list[str]) -> None:
    """Whatever the outcome, at most xl-style lines on stderr, never a Python traceback or
    an exception's repr ("[Errno 2] ...")."""
    run = xl(*args)
    assert "Traceback" not in run.err and "[Errno" not in run.err
    assert run.code in (0, 1, 2, 3, 6)  # 3, 6: -ERROR_FAIL, -ERROR_INVAL from libxl
    if run.code:
        assert run.err.strip(), "a failure says why"
        assert len(run.err_lines) <= 2, run.err


def test_storm_seed_with_builder_processes_is_refused(xl: Xl) -> None:
    """A seed orders the turns of builder threads in this process; builder processes on a
    server interleave as the OS schedules them, so no seed can replay them."""
    cfg = xl.config("s.cfg", 'name = "s"\nmemory = 64\n')
    before = xl.ok("list")
    line = (
        "xlemu: storm: --seed orders builder threads on a host in this process; "
        "builder processes run as the OS schedules them"
    )
    one_line(xl("storm", "2", cfg, "--processes", "--seed", "1"), 1, line)
    assert xl.ok("list") == before
