"""Where the emulated host lives between commands, and how it is kept safe.

One state file holds the machine (the hypervisor's saved state) and the toolstack's own
records (names and configured sizes, as xl keeps them in xenstore). Each command holds an
exclusive lock on it, so concurrent ``xlemu`` processes serialize and lose no update, and
writes are atomic (temporary file, fsync, rename), so a crash leaves the old or the new
state, never a torn one. ``XLEMU_TEST_SLOW_WRITE=SECONDS`` (tests only) sleeps between the
complete temporary file and the rename, so a test can kill a command at that moment.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypervisor_model import HostConfig, Hypervisor, make_host
from hypervisor_model.snapshot import StateError, load_state, save_state

FORMAT = "xlemu-state"
VERSION = 1
DEFAULT_HOST: dict[str, Any] = dict(nodes=[16384, 16384], dom0_memory=1024)  # dom0 1 GiB


@dataclass
class DomainRecord:
    """What xl keeps in xenstore for a domain: its name and the sizes it was built with."""

    name: str
    type: str = "hvm"
    memory_kb: int = 0  # target (memory/target)
    maxmem_kb: int = 0  # static max (memory/static-max)
    video_kb: int = 0
    vcpus: int = 1


@dataclass
class Records:
    domains: dict[int, DomainRecord] = field(default_factory=dict)


def state_path(option: str | None = None) -> Path:
    """The state file: the option, else $XLEMU_STATE, else the user's state directory."""
    if option:
        return Path(option)
    if env := os.environ.get("XLEMU_STATE"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "xlemu" / "host.json"


def _records_from(doc: Any) -> Records:
    return Records({int(k): DomainRecord(**v) for k, v in doc.get("domains", {}).items()})


def read_state(path: Path) -> tuple[Hypervisor, Records]:
    """Load a saved state; StateError for anything that is not a state this version reads."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StateError(f"{path}: damaged state: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"{path}: expected an {FORMAT} file")
    if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
        raise StateError(
            f"{path}: expected state version {VERSION} or older, got {doc.get('version')!r}"
        )
    try:
        return load_state(doc["host"]), _records_from(doc.get("xenstore", {}))
    except StateError as e:
        raise StateError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # e.g. "xenstore": 5
        raise StateError(f"{path}: damaged state: {e}") from None


def write_state(path: Path, hv: Hypervisor, records: Records) -> None:
    """Replace the state file atomically: a reader sees the old state or the new one."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "host": save_state(hv),
        "xenstore": {"domains": {str(k): asdict(v) for k, v in records.domains.items()}},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    if slow := os.environ.get("XLEMU_TEST_SLOW_WRITE"):  # tests: a window to SIGKILL us in
        time.sleep(float(slow))
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the host's lock (a sibling lock file) for the whole command."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def session(
    path: Path, *, save: bool = True, new_host: HostConfig | None = None
) -> Iterator[tuple[Hypervisor, Records]]:
    """The host for one command, under the lock; saved afterwards when ``save``.

    The first command on a missing state boots the default host; ``new_host`` boots a
    fresh one instead of loading (``xlemu host init``).
    """
    with locked(path):
        if new_host is not None:
            hv, records = Hypervisor(new_host), Records()
            save = True
        elif path.exists():
            hv, records = read_state(path)
        else:
            hv, records = Hypervisor(make_host(**DEFAULT_HOST)), Records()
            save = True
        yield hv, records
        if save:
            write_state(path, hv, records)
