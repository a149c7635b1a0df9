"""xl's command-line conventions, on click: a command table with xl's usage, description
and options text, looked up by unambiguous prefix (cmdtable_lookup in xl.c); help on
stdout in xl's layout (help in xl.c); usage errors in def_getopt's words and exit codes
(xl_utils.c); and the global options of xl.c main. The program calls itself ``xlemu``
where xl says ``xl``."""

from __future__ import annotations

from typing import Any

import click

from xlemu.toolstack import ToolstackError

PROG = "xlemu"


class XlUsageError(click.ClickException):
    """A usage error as def_getopt reports it: a line on stderr and exit 2; for too few
    arguments a blank line follows and the command's help goes to stdout."""

    exit_code = 2

    def __init__(self, message: str, help_text: str | None = None) -> None:
        super().__init__(message)
        self.help_text = help_text


def _show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(help_text(ctx.command, _words(ctx)), nl=False)
        ctx.exit(0)


def _words(ctx: click.Context) -> str:
    """The command's name after the program's: "list", "host init"."""
    return " ".join(ctx.command_path.split(" ")[1:])


def _help_option() -> click.Option:
    return click.Option(
        ["-h", "--help"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_show_help,
        hidden=True,
        help="Print this help.",
    )


class XlCommand(click.Command):
    """A command with its xl table entry: ``usage`` (cmd_usage), the docstring's first
    line (cmd_desc), ``options`` text (cmd_option; by default one line per option),
    ``modifies`` (accepts -f) and ``can_dryrun`` (accepts -N)."""

    def __init__(
        self,
        name: str | None,
        *,
        usage: str = "",
        options: str | None = None,
        modifies: bool = False,
        can_dryrun: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs["add_help_option"] = False
        super().__init__(name, **kwargs)
        self.params.append(_help_option())
        self.xl_usage, self.xl_options = usage, options
        self.modifies, self.can_dryrun = modifies, can_dryrun

    @property
    def description(self) -> str:
        return (self.help or "").strip().split("\n")[0].removesuffix(".")

    def options_text(self) -> str:
        """xl's layout: the option names in 24 columns, then what it does."""
        if self.xl_options is not None:
            return self.xl_options
        lines = []
        for p in self.params:
            if not isinstance(p, click.Option) or p.hidden:
                continue
            names = ", ".join(sorted(p.opts + p.secondary_opts, key=len))
            if not p.is_flag and p.metavar != "":
                names += f" {p.metavar or (p.name or '').upper()}"
            sep = " " * (24 - len(names)) if len(names) < 24 else "\n" + " " * 24
            lines.append(f"{names}{sep}{p.help or ''}")
        return "\n".join(lines)

    def required_arguments(self) -> int:
        return sum(
            max(p.nargs, 1) for p in self.params if isinstance(p, click.Argument) and p.required
        )

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(help_text(self, _words(ctx)))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except (click.NoSuchOption, click.BadOptionUsage) as e:
            # getopt's optopt: the option letter (xl prints a NUL for a long option)
            name = getattr(e, "option_name", None) or ""
            letter = name[1:] if name.startswith("-") and not name.startswith("--") else name
            raise XlUsageError(f"option `{letter}' not supported.") from None
        except click.MissingParameter as e:
            if not isinstance(e.param, click.Argument):
                raise
            n = self.required_arguments()
            raise XlUsageError(
                f"'{PROG} {_words(ctx)}' requires at least {n} argument{'s' if n > 1 else ''}.\n",
                help_text(self, _words(ctx)),
            ) from None


class XlGroup(click.Group):
    """Commands by exact name or unambiguous prefix among the visible ones (cmdtable_lookup
    in xl.c), listed in the order they were defined, as xl's table lists them."""

    command_class = XlCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        exact = self.commands.get(cmd_name)
        if exact is not None:
            return exact
        matches = [
            c for c, cmd in self.commands.items() if c.startswith(cmd_name) and not cmd.hidden
        ]
        return self.commands[matches[0]] if len(matches) == 1 else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        command = self.get_command(ctx, args[0])
        if command is None:
            raise ToolstackError("command not implemented")
        root = ctx.find_root()
        if root.params.get("dryrun") and not getattr(command, "can_dryrun", False):
            raise ToolstackError("command does not implement -N (dryrun) option")
        return command.name, command, args[1:]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(help_text(self, _words(ctx)))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except (click.NoSuchOption, click.BadOptionUsage):  # xl.c main
            raise ToolstackError("unknown global option") from None


def help_text(command: click.Command, words: str = "") -> str:
    """What ``xl help [COMMAND]`` prints (help in xl.c): for a group the full list of its
    commands, for a command its usage line, description and options. ``words`` name the
    command after the program ("" for the program itself, "host init")."""
    name = f"{PROG} {words}".rstrip()
    if isinstance(command, XlGroup):
        usage = GLOBAL_USAGE if not words else ""
        lines = [
            f"Usage {name}{usage} <subcommand> [args]",
            "",
            f"{name} full list of subcommands:",
            "",
        ]
        for cmd_name, cmd in command.commands.items():
            if cmd.hidden:
                continue
            desc = cmd.description if isinstance(cmd, XlCommand) else (cmd.help or "").strip()
            wrap = f"\n {'':<19} " if len(cmd_name) > 19 else ""
            lines.append(f" {cmd_name:<19} {wrap}{desc.split(chr(10))[0]}")
        return "\n".join(lines) + "\n"
    assert isinstance(command, XlCommand)
    flags = "f" * command.modifies + "N" * command.can_dryrun
    text = f"Usage: {PROG} [-vtT{flags}] {words} {command.xl_usage}\n\n{command.description}.\n\n"
    if options := command.options_text():
        text += f"Options:\n\n{options}\n"
    return text


GLOBAL_USAGE = " [-vfNtT] [--state FILE] [--trace]"
