"""The ``xlemu`` command line: a thin click shell over :mod:`xlemu.toolstack`.

Commands, output formats and exit codes follow ``xl``; any unambiguous prefix of a command
works, as in xl. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click
from click.shell_completion import CompletionItem
from xenhost.xenstore import XenstoreError, XsHandle

from hypervisor_model.host import MAX_NUMNODES, NR_CPUS, HostConfigError, load_host, make_host
from hypervisor_model.public.releases import RELEASES
from hypervisor_model.snapshot import StateError
from xlemu.state import StateFile, read_xenstore, session, state_file
from xlemu.themes import THEMES
from xlemu.toolstack import Toolstack, ToolstackError
from xlemu.xlcommand import XlGroup, XlUsageError, help_text
from xlemu.xlconf import read_xl_conf

if TYPE_CHECKING:  # each command imports what it alone uses, when it runs
    from xlemu.create import Progress


def _top_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(help_text(xlemu), nl=False)
        ctx.exit(0)


@click.group(
    cls=XlGroup,
    invoke_without_command=True,
    add_help_option=False,
    context_settings={"allow_interspersed_args": False},  # getopt "+vftTN": options first
)
@click.option("-v", "verbose", count=True, help="More verbose messages (xl -v).")
@click.option("-N", "dryrun", is_flag=True, help="Dry run: show what a command would do.")
@click.option("-f", "force", is_flag=True, help="Force execution (xl -f).")
@click.option("-t", "use_cr", is_flag=True, help="Progress lines end in CR (xl -t).")
@click.option("-T", "timestamps", is_flag=True, help="Timestamps in messages (xl -T).")
@click.option("--state", "state", metavar="FILE", help="The host's state file ($XLEMU_STATE).")
@click.option("--trace", is_flag=True, help="Print every layer of every call on stderr.")
@click.option("-h", "--help", is_flag=True, expose_value=False, is_eager=True, callback=_top_help)
@click.pass_context
def xlemu(ctx: click.Context, state: str | None, trace: bool, dryrun: bool, **_: Any) -> None:
    """An xl-like toolstack on a persistent emulated Xen host."""
    ctx.obj = {"state": state_file(state), "trace": trace, "dryrun": dryrun}
    if ctx.invoked_subcommand is None:  # xl.c main: the full help, on stdout, and exit 1
        click.echo(help_text(xlemu), nl=False)
        ctx.exit(1)


@xlemu.command("help", hidden=True, usage="[Command]")
@click.argument("words", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, words: tuple[str, ...]) -> None:
    """Print the full list of commands, or one command's usage."""
    command: click.Command = xlemu
    chain = []
    if words == ("help",):  # help in xl.c: "help help" is the full list
        words = ()
    for i, word in enumerate(words):  # by prefix, as cmdtable_lookup finds them
        found = command.get_command(ctx, word) if isinstance(command, XlGroup) else None
        if found is None:  # help in xl.c says so on stdout and exits 0
            click.echo(f'command "{" ".join(words[: i + 1])}" not implemented')
            return
        command = found
        chain.append(found)
    click.echo(help_text(command, " ".join(c.name or "" for c in chain)), nl=False)


@contextmanager
def toolstack(ctx: click.Context, *, save: bool = True) -> Iterator[Toolstack]:
    """The host for this command, under its lock, saved afterwards; traced on request.

    A failure xl reports is saved too: Xen keeps what the command did (a failed create has
    used up its domid, as xc_domain_create comes before the build in libxl__domain_make)."""
    where: StateFile = ctx.obj["state"]
    conf = read_xl_conf(where.path)
    failure: ToolstackError | None = None
    with session(where, save=save, notice=_notice) as (hv, xs):
        ts = Toolstack(hv, xs, conf)
        try:
            with _trace() if ctx.obj["trace"] else nullcontext():
                yield ts
        except ToolstackError as e:
            failure = e
        except XenstoreError as e:  # xl's libxl would log it and fail the command
            failure = ToolstackError(f"libxl: error: xenstore: {e}")
    if failure is not None:
        raise failure


def _trace() -> AbstractContextManager[Any]:
    from xenctrl.trace import Trace

    return Trace(sys.stderr)


def _notice(text: str) -> None:
    click.echo(f"xlemu: {text}", err=True)


def echo_lines(lines: list[str]) -> None:
    if lines:  # `xl info NOSUCHFIELD` prints nothing at all (maybe_printf in xl_info.c)
        click.echo("\n".join(lines))


# -- completion and progress -------------------------------------------------------------------


