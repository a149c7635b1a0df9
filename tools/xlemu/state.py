"""Where the emulated host lives between commands, and how it is kept safe.

One state file holds the machine (the hypervisor's saved state) and the toolstack's own
records (names and configured sizes, as xl keeps them in xenstore). A command that changes
the host holds an exclusive lock on it (a sibling lock file), so concurrent ``xlemu``
processes serialize and lose no update; writes are atomic (temporary file, fsync, rename),
so a crash leaves the old state or the new one, never a torn one, and the next writer
removes what a killed one left. A command that only reads takes no lock and writes nothing:
the rename makes every read see a whole state, and a read-only host can be inspected.
Only ``host init`` makes a host, except at the default location, which the first command
may fill with the default host. ``XLEMU_TEST_SLOW_WRITE=SECONDS`` (tests only) sleeps
between the complete temporary file and the rename, so a test can kill a command there.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypervisor_model import HostConfig, Hypervisor, make_host
from hypervisor_model.public.xen import DOMID_FIRST_RESERVED
from hypervisor_model.schema import (
    U32,
    U64,
    Int,
    Map,
    OneOf,
    Record,
    SchemaError,
    Str,
    describe,
    read_json,
)
from hypervisor_model.snapshot import StateError, load_state, save_state
from xenctrl.handle import Host
from xenctrl.remote import RemoteHost
from xlemu.served import served_by

Notice = Callable[[str], None]
FORMAT = "xlemu-state"
VERSION = 1
DEFAULT_NODES, DEFAULT_DOM0_MIB = [16384, 16384], 1024  # 2 x 16 GiB, dom0 1 GiB


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


# The toolstack's records, as saved under "xenstore"; every key of a record is a field of
# DomainRecord (a new field needs its shape here).
RECORD_SCHEMA = Record(
    {
        "name": Str(1024),
        "type": OneOf(("hvm", "pv", "pvh")),
        "memory_kb": Int(0, U64),
        "maxmem_kb": Int(0, U64),
        "video_kb": Int(0, U64),
        "vcpus": Int(0, U32),
    },
    optional=frozenset({"type", "memory_kb", "maxmem_kb", "video_kb", "vcpus"}),
)
RECORDS_SCHEMA = Record(
    {"domains": Map(Str(5, "0|[1-9][0-9]*"), RECORD_SCHEMA, DOMID_FIRST_RESERVED)},
    optional=frozenset({"domains"}),
)
_KEYS = {"format", "version", "host", "xenstore"}


class MissingState(StateError):
    """No state file where one was named: only ``host init`` makes a host there."""


def _missing(path: Path) -> MissingState:
    return MissingState(f"{path}: no such host state; `xlemu --state {path} host init` makes one")


def default_host() -> HostConfig:
    """What the first command boots at the default place (and what ``host init`` boots)."""
    return make_host(DEFAULT_NODES, dom0_memory=DEFAULT_DOM0_MIB)


def _records_from(doc: dict[str, Any]) -> Records:
    return Records({int(k): DomainRecord(**v) for k, v in doc.get("domains", {}).items()})


def _read_doc(path: Path) -> dict[str, Any]:
    """The state document with its envelope and records checked (the host is not loaded)."""
    try:
        with open(path, "rb") as f:
            doc = read_json(f)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise StateError(f"{path}: {e.strerror}") from None
    except SchemaError as e:
        raise StateError(f"{path}: damaged state: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"{path}: expected an {FORMAT} file")
    version = doc.get("version")
    if type(version) is not int or version > VERSION:
        raise StateError(
            f"{path}: expected state version {VERSION} or older, got {describe(version)}"
        )
    try:
        if unknown := doc.keys() - _KEYS:
            raise SchemaError(f"unexpected key {describe(min(unknown))}")
        if "host" not in doc:
            raise SchemaError("missing key 'host'")
        try:
            RECORDS_SCHEMA.check(doc.get("xenstore", {}))
        except SchemaError as e:
            raise e.at("xenstore") from None
    except SchemaError as e:
        raise StateError(f"{path}: damaged state: {e}") from None
    return doc


def read_state(path: Path) -> tuple[Hypervisor, Records]:
    """Load a saved state; StateError (one short line naming the file) for anything that
    is not a state this version reads. Its size and shape are checked before it is used."""
    doc = _read_doc(path)
    try:
        hv = load_state(doc["host"], within="host")
    except SchemaError as e:
        raise StateError(f"{path}: damaged state: {e}") from None
    except StateError as e:
        raise StateError(f"{path}: {e}") from None
    return hv, _records_from(doc.get("xenstore", {}))


def read_records(path: Path) -> Records:
    """The toolstack's records alone, for a command whose host is held by a server."""
    return _records_from(_read_doc(path).get("xenstore", {}))


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temporaries(path: Path) -> None:
    """Remove what writers killed between write and rename left behind. Call it under the
    lock: then no other writer is running, so every temporary file is stale."""
    stale = re.compile(rf"\.{re.escape(path.name)}\.[0-9]+\.tmp")
    for entry in path.parent.iterdir():
        if stale.fullmatch(entry.name):
            entry.unlink(missing_ok=True)


