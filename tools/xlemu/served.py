"""Which host server holds a state file: the advertisement beside it.

A server holding ``host.json`` puts ``host.json.server`` beside it (its sockets and pid) and
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
from pathlib import Path
from typing import IO, NamedTuple

from hypervisor_model.snapshot import StateError


class Advert(NamedTuple):
    """Where a state's host is served: hypercalls, the xenstore, and by which process."""

    socket: Path
    xenstore: Path
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
            return Advert(Path(doc["socket"]), Path(doc["xenstore"]), int(doc["pid"]))
        except (ValueError, KeyError, TypeError):
            raise StateError(f"{path}: expected a host server's sockets and pid") from None


class Advertisement:
    """This process's advertisement for one state: published once its server listens,
    withdrawn when the server has stopped."""

    def __init__(self, state: Path) -> None:
        self.path = advert_path(state)
        self._file: IO[str] | None = None

    def publish(self, advert: Advert) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        f = self._file = open(tmp, "w", encoding="utf-8")  # noqa: SIM115
        fcntl.flock(f, fcntl.LOCK_EX)  # the lock stays with the file through the rename
        doc = {"socket": str(advert.socket), "xenstore": str(advert.xenstore), "pid": advert.pid}
        json.dump(doc, f)
        f.flush()
        os.replace(tmp, self.path)

    def withdraw(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()
            self._file = None


@contextmanager
def advertisement(state: Path) -> Iterator[Advertisement]:
    """An advertisement to publish inside, withdrawn on leaving."""
    ad = Advertisement(state)
    try:
        yield ad
    finally:
        ad.withdraw()
