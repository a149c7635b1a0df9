"""The ``xlemu`` command line: a thin click shell over :mod:`xlemu.toolstack`.

Commands, output formats and exit codes follow ``xl``; any unambiguous prefix of a command
works, as in xl. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click
from xenhost.xenstore import XenstoreError

from hypervisor_model.host import MAX_NUMNODES, NR_CPUS, HostConfigError, load_host, make_host
from hypervisor_model.public.releases import RELEASES
from hypervisor_model.snapshot import StateError
from xenctrl.trace import Trace
from xlemu import picture
from xlemu.create import create_domain, read_xl_conf
from xlemu.create import storm as create_storm
from xlemu.serving import run_program, serve_until_signalled, served
from xlemu.state import StateFile, session, state_file
from xlemu.toolstack import Toolstack, ToolstackError


class PrefixGroup(click.Group):
    """Commands by exact name or unambiguous prefix (cmdtable_lookup in xl.c)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        exact = super().get_command(ctx, cmd_name)
        if exact is not None:
            return exact
        matches = [c for c in self.list_commands(ctx) if c.startswith(cmd_name)]
        return super().get_command(ctx, matches[0]) if len(matches) == 1 else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        command = self.get_command(ctx, args[0])
        if command is None:
            raise ToolstackError("command not implemented")
        return command.name, command, args[1:]


