"""Helpers for the xlemu tests: ``Xl`` runs one command through ``xlemu.cli.main`` (what the
console script runs, so errors are rendered and exit codes are xl's) on a state file and an
xl.conf of its own, and returns the exit code, stdout and stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from xlemu.cli import main


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
