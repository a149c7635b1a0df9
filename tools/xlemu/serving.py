"""Serving a state file's host to other processes: ``xlemu serve`` and ``xlemu exec``.

A server loads the host and its xenstore under the state's lock, serves hypercalls and the
xenstore on sockets of their own, and advertises itself beside the state file
(:mod:`xlemu.served`); from then on every ``xlemu`` command on that file reaches the host
and the xenstore through it, as ``xl`` does. It saves the state (under the lock,
atomically) when either changed, forgetting in the xenstore the domains that died as
xenstored does, and once more when it stops.
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
from xenhost.xenstore import XenstoreServer

from hypervisor_model.snapshot import StateError
from xlemu.served import Advert, advertisement, served_by
from xlemu.state import (
    Notice,
    StateFile,
    forget_dead_domains,
    locked,
    prepare,
    read_state,
    write_saved,
)
from xlemu.toolstack import ToolstackError

EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 127, 126  # as shells report them
XEN_RUN_DIR = Path("/var/run/xen")  # libxl's lock files (domid history); built in, no variable


def default_socket(state: Path, suffix: str) -> Path:
    """Beside the state file when the path fits a socket address, else in the runtime
    directory under a name keyed by the state's path."""
    beside = state.with_name(state.name + suffix).absolute()
    if len(os.fsencode(beside)) <= SOCKET_PATH_MAX:
        return beside
    key = hashlib.sha256(os.fsencode(state.absolute())).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(runtime) / f"xlemu-{key}{suffix}"


@contextmanager
def serving(
    sf: StateFile, socket: Path | None = None, notice: Notice | None = None
) -> Iterator[Advert]:
    """Serve the state's host and xenstore from this process while inside; save on leaving."""
    path = sf.path
    prepare(sf, notice=notice)
    with ExitStack() as stack:  # left in reverse: xenstore, host (final save), advertisement
        ad = stack.enter_context(advertisement(path))
        with locked(path):
            if (held := served_by(path)) is not None:
                raise StateError(f"{path}: already served by pid {held.pid} at {held.socket}")
            hv, store = read_state(path)
            saved_generation = store.generation

            def changed() -> bool:
                return store.generation != saved_generation

            def save(host: dict[str, Any]) -> None:
                nonlocal saved_generation
                forget_dead_domains(hv, store)
                generation = store.generation
                with locked(path):
                    write_saved(path, host, store)
                saved_generation = generation

            server = HostServer(
                hv, socket or default_socket(path, ".sock"), save=save, changed=changed
            )
            stack.enter_context(server)
            xenstored = XenstoreServer(store)
            stack.callback(xenstored.close)
            xenstored.start(default_socket(path, ".xenstored"))
            assert xenstored.path is not None
            advert = Advert(server.path.absolute(), xenstored.path.absolute(), os.getpid())
            ad.publish(advert)
        yield advert


@contextmanager
def served(sf: StateFile, notice: Notice | None = None) -> Iterator[Advert]:
    """Where the state is served: by the server holding it, else by one started in this
    process for the time inside."""
    if (advert := served_by(sf.path)) is not None:
        yield advert
        return
    with serving(sf, notice=notice) as advert:
        yield advert


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
        with serving(sf, socket, notice=notice) as advert:
            ready(
                f"serving {sf.path} on {advert.socket}, xenstore on {advert.xenstore}"
                f" (pid {advert.pid})"
            )
            while not stop.wait(3600):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def program_environment(advert: Advert, domid: int) -> dict[str, str]:
    """A program's environment against a served host: the privcmd bridge preloaded and
    libxenstore aimed at the host's xenstore ($XENSTORED_PATH)."""
    return {**bridge.environment(advert.socket, domid), "XENSTORED_PATH": str(advert.xenstore)}


def run_program(
    sf: StateFile, argv: Sequence[str], domid: int = 0, notice: Notice | None = None
) -> int:
    """``xlemu exec``: run ``argv`` against the state's host and return its exit status
    (128 + N if a signal N ended it, as shells report)."""
    try:
        bridge.library()  # built before a server starts: no compiler, no server
    except bridge.BridgeError as e:
        raise ToolstackError(f"xlemu: {e}") from None
    try:  # libxl keeps its lock files there; without it xl destroy fails
        XEN_RUN_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if notice is not None:
            notice(f"cannot make {XEN_RUN_DIR} ({e.strerror}): libxl needs it to destroy domains")
    with served(sf, notice) as advert:
        try:
            child = subprocess.Popen(list(argv), env=program_environment(advert, domid))
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