def _complete_domain(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Domain names of the host the command would use, read without writing anything."""
    try:
        store = read_xenstore(state_file(ctx.find_root().params.get("state")).path)
    except StateError:
        return []
    with XsHandle.local(store) as xs:
        ids = xs.directory("/local/domain")
        from xlemu.libxl_xs import domain_name

        names = [domain_name(xs, int(i)) for i in ids if i.isdigit()]
    return [CompletionItem(n) for n in names if n is not None and n.startswith(incomplete)]


def _complete_file(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return [CompletionItem(incomplete, type="file")]  # the shell completes file names


def progress_line(stream: TextIO) -> Progress:
    """A progress line while a big domain is populated, on a terminal only: it reaches
    100 % when the build succeeds and is cleared when the build ends either way."""

    @contextmanager
    def progress(total: int) -> Iterator[Callable[[int], None]]:
        if total < (1 << 18) or not stream.isatty():
            yield lambda pages: None
            return
        shown = [-1]

        def show(pages: int) -> None:
            percent = min(pages * 100 // total, 100)
            if percent != shown[0]:
                shown[0] = percent
                bar = "#" * (percent * 30 // 100)
                stream.write(f"\rPopulating  [{bar:-<30}]  {percent:3d}%")
                stream.flush()

        try:
            yield show
            show(total)
        finally:
            stream.write("\r\x1b[K")
            stream.flush()

    return progress


# -- domains (in xl's table order) ------------------------------------------------------------

MEM_SIZE = "<MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>"  # parse_mem_size_kb


@xlemu.command(
    usage="<ConfigFile> [options] [vars]",
    options=(
        "-h                      Print this help.\n"
        "-n, --dryrun            Dry run - prints the resulting configuration\n"
        "                         (deprecated in favour of global -N option).\n"
        "-p                      Leave the domain paused after it is created.\n"
        "-q, --quiet             Quiet."
    ),
    modifies=True,
    can_dryrun=True,
)
@click.option("-n", "--dryrun", "dryrun", is_flag=True)
@click.option("-p", "paused", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.argument("config", shell_complete=_complete_file)
@click.argument("extra", nargs=-1)
@click.pass_context
def create(
    ctx: click.Context, dryrun: bool, paused: bool, quiet: bool, config: str, extra: tuple[str, ...]
) -> None:
    """Create a domain from config file <filename>."""
    if "=" in config:
        extra, config = (config, *extra), "/dev/null"

    def announce(source: str) -> None:
        if not quiet:
            click.echo(f"Parsing config from {source}", err=True)

    from xlemu.create import create_domain, dry_run, guest_config, read_config

    if dryrun or ctx.obj["dryrun"]:  # the configuration only: nothing is built
        with toolstack(ctx, save=False) as ts:
            click.echo(dry_run(guest_config(ts, read_config(config, list(extra), announce))))
        return
    with toolstack(ctx) as ts:
        create_domain(
            ts,
            config,
            list(extra),
            paused=paused,
            progress=progress_line(sys.stderr),
            announce=announce,
        )


@xlemu.command(
    "list",
    usage="[options] [Domain]\n",
    options=(
        "-l, --long              Output all VM details\n"
        "-n, --numa              Prints out NUMA node affinity"
    ),
)
@click.option("-l", "--long", "long_", is_flag=True)
@click.option("-n", "--numa", is_flag=True)
@click.argument("domain", required=False, shell_complete=_complete_domain)
@click.pass_context
def list_(ctx: click.Context, long_: bool, numa: bool, domain: str | None) -> None:
    """List information about all/some domains."""
    with toolstack(ctx, save=False) as ts:
        if long_:
            click.echo(ts.list_long(domain))
        else:
            echo_lines(ts.list_lines(domain, numa=numa))


@xlemu.command(
    usage="[options] <Domain>\n",
    options=(
        "-f                      Permit destroying domain 0, which will only succeed\n"
        "                        when run from disaggregated toolstack domain with a\n"
        "                        hardware domain distinct from domain 0."
    ),
    modifies=True,
)
@click.option("-f", "force", is_flag=True)
@click.argument("domain", shell_complete=_complete_domain)
@click.pass_context
def destroy(ctx: click.Context, force: bool, domain: str) -> None:
    """Terminate a domain immediately."""
    with toolstack(ctx) as ts:
        ts.destroy(domain, force)


@xlemu.command(usage="<Domain>", modifies=True)
@click.argument("domain", shell_complete=_complete_domain)
@click.pass_context
def pause(ctx: click.Context, domain: str) -> None:
    """Pause execution of a domain."""
    with toolstack(ctx) as ts:
        if (failed := ts.pause(domain)) is not None:
            click.echo(failed, err=True)  # and exit 0, as xl does


@xlemu.command(usage="<Domain>", modifies=True)
@click.argument("domain", shell_complete=_complete_domain)
@click.pass_context
def unpause(ctx: click.Context, domain: str) -> None:
    """Unpause a paused domain."""
    with toolstack(ctx) as ts:
        if (failed := ts.pause(domain, unpause=True)) is not None:
            click.echo(failed, err=True)  # and exit 0, as xl does


@xlemu.command("mem-max", usage=f"<Domain> {MEM_SIZE}", modifies=True)
@click.argument("domain", shell_complete=_complete_domain)
@click.argument("mem")
@click.pass_context
def mem_max(ctx: click.Context, domain: str, mem: str) -> None:
    """Set the maximum amount reservation for a domain."""
    with toolstack(ctx) as ts:
        ts.mem_max(domain, mem)


@xlemu.command("mem-set", usage=f"<Domain> {MEM_SIZE}", modifies=True)
@click.argument("domain", shell_complete=_complete_domain)
@click.argument("mem")
@click.pass_context
def mem_set(ctx: click.Context, domain: str, mem: str) -> None:
    """Set the current memory usage for a domain."""
    with toolstack(ctx) as ts:
        ts.mem_set(domain, mem)


@xlemu.command("vcpu-list", usage="[Domain, ...]")
@click.argument("domains", nargs=-1, shell_complete=_complete_domain)
@click.pass_context
def vcpu_list(ctx: click.Context, domains: tuple[str, ...]) -> None:
    """List the VCPUs for all/some domains."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.vcpu_list_lines(list(domains)))


@xlemu.command("vm-list")
@click.pass_context
def vm_list(ctx: click.Context) -> None:
    """List guest domains, excluding dom0, stubdoms, etc.."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.vm_list_lines())


@xlemu.command(usage="-n, --numa         List host NUMA topology information", options="")
@click.option("-n", "--numa", is_flag=True)
@click.argument("field", required=False)
@click.pass_context
def info(ctx: click.Context, numa: bool, field: str | None) -> None:
    """Get information about Xen host."""
    with toolstack(ctx, save=False) as ts:
        lines = ts.info_lines(numa=numa)
    if field is not None and not numa:
        lines = [
            line.split(": ", 1)[1] for line in lines if line.startswith(field) and ": " in line
        ]
    echo_lines(lines)


@xlemu.command(usage="[Domain]")
@click.argument("domain", required=False, shell_complete=_complete_domain)
@click.pass_context
def sharing(ctx: click.Context, domain: str | None) -> None:
    """Get information about page sharing."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.sharing_lines(domain))


@xlemu.command(usage="<DomainName>")
@click.argument("name", shell_complete=_complete_domain)
@click.pass_context
def domid(ctx: click.Context, name: str) -> None:
    """Convert a domain name to domain id."""
    with toolstack(ctx, save=False) as ts:
        if name.isdigit() or (found := ts.find_domain_by_name(name)) is None:
            raise ToolstackError(
                f"Can't get domid of domain name '{name}', maybe this domain does not exist."
            )
        click.echo(found)


@xlemu.command(usage="<DomainId>")
@click.argument("domid", type=str)
@click.pass_context
def domname(ctx: click.Context, domid: str) -> None:
    """Convert a domain id to domain name."""
    with toolstack(ctx, save=False) as ts:
        if not domid.isdigit():  # main_domname: "Invalid domain id.\n\n"
            raise ToolstackError("Invalid domain id.\n")
        name = ts.name_if_exists(int(domid))
        if name is None:
            raise ToolstackError(
                f"Can't get domain name of domain id '{domid}', maybe this domain does not exist."
            )
        click.echo(name)


@xlemu.command("debug-keys", usage="<Keys>", modifies=True)
@click.argument("keys")
@click.pass_context
def debug_keys(ctx: click.Context, keys: str) -> None:
    """Send debug keys to Xen."""
    with toolstack(ctx) as ts:
        ts.debug_keys(keys)


@xlemu.command(
    usage="[-c]", options="  -c                        Clear dmesg buffer as well as printing it"
)
@click.option("-c", "--clear", "clear", is_flag=True)
@click.pass_context
def dmesg(ctx: click.Context, clear: bool) -> None:
    """Read and/or clear dmesg buffer."""
    with toolstack(ctx, save=clear) as ts:
        click.echo(ts.dmesg(clear), nl=False)


@xlemu.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx: click.Context, args: tuple[str, ...]) -> None:
    """The NUMA picture's old name (xl's top is xentop)."""
    click.echo("xlemu: `top` is xl's xentop; the NUMA picture is now `numa-picture`", err=True)
    ctx.invoke(numa_picture, **numa_picture.make_context("numa-picture", list(args)).params)


