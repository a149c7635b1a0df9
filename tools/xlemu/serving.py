"""Serving a state file's host to other processes: ``xlemu serve`` and ``xlemu exec``.

A server loads the host under the state's lock, advertises itself beside the state file
(:mod:`xlemu.served`), and from then on every ``xlemu`` command on that file reaches the
host through it. It saves the host into the state file (under the lock, atomically) as it
changes and when it stops; the commands keep saving the xenstore themselves.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from xenhost import bridge
from xenhost.server import SOCKET_PATH_MAX, HostServer

from hypervisor_model.snapshot import StateError
from xlemu.served import advertise, served_by
from xlemu.state import Notice, StateFile, locked, prepare, read_state, save_part
from xlemu.toolstack import ToolstackError

EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 127, 126  # as shells report them


def default_socket(state: Path) -> Path:
    """Beside the state file when the path fits a socket address, else in the runtime
    directory under a name keyed by the state's path."""
    beside = state.with_name(state.name + ".sock").absolute()
    if len(os.fsencode(beside)) <= SOCKET_PATH_MAX:
        return beside
    key = hashlib.sha256(os.fsencode(state.absolute())).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(runtime) / f"xlemu-{key}.sock"


@contextmanager
def serving(
    sf: StateFile, socket: Path | None = None, notice: Notice | None = None
) -> Iterator[HostServer]:
    """Hold the state's host in a server in this process while inside; save it on leaving."""
    path = sf.path
    prepare(sf, notice=notice)
    with ExitStack() as stack:
        with locked(path):
            if (advert := served_by(path)) is not None:
                raise StateError(f"{path}: already served by pid {advert.pid} at {advert.socket}")
            hv, _ = read_state(path)

            def save(doc: dict[str, Any]) -> None:
                with locked(path):
                    save_part(path, "host", doc)

            server = stack.enter_context(HostServer(hv, socket or default_socket(path), save=save))
            stack.enter_context(advertise(path, server.path))
        yield server
        stack.pop_all().close()  # stop serving (and save) before the advertisement goes


@contextmanager
def served_socket(sf: StateFile, notice: Notice | None = None) -> Iterator[Path]:
    """The socket of the server holding the state: the one serving it, else one started
    in this process for the time inside."""
    if (advert := served_by(sf.path)) is not None:
        yield advert.socket
        return
    with serving(sf, notice=notice) as server:
        yield server.path


def serve_until_signalled(
    sf: StateFile, socket: Path | None, ready: Notice, notice: Notice | None = None
) -> None:
    """``xlemu serve``: serve until SIGTERM or SIGINT, then save and stop. ``ready`` is
    told where, once clients can connect."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        with serving(sf, socket, notice=notice) as server:
            ready(f"serving {sf.path} on {server.path} (pid {os.getpid()})")
            while not stop.wait(3600):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_program(
    sf: StateFile, argv: Sequence[str], domid: int = 0, notice: Notice | None = None
) -> int:
    """``xlemu exec``: run ``argv`` with the privcmd bridge against the state's host and
    return its exit status (128 + N if a signal N ended it, as shells report)."""
    try:
        bridge.library()  # built before a server starts: no compiler, no server
    except bridge.BridgeError as e:
        raise ToolstackError(f"xlemu: {e}") from None
    with served_socket(sf, notice) as socket:
        env = bridge.environment(socket, domid)
        try:
            child = subprocess.Popen(list(argv), env=env)
        except FileNotFoundError:
            raise ToolstackError(f"xlemu: exec: {argv[0]}: not found", EXIT_NOT_FOUND) from None
        except PermissionError:
            raise ToolstackError(
                f"xlemu: exec: {argv[0]}: permission denied", EXIT_NOT_EXECUTABLE
            ) from None
        # The terminal's ^C reaches the program; we wait for it, then stop in order.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        forward = signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            status = child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, forward)
    return 128 - status if status < 0 else status