def _records_doc(records: Records) -> dict[str, Any]:
    return {"domains": {str(k): asdict(v) for k, v in records.domains.items()}}


def write_state(path: Path, hv: Hypervisor, records: Records) -> None:
    """Replace the state file atomically: a reader sees the old state or the new one."""
    doc = {"host": save_state(hv), "xenstore": _records_doc(records)}
    _write_doc(path, {"format": FORMAT, "version": VERSION, **doc})


def save_part(path: Path, key: str, value: dict[str, Any]) -> None:
    """Replace one part of the state ("host" or "xenstore"), keeping the other: while a
    server holds the state, it saves the host and the commands save their records. Call it
    under the lock."""
    try:
        doc = _read_doc(path)
    except StateError:
        doc = {}  # gone or damaged: what this writer owns is still worth keeping
    _write_doc(path, {**doc, "format": FORMAT, "version": VERSION, key: value})


def _write_doc(path: Path, doc: dict[str, Any]) -> None:
    tmp = _temporary(path)
    try:
        remove_stale_temporaries(path)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        if slow := os.environ.get("XLEMU_TEST_SLOW_WRITE"):  # tests: a window to SIGKILL us
            time.sleep(float(slow))
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StateError(f"{path}: cannot save the state: {e.strerror}") from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the host's lock (a sibling lock file) for the whole command."""
    try:
        lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
    except OSError as e:
        raise StateError(f"{path}: cannot lock the state: {e.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class StateFile:
    """Where the host is kept, and whether that is the default place (which the first
    command may fill with the default host; anywhere else only ``host init`` does)."""

    path: Path
    default: bool = False


def state_file(option: str | None = None) -> StateFile:
    """The state file: the option, else $XLEMU_STATE, else the user's state directory."""
    if option:
        return StateFile(Path(option))
    if env := os.environ.get("XLEMU_STATE"):
        return StateFile(Path(env))
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return StateFile(Path(base) / "xlemu" / "host.json", default=True)


def prepare(sf: StateFile, *, making: bool = False, notice: Notice | None = None) -> None:
    """Check the state's place before a command uses it. A missing state is an error unless
    ``making`` one, except at the default place, where the default host is booted and
    saved first, and ``notice`` told so."""
    path = sf.path
    if not making and not path.exists() and not sf.default:
        raise _missing(path)
    if sf.default:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateError(f"{path.parent}: cannot make the directory: {e.strerror}") from None
    elif not path.parent.is_dir():
        raise StateError(f"{path}: no such directory {path.parent}")
    if making or path.exists():
        return
    with locked(path):
        if not path.exists():  # another command may have made it meanwhile
            write_state(path, Hypervisor(default_host()), Records())
            if notice is not None:
                nodes = DEFAULT_NODES
                notice(
                    f"no host yet: booted the default host ({len(nodes)} nodes x "
                    f"{nodes[0]} MiB, dom0 {DEFAULT_DOM0_MIB} MiB) in {path}"
                )


@contextmanager
def session(
    where: StateFile | Path,
    *,
    save: bool = True,
    new_host: HostConfig | None = None,
    notice: Notice | None = None,
) -> Iterator[tuple[Host, Records]]:
    """The host for one command; saved afterwards when ``save``.

    A command that saves holds the lock throughout; one that does not reads the state
    without locking or writing anything. ``new_host`` boots a fresh host instead of loading
    (``xlemu host init``). While a host server holds the state (:mod:`xlemu.served`), the
    host is reached through it: the server saves the host, the command its records, then
    asks the server to save, so what the command did is on disk when it returns.
    """
    sf = where if isinstance(where, StateFile) else StateFile(where)
    path = sf.path
    prepare(sf, making=new_host is not None, notice=notice)
    if new_host is not None:
        with locked(path):
            if (advert := served_by(path)) is not None:
                raise StateError(
                    f"{path}: held by the host server at {advert.socket} (pid {advert.pid});"
                    " stop it first"
                )
            hv, records = Hypervisor(new_host), Records()
            yield hv, records
            write_state(path, hv, records)
        return
    if not save:
        advert = served_by(path)
        yield (RemoteHost(advert.socket), read_records(path)) if advert else read_state(path)
        return
    with locked(path):
        advert = served_by(path)
        if advert is None:
            hv, records = read_state(path)
            yield hv, records
            write_state(path, hv, records)
            return
        records = read_records(path)
        yield RemoteHost(advert.socket), records
        save_part(path, "xenstore", _records_doc(records))
    conn = RemoteHost(advert.socket).connect()
    try:
        conn.save()
    finally:
        conn.close()