@xlemu.command(usage="[-s] [Domain]", options="")
@click.option("-s", "short", is_flag=True)
@click.argument("domains", nargs=-1, shell_complete=_complete_domain)
@click.pass_context
def uptime(ctx: click.Context, short: bool, domains: tuple[str, ...]) -> None:
    """Print uptime for all/some domains."""
    try:  # print_dom0_uptime: the uptime of the machine xl runs on
        dom0 = int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        raise ToolstackError("Can not get Dom0 uptime.", 255) from None
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.uptime_lines(list(domains), short, int(time.time()), dom0))


@xlemu.command(usage="[--nodes]")
@click.option("--nodes", is_flag=True, help="Each domain's claim on each node and host-wide.")
@click.pass_context
def claims(ctx: click.Context, nodes: bool) -> None:
    """List outstanding claim information about all domains."""
    with toolstack(ctx, save=False) as ts:
        if ts.conf.claim_mode == "off":
            click.echo("claim_mode not enabled (see man xl.conf).", err=True)
        echo_lines(ts.claims_node_lines() if nodes else ts.list_lines(claims=True))


@xlemu.command(
    "cpupool-list",
    usage="[-c|--cpus] [<CPU Pool>]",
    options="-c, --cpus                     Output list of CPUs used by a pool",
)
@click.option("-c", "--cpus", is_flag=True)
@click.argument("pool", required=False)
@click.pass_context
def cpupool_list(ctx: click.Context, cpus: bool, pool: str | None) -> None:
    """List CPU pools on host."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.cpupool_list_lines(pool, cpus))


# -- beyond xl ------------------------------------------------------------------------------------


@xlemu.command("claim-set", usage=f"[--clear] <Domain> [node<N>|host]={MEM_SIZE}...", modifies=True)
@click.option("--clear", is_flag=True, help="Release every claim of the domain.")
@click.argument("domain", shell_complete=_complete_domain)
@click.argument("targets", nargs=-1)
@click.pass_context
def claim_set(ctx: click.Context, clear: bool, domain: str, targets: tuple[str, ...]) -> None:
    """Install a NUMA claim set on a domain (node0=2G host=512M)."""
    with toolstack(ctx) as ts:
        ts.claim_set(domain, targets, clear)


@xlemu.command(usage="[options] <Count> <ConfigFile>", modifies=True)
@click.option(
    "--claim-mode",
    type=click.Choice(["legacy", "numa", "off"]),
    default=None,
    metavar="MODE",
    help="legacy, numa or off (default: xl.conf's).",
)
@click.option("--processes", is_flag=True, help="Each builder a process, on a host server.")
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help="Order the builders' turns by seed N, to replay a storm (default: a random seed).",
)
@click.argument("count", type=click.IntRange(1, 4096))
@click.argument("config", shell_complete=_complete_file)
@click.pass_context
def storm(
    ctx: click.Context,
    claim_mode: str | None,
    processes: bool,
    seed: int | None,
    count: int,
    config: str,
) -> None:
    """Create Count domains from one config at once, each as create builds it."""
    from xlemu.create import storm as create_storm
    from xlemu.serving import served

    held = served(ctx.obj["state"], _notice) if processes else nullcontext()
    with held, toolstack(ctx) as ts:
        report = create_storm(ts, config, count, claim_mode, processes=processes, seed=seed)  # type: ignore[arg-type]
    click.echo(report.table())
    if not report.count("admitted"):  # every create failed: as one failed create exits
        ctx.exit(3)


@xlemu.command("numa-picture", usage="[options]")
@click.option(
    "--svg", "svg_file", type=click.Path(dir_okay=False), metavar="FILE", help="Also an SVG."
)
@click.option(
    "--theme",
    type=click.Choice(list(THEMES)),
    default="light",
    metavar="THEME",
    help="The SVG's colours: light or dark (light).",
)
@click.option("--width", default=50, metavar="N", help="Bar width in characters (50).")
@click.pass_context
def numa_picture(ctx: click.Context, svg_file: str | None, theme: str, width: int) -> None:
    """Picture NUMA memory: per node, each domain's pages, claims and free memory."""
    from xlemu import picture

    with toolstack(ctx, save=False) as ts:
        memory = ts.memory_picture()
    click.echo(picture.bars(memory, width))
    if svg_file:
        Path(svg_file).write_text(picture.svg(memory, theme), encoding="utf-8")


