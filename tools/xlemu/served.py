"""Which host server holds a state file: the advertisement beside it.

A server holding ``host.json`` puts ``host.json.server`` beside it (its socket and pid) and
keeps an exclusive lock on that file as long as it lives. The kernel drops the lock when
the process dies, however it dies, so an advertisement nobody holds is stale and ignored.
The file is complete before it appears (written aside, locked, renamed into place).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypervisor_model.snapshot import StateError


@dataclass(frozen=True)
class Advert:
    socket: Path
    pid: int


def advert_path(state: Path) -> Path:
    return state.with_name(state.name + ".server")


def served_by(state: Path) -> Advert | None:
    """The live server holding ``state``, or None."""
    path = advert_path(state)
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"{path}: {e.strerror}") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: its server lives
        else:
            return None  # nobody holds it: its server died
        try:
            doc = json.loads(f.read(4096))
            return Advert(Path(doc["socket"]), int(doc["pid"]))
        except (ValueError, KeyError, TypeError):
            raise StateError(f"{path}: expected a host server's socket and pid") from None


@contextmanager
def advertise(state: Path, socket: Path) -> Iterator[None]:
    """Advertise this process's server at ``socket`` as holding ``state`` while inside."""
    path = advert_path(state)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # the lock stays with the file through the rename
        json.dump({"socket": str(socket.absolute()), "pid": os.getpid()}, f)
        f.flush()
        os.replace(tmp, path)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
