"""Where the emulated host lives between commands, and how it is kept safe.

One state file holds the machine (the hypervisor's saved state) and its xenstore tree (where
the toolstack keeps names and configured sizes, as libxl does). A command that changes
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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from xenhost.xenstore import Store, XsHandle, restore, snapshot

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
from xenctrl import domain as xcd
from xenctrl.handle import Host, xc_interface_open
from xenctrl.remote import RemoteHost
from xlemu import libxl_xs
from xlemu.served import served_by

Notice = Callable[[str], None]
FORMAT = "xlemu-state"
# 2: the xenstore tree. 1 kept a record per domain instead; it is still read, and converted.
VERSION = 2
DEFAULT_NODES, DEFAULT_DOM0_MIB = [16384, 16384], 1024  # 2 x 16 GiB, dom0 1 GiB


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


# Version 1's records, as saved under "xenstore": a domain's name and built sizes.
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


def new_xenstore() -> Store:
    """A freshly booted host's xenstore: xenstored's tree, then xen-init-dom0's entries."""
    store = Store()
    with XsHandle.local(store) as xs:
        libxl_xs.init_dom0(xs)
    return store


def _from_records(records: dict[str, Any]) -> Store:
    """A version 1 state's records as the tree libxl would have written for them. Those
    domains were made without a UUID (their handle is zero), so each gets a new one for
    its /vm entry."""
    store = new_xenstore()
    with XsHandle.local(store) as xs:
        for key, r in records.get("domains", {}).items():
            info = libxl_xs.DomainInfo(
                r["name"],
                str(uuid.uuid4()),
                r.get("type", "hvm"),
                r.get("maxmem_kb", 0),
                r.get("memory_kb", 0),
                r.get("video_kb", 0),
                r.get("vcpus", 1),
            )
            libxl_xs.domain_make(xs, int(key), info)
            libxl_xs.build_post(xs, int(key), info)
    return store


def _read_doc(path: Path) -> tuple[dict[str, Any], Store]:
    """The state document with its envelope checked and its xenstore loaded (the host is
    not loaded)."""
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
            if version < 2:
                RECORDS_SCHEMA.check(doc.get("xenstore", {}))
                store = _from_records(doc.get("xenstore", {}))
            else:
                store = restore(doc.get("xenstore"))
        except SchemaError as e:
            raise e.at("xenstore") from None
    except SchemaError as e:
        raise StateError(f"{path}: damaged state: {e}") from None
    return doc, store


def read_state(path: Path, *, writable: bool = True) -> tuple[Hypervisor, Store]:
    """Load a saved state; StateError (one short line naming the file) for anything that
    is not a state this version reads. Its size and shape are checked before it is used;
    one that will not be written back (``writable=False``) is checked but for each frame."""
    doc, store = _read_doc(path)
    try:
        hv = load_state(doc["host"], within="host", writable=writable)
    except SchemaError as e:
        raise StateError(f"{path}: damaged state: {e}") from None
    except StateError as e:
        raise StateError(f"{path}: {e}") from None
    return hv, store


def read_xenstore(path: Path) -> Store:
    """The xenstore alone, as last saved (for shell completion: no host, no lock)."""
    return _read_doc(path)[1]


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temporaries(path: Path) -> None:
    """Remove what writers killed between write and rename left behind. Call it under the
    lock: then no other writer is running, so every temporary file is stale."""
    stale = re.compile(rf"\.{re.escape(path.name)}\.[0-9]+\.tmp")
    for entry in path.parent.iterdir():
        if stale.fullmatch(entry.name):
            entry.unlink(missing_ok=True)


def write_state(path: Path, hv: Hypervisor, store: Store) -> None:
    """Replace the state file atomically: a reader sees the old state or the new one."""
    write_saved(path, save_state(hv), store)


def write_saved(path: Path, host: dict[str, Any], store: Store) -> None:
    """:func:`write_state` with the host saved already (``save_state``), as a server saves
    it with no hypercall in flight and writes it with calls running again."""
    doc = {"host": host, "xenstore": snapshot(store)}
    _write_doc(path, {"format": FORMAT, "version": VERSION, **doc})


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


class StateFile(NamedTuple):
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
            write_state(path, Hypervisor(default_host()), new_xenstore())
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
) -> Iterator[tuple[Host, XsHandle]]:
    """The host for one command and a handle on its xenstore; saved afterwards when
    ``save``, after the xenstore has forgotten the domains that died meanwhile.

    A command that saves holds the lock throughout; one that does not reads the state
    without locking or writing anything. ``new_host`` boots a fresh host instead of loading
    (``xlemu host init``). While a host server holds the state (:mod:`xlemu.served`), the
    host and the xenstore are reached through it, and the command asks the server to save
    when done, so what the command did is on disk when it returns.
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
            hv, store = Hypervisor(new_host), new_xenstore()
            with XsHandle.local(store) as xs:
                yield hv, xs
            write_state(path, hv, store)
        return
    if not save:
        if (advert := served_by(path)) is not None:
            with XsHandle.open(str(advert.xenstore)) as xs:
                yield RemoteHost(advert.socket), xs
            return
        hv, store = read_state(path, writable=False)
        with XsHandle.local(store) as xs:
            yield hv, xs
        return
    with locked(path):
        advert = served_by(path)
        if advert is None:
            hv, store = read_state(path)
            with XsHandle.local(store) as xs:
                yield hv, xs
            forget_dead_domains(hv, store)
            write_state(path, hv, store)
            return
        with XsHandle.open(str(advert.xenstore)) as xs:
            yield RemoteHost(advert.socket), xs
    conn = RemoteHost(advert.socket).connect()
    try:
        conn.save()
    finally:
        conn.close()


def forget_dead_domains(host: Host, store: Store) -> None:
    """What xenstored does when Xen reports domains died (VIRQ_DOM_EXC): whatever they
    owned in xenstore goes (Store.check_domains)."""
    with xc_interface_open(host) as xch:
        alive = [i.domain for i in xcd.xc_domain_getinfolist(xch, 0, DOMID_FIRST_RESERVED)]
    store.check_domains(alive)