@xlemu.group(cls=XlGroup)
def host() -> None:
    """Make or describe the emulated host."""


@host.command("init", usage="[options]", modifies=True)
@click.option("--nodes", default=2, type=click.IntRange(1, MAX_NUMNODES), help="NUMA nodes (2).")
@click.option("--node-memory", default=16384, type=click.IntRange(0), help="MiB per node (16384).")
@click.option(
    "--cpus", default=4, type=click.IntRange(0, NR_CPUS), metavar="N", help="CPUs per node (4)."
)
@click.option(
    "--dom0-memory", default=1024, type=click.IntRange(0), metavar="MiB", help="dom0's MiB (1024)."
)
@click.option(
    "--from",
    "toml",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="A host described in TOML.",
)
@click.option(
    "--xen",
    type=click.Choice(list(RELEASES)),
    metavar="RELEASE",
    help=f"The Xen release the host speaks: {', '.join(RELEASES)} (master, or the TOML's).",
)
@click.pass_context
def host_init(
    ctx: click.Context,
    nodes: int,
    node_memory: int,
    cpus: int,
    dom0_memory: int,
    toml: str | None,
    xen: str | None,
) -> None:
    """Boot a new emulated host, replacing the current one."""
    config = (
        load_host(toml)
        if toml
        else make_host([node_memory] * nodes, cpus_per_node=cpus, dom0_memory=dom0_memory)
    )
    if xen is not None:
        config = config._replace(xen=xen)
    with session(ctx.obj["state"], new_host=config):
        pass
    click.echo(f"new host: {len(config.nodes)} nodes, state in {ctx.obj['state'].path}")