@click.group(
    cls=PrefixGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--state", "state", metavar="FILE", help="The host's state file ($XLEMU_STATE).")
@click.option("--trace", is_flag=True, help="Print every layer of every call on stderr.")
@click.pass_context
def xlemu(ctx: click.Context, state: str | None, trace: bool) -> None:
    """An xl-like toolstack on a persistent emulated Xen host."""
    ctx.obj = {"state": state_file(state), "trace": trace}
    if ctx.invoked_subcommand is None:  # xl prints the full help and fails
        click.echo(ctx.get_help(), err=True)
        ctx.exit(1)


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
            with Trace(sys.stderr) if ctx.obj["trace"] else nullcontext():
                yield ts
        except ToolstackError as e:
            failure = e
        except XenstoreError as e:  # xl's libxl would log it and fail the command
            failure = ToolstackError(f"libxl: error: xenstore: {e}")
    if failure is not None:
        raise failure


def _notice(text: str) -> None:
    click.echo(f"xlemu: {text}", err=True)


def echo_lines(lines: list[str]) -> None:
    if lines:  # `xl info NOSUCHFIELD` prints nothing at all (maybe_printf in xl_info.c)
        click.echo("\n".join(lines))


# -- information ----------------------------------------------------------------------------------


@xlemu.command()
@click.option("-n", "--numa", is_flag=True, help="List host NUMA topology information")
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


@xlemu.command("list")
@click.option("-n", "--numa", is_flag=True, help="Print the node affinity of each domain")
@click.argument("domain", required=False)
@click.pass_context
def list_(ctx: click.Context, numa: bool, domain: str | None) -> None:
    """List information about all/some domains."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.list_lines(domain, numa=numa))


@xlemu.command()
@click.option("--nodes", is_flag=True, help="Each domain's claim per node and host-wide (MiB).")
@click.pass_context
def claims(ctx: click.Context, nodes: bool) -> None:
    """List outstanding claim information about all domains."""
    with toolstack(ctx, save=False) as ts:
        if ts.conf.claim_mode == "off":
            click.echo("claim_mode not enabled (see man xl.conf).", err=True)
        echo_lines(ts.claims_node_lines() if nodes else ts.list_lines(claims=True))


@xlemu.command()
@click.argument("name")
@click.pass_context
def domid(ctx: click.Context, name: str) -> None:
    """Convert a domain name to domain id."""
    with toolstack(ctx, save=False) as ts:
        if name.isdigit() or (found := ts.find_domain_by_name(name)) is None:
            raise ToolstackError(
                f"Can't get domid of domain name '{name}', maybe this domain does not exist."
            )
        click.echo(found)


@xlemu.command()
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


@xlemu.command()
@click.option("-c", "clear", is_flag=True, help="Clear the buffer after reading it.")
@click.pass_context
def dmesg(ctx: click.Context, clear: bool) -> None:
    """Read and/or clear dmesg buffer."""
    with toolstack(ctx, save=clear) as ts:
        click.echo(ts.dmesg(clear), nl=False)


@xlemu.command("debug-keys")
@click.argument("keys")
@click.pass_context
def debug_keys(ctx: click.Context, keys: str) -> None:
    """Send debug keys to Xen."""
    with toolstack(ctx) as ts:
        ts.debug_keys(keys)


# -- domains ------------------------------------------------------------------------------------


@xlemu.command()  # unknown options fail, as getopt does in main_create
@click.option("-p", "paused", is_flag=True, help="Leave the domain paused after it is created.")
@click.option("-q", "--quiet", is_flag=True, help="Quiet.")
@click.argument("config")
@click.argument("extra", nargs=-1)
@click.pass_context
def create(
    ctx: click.Context, paused: bool, quiet: bool, config: str, extra: tuple[str, ...]
) -> None:
    """Create a domain from config file <filename>."""
    if "=" in config:
        extra, config = (config, *extra), "/dev/null"

    def announce(source: str) -> None:
        if not quiet:
            click.echo(f"Parsing config from {source}", err=True)

    with toolstack(ctx) as ts:
        create_domain(
            ts, config, list(extra), paused=paused, progress=_progress_bar, announce=announce
        )


@contextmanager
def _progress_bar(total: int) -> Iterator[Any]:
    """click's progress bar while a big domain is populated, on a terminal only."""
    if total < (1 << 18) or not sys.stdout.isatty():
        yield lambda pages: None
        return
    with click.progressbar(length=total, label="Populating", file=sys.stderr) as bar:
        done = [0]

        def update(pages: int) -> None:
            bar.update(pages - done[0])
            done[0] = pages

        yield update


@xlemu.command()
@click.option("-f", "force", is_flag=True, help="Allow domain 0 to be destroyed.")
@click.argument("domain")
@click.pass_context
def destroy(ctx: click.Context, force: bool, domain: str) -> None:
    """Terminate a domain immediately."""
    with toolstack(ctx) as ts:
        ts.destroy(domain, force)


@xlemu.command("mem-max")
@click.argument("domain")
@click.argument("mem")
@click.pass_context
def mem_max(ctx: click.Context, domain: str, mem: str) -> None:
    """Set the maximum amount reservation for a domain."""
    with toolstack(ctx) as ts:
        ts.mem_max(domain, mem)


@xlemu.command("mem-set")
@click.argument("domain")
@click.argument("mem")
@click.pass_context
def mem_set(ctx: click.Context, domain: str, mem: str) -> None:
    """Set the current memory usage for a domain."""
    with toolstack(ctx) as ts:
        ts.mem_set(domain, mem)


@xlemu.command()
@click.argument("domain")
@click.pass_context
def pause(ctx: click.Context, domain: str) -> None:
    """Pause execution of a domain."""
    with toolstack(ctx) as ts:
        ts.pause(domain)


@xlemu.command()
@click.argument("domain")
@click.pass_context
def unpause(ctx: click.Context, domain: str) -> None:
    """Unpause a paused domain."""
    with toolstack(ctx) as ts:
        ts.pause(domain, unpause=True)


# -- beyond xl ------------------------------------------------------------------------------------


@xlemu.command("claim-set")
@click.option("--clear", is_flag=True, help="Release every claim of the domain.")
@click.argument("domain")
@click.argument("targets", nargs=-1)
@click.pass_context
def claim_set(ctx: click.Context, clear: bool, domain: str, targets: tuple[str, ...]) -> None:
    """Install a NUMA claim set: TARGET=SIZE with TARGET node<N> or host (node0=2G host=512M)."""
    with toolstack(ctx) as ts:
        ts.claim_set(domain, targets, clear)


@xlemu.command()
@click.option(
    "--claim-mode",
    type=click.Choice(["legacy", "numa", "off"]),
    default=None,
    help="Claim mode of every build (default: xl.conf's).",
)
@click.option(
    "--processes", is_flag=True, help="Each builder a process of its own, on a host server."
)
@click.argument("count", type=click.IntRange(1, 4096))
@click.argument("config")
@click.pass_context
def storm(
    ctx: click.Context, claim_mode: str | None, processes: bool, count: int, config: str
) -> None:
    """Create COUNT domains from CONFIG at once, each as `create` builds it; how each fared."""
    held = served(ctx.obj["state"], _notice) if processes else nullcontext()
    with held, toolstack(ctx) as ts:
        report = create_storm(ts, config, count, claim_mode, processes=processes)  # type: ignore[arg-type]
    click.echo(report.table())
    if not report.count("admitted"):  # every create failed: as one failed create exits
        ctx.exit(3)


@xlemu.command("numa-picture")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False), help="Also write an SVG.")
@click.option("--width", default=50, show_default=True, help="Bar width in characters.")
@click.pass_context
def numa_picture(ctx: click.Context, svg_file: str | None, width: int) -> None:
    """Picture NUMA memory: per-node bars of each domain's pages, claims and free memory."""
    with toolstack(ctx, save=False) as ts:
        memory = ts.memory_picture()
    click.echo(picture.bars(memory, width))
    if svg_file:
        Path(svg_file).write_text(picture.svg(memory), encoding="utf-8")


