"""Helpers for the xlemu tests: ``Xl`` runs one command through ``xlemu.cli.main`` (what the
console script runs, so errors are rendered and exit codes are xl's) on a state file and an
xl.conf of its own, and returns the exit code, stdout and stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from xenhost.xenstore import XsHandle
from xlemu.cli import main
from xlemu.create import create_domain
from xlemu.state import new_xenstore
from xlemu.toolstack import Toolstack, XlConf

from hypervisor_model import Hypervisor, make_host


@dataclass
class Run:
    """One finished command."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class Xl:
    """An ``xlemu`` for one test: ``xl("list", "-n")``; state and xl.conf in ``dir``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.state = directory / "host.json"
        self.xl_conf = directory / "xl.conf"
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Run:
        with self.runner.isolation() as (out, err, _):
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            else:  # main() always exits
                raise AssertionError("xlemu.cli.main returned without exiting")
            sys.stdout.flush()  # what print() left in the text layers
            sys.stderr.flush()
            return Run(code, out.getvalue().decode(), err.getvalue().decode())

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its stdout."""
        run = self(*args)
        assert run.code == 0, f"xlemu {' '.join(args)} -> {run.code}: {run.err}"
        return run.out

    def config(self, name: str, text: str) -> str:
        """Write a domain config file; its path."""
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def claim_mode(self, mode: str) -> None:
        """xl.conf's claim_mode: a number as xl writes it, or a name (xlemu's extension)."""
        value = mode if mode.isdigit() else f'"{mode}"'
        self.xl_conf.write_text(f"claim_mode = {value}\n", encoding="utf-8")


def toolstack(
    nodes: tuple[int, ...] = (4096, 4096), *, dom0: int = 512, mode: str = "legacy"
) -> Toolstack:
    """The toolstack library on a fresh host: ``nodes`` MiB each, 4 CPUs per node, dom0
    ``dom0`` MiB, an empty xenstore."""
    hv = Hypervisor(make_host(list(nodes), cpus_per_node=4, dom0_memory=dom0))
    xs = XsHandle.local(new_xenstore())
    return Toolstack(hv, xs, XlConf(claim_mode=mode))  # type: ignore[arg-type]


def create(ts: Toolstack, *lines: str, paused: bool = False) -> int:
    """``xl create /dev/null KEY=VALUE...``: the domid."""
    return create_domain(ts, "/dev/null", list(lines), paused=paused)