@host.command("show")
@click.pass_context
def host_show(ctx: click.Context) -> None:
    """Describe the emulated host."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.host_lines())


@xlemu.command(usage="[options]")
@click.option("--socket", type=click.Path(dir_okay=False), metavar="FILE", help="Where to listen.")
@click.pass_context
def serve(ctx: click.Context, socket: str | None) -> None:
    """Hold the host in a server for other processes until SIGTERM or SIGINT."""

    def ready(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    from xlemu.serving import serve_until_signalled

    serve_until_signalled(ctx.obj["state"], Path(socket) if socket else None, ready, _notice)


@xlemu.command(
    "exec", usage="[options] <Program> [args]", context_settings={"ignore_unknown_options": True}
)
@click.option(
    "--domid", type=click.IntRange(0, 0x7FEF), default=0, metavar="N", help="The calling domain."
)
@click.argument("program", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, domid: int, program: tuple[str, ...]) -> None:
    """Run a program linked against libxenctrl on the host; exit with its status."""
    from xlemu.serving import run_program

    ctx.exit(run_program(ctx.obj["state"], program, domid, _notice))


# -- entry point --------------------------------------------------------------------------------


_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f\udc80-\udcff]")
_ESCAPES = {"\t": "\\t", "\r": "\\r"}


def printable(text: str) -> str:
    """A message as xl prints it, made safe for a terminal: control characters (newlines
    apart) as C escapes, and bytes that were not UTF-8 (read as surrogate escapes) as \\xNN."""

    def escape(m: re.Match[str]) -> str:
        c = ord(m.group())
        return _ESCAPES.get(m.group()) or f"\\x{c & 0xFF:02x}"

    return _UNPRINTABLE.sub(escape, text)


def main(argv: list[str] | None = None) -> None:
    """Run a command; every failure ends as one line on stderr and xl's exit code."""
    try:
        # Without standalone mode click returns ctx.exit()'s code (no command: xl exits 1).
        code = xlemu.main(args=argv, prog_name="xlemu", standalone_mode=False)
    except ToolstackError as e:
        click.echo(printable(str(e)), err=True)
        sys.exit(e.exit_code)
    except XlUsageError as e:  # def_getopt: the line, and for missing arguments the help
        click.echo(e.message, err=True)
        if e.help_text is not None:
            click.echo(e.help_text, nl=False)
        sys.exit(e.exit_code)
    except click.UsageError as e:
        click.echo(f"xlemu: {e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except (StateError, HostConfigError) as e:
        click.echo(f"xlemu: {e}", err=True)
        sys.exit(1)
    except OSError as e:  # a file a command reads or writes: its name and why, as C tools say
        where = f"{e.filename}: " if e.filename is not None else ""
        click.echo(f"xlemu: {where}{e.strerror or e}", err=True)
        sys.exit(1)
    else:
        sys.exit(code if isinstance(code, int) else 0)