@xlemu.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx: click.Context, args: tuple[str, ...]) -> None:
    """The NUMA picture's old name (xl's top is xentop)."""
    click.echo("xlemu: `top` is xl's xentop; the NUMA picture is now `numa-picture`", err=True)
    ctx.invoke(numa_picture, **numa_picture.make_context("numa-picture", list(args)).params)


# -- other processes ----------------------------------------------------------------------------


@xlemu.command()
@click.option("--socket", type=click.Path(dir_okay=False), help="Where to listen.")
@click.pass_context
def serve(ctx: click.Context, socket: str | None) -> None:
    """Hold the host in a server for other processes until SIGTERM or SIGINT."""

    def ready(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    serve_until_signalled(ctx.obj["state"], Path(socket) if socket else None, ready, _notice)


@xlemu.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--domid", type=click.IntRange(0, 0x7FEF), default=0, help="The calling domain.")
@click.argument("program", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, domid: int, program: tuple[str, ...]) -> None:
    """Run PROGRAM (linked against libxenctrl) against the host; exit with its status."""
    ctx.exit(run_program(ctx.obj["state"], program, domid, _notice))


# -- the host -----------------------------------------------------------------------------------


@xlemu.group(cls=PrefixGroup)
def host() -> None:
    """Create or describe the emulated host."""


@host.command("init")
@click.option(
    "--nodes",
    default=2,
    show_default=True,
    type=click.IntRange(1, MAX_NUMNODES),
    help="Number of NUMA nodes.",
)
@click.option(
    "--node-memory", default=16384, show_default=True, type=click.IntRange(0), help="MiB per node."
)
@click.option(
    "--cpus", default=4, show_default=True, type=click.IntRange(0, NR_CPUS), help="CPUs per node."
)
@click.option(
    "--dom0-memory",
    default=1024,
    show_default=True,
    type=click.IntRange(0),
    help="dom0's memory in MiB.",
)
@click.option("--from", "toml", type=click.Path(exists=True, dir_okay=False), help="A host TOML.")
@click.option(
    "--xen",
    type=click.Choice(list(RELEASES)),
    help="The Xen release the host speaks  [default: master, or the TOML's]",
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
        config = dataclasses.replace(config, xen=xen)
    with session(ctx.obj["state"], new_host=config):
        pass
    click.echo(f"new host: {len(config.nodes)} nodes, state in {ctx.obj['state'].path}")


@host.command("show")
@click.pass_context
def host_show(ctx: click.Context) -> None:
    """Describe the emulated host."""
    with toolstack(ctx, save=False) as ts:
        echo_lines(ts.host_lines())


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
    except click.UsageError as e:
        click.echo(f"xlemu: {e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except (StateError, HostConfigError) as e:
        click.echo(f"xlemu: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"xlemu: {e}", err=True)
        sys.exit(1)
    else:
        sys.exit(code if isinstance(code, int) else 0)
