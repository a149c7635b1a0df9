"""The requests of the wire protocol (docs/misc/xenstore.txt): each payload parsed as
xenstored parses it, handed to the store, answered with the reply or an ERROR naming the
errno. Replies echo the request's req_id and tx_id (process_message, send_reply)."""

from __future__ import annotations

from collections.abc import Callable

from xenhost.xenstore.connection import Connection
from xenhost.xenstore.errors import XenstoreError
from xenhost.xenstore.quota import DEFAULTS, Q_VAL_DISABLED
from xenhost.xenstore.store import Store
from xenhost.xenstore.transaction import Transaction
from xenhost.xenstore.tree import c_atoi, parse_domid, parse_perms
from xenhost.xenstore.wire import (
    XENSTORE_PAYLOAD_MAX,
    XENSTORE_SERVER_FEATURE_WATCHDEPTH,
    XsType,
    join,
    strings,
)

Reply = Callable[[bytes], None]
Handler = Callable[[Connection, Transaction | None, bytes, Reply], None]
OK = b"OK\0"


def handle(conn: Connection, msg_type: int, req_id: int, tx_id: int, payload: bytes) -> None:
    """Answer one request on ``conn``'s queue, with any watch events it causes."""

    def reply(data: bytes) -> None:
        if len(data) > XENSTORE_PAYLOAD_MAX:  # send_reply
            conn.send((XsType.XS_ERROR, req_id, tx_id, join("E2BIG")))
        else:
            conn.send((msg_type, req_id, tx_id, data))

    with conn.store.lock:
        try:
            entry = HANDLERS.get(msg_type)
            if entry is None:
                raise XenstoreError("ENOSYS", f"no request type {msg_type}")
            handler, notid, priv = entry
            if priv and conn.domid != 0:
                raise XenstoreError("EACCES", "for dom0 only")
            tx = None
            if not notid and tx_id:
                tx = conn.transactions.get(tx_id)
                if tx is None:
                    raise XenstoreError("ENOENT", f"no transaction {tx_id}")
            handler(conn, tx, payload, reply)
        except XenstoreError as e:
            conn.send((XsType.XS_ERROR, req_id, tx_id, join(e.name)))


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def onearg(payload: bytes) -> str:
    """Exactly one string, nul-terminated."""
    if not payload or payload.find(b"\0") != len(payload) - 1:
        raise XenstoreError("EINVAL", "expected one nul-terminated string")
    return _text(payload[:-1])


def _args(payload: bytes) -> list[str]:
    return [_text(s) for s in strings(payload)]


def _domid(payload: bytes) -> int:
    return parse_domid(onearg(payload))


# -- nodes --------------------------------------------------------------------------------------


def do_read(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    reply(conn.store.read(conn, tx, onearg(payload)))


def do_directory(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    reply(join(*(c.encode("latin-1") for c in conn.store.directory(conn, tx, onearg(payload)))))


def do_directory_part(
    conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply
) -> None:
    args = _args(payload)
    if len(args) != 2:
        raise XenstoreError("EINVAL", "expected a path and an offset")
    reply(conn.store.directory_part(conn, tx, args[0], c_atoi(args[1])))


def do_get_perms(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    reply(join(*(str(p) for p in conn.store.get_perms(conn, tx, onearg(payload)))))


def do_write(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    """A path, then the value: every byte after the path's nul, nuls included."""
    path, nul, value = payload.partition(b"\0")
    if not nul:
        raise XenstoreError("EINVAL", "expected a path and a value")
    conn.store.write(conn, tx, _text(path), value)
    reply(OK)


def do_mkdir(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    conn.store.mkdir(conn, tx, onearg(payload))
    reply(OK)


def do_rm(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    conn.store.rm(conn, tx, onearg(payload))
    reply(OK)


def do_set_perms(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    if len(args) < 2:
        raise XenstoreError("EINVAL", "expected a path and permissions")
    if conn.store.quotas.exceeds(conn.domid, "node-permissions", len(args) - 1):
        raise XenstoreError("ENOSPC", "too many permission entries")
    conn.store.set_perms(conn, tx, args[0], parse_perms(args[1:]))
    reply(OK)


# -- watches and transactions -------------------------------------------------------------------


def do_watch(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    """A path, a token, and with the watch-depth feature an optional depth; the watch
    fires once at once, after the acknowledgement."""
    args = _args(payload)
    depth = -1
    features = conn.store.domain_features(conn.domid)
    if len(args) == 3 and features & XENSTORE_SERVER_FEATURE_WATCHDEPTH:
        depth = c_atoi(args[2])
        if depth < 0:
            raise XenstoreError("EINVAL", "a watch depth is 0 or more")
    elif len(args) != 2:
        raise XenstoreError("EINVAL", "expected a path and a token")
    watch = conn.store.watch(conn, args[0], args[1], depth)
    reply(OK)
    conn.send_event(watch.event_path(watch.node), watch.token)


def do_unwatch(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    if len(args) != 2:
        raise XenstoreError("EINVAL", "expected a path and a token")
    conn.store.unwatch(conn, args[0], args[1])
    reply(OK)


def do_reset_watches(
    conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply
) -> None:
    conn.store.reset_watches(conn)
    reply(OK)


def do_transaction_start(
    conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply
) -> None:
    reply(join(str(conn.store.transaction_start(conn, tx))))


def do_transaction_end(
    conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply
) -> None:
    try:
        arg = onearg(payload)
    except XenstoreError:
        arg = ""
    if arg not in ("T", "F"):
        raise XenstoreError("EINVAL", "expected T (commit) or F (abort)")
    conn.store.transaction_end(conn, tx, arg == "T")
    reply(OK)


# -- domains ------------------------------------------------------------------------------------


def do_introduce(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    """A domid, a ring frame (ignored: there is no ring to map) and an event channel."""
    args = _args(payload)
    if len(args) < 3:
        raise XenstoreError("EINVAL", "expected a domid, a frame and a port")
    domid = parse_domid(args[0])
    if c_atoi(args[2]) <= 0:
        raise XenstoreError("EINVAL", f"expected an event channel port, got {args[2]!r}")
    conn.store.introduce(domid)
    reply(OK)


def do_release(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    conn.store.release(_domid(payload))
    reply(OK)


def do_resume(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    conn.store.resume(_domid(payload))
    reply(OK)


def do_set_target(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    if len(args) < 2:
        raise XenstoreError("EINVAL", "expected two domids")
    conn.store.set_target(parse_domid(args[0]), parse_domid(args[1]))
    reply(OK)


def do_get_domain_path(
    conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply
) -> None:
    reply(join(f"/local/domain/{_domid(payload)}"))


def do_is_domain_introduced(
    conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply
) -> None:
    reply(b"T\0" if conn.store.is_introduced(_domid(payload)) else b"F\0")


def do_get_feature(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    if not args:
        reply(join(str(conn.store.domain_features(conn.domid))))
        return
    if conn.domid != 0:
        raise XenstoreError("EACCES", "for dom0 only")
    if len(args) > 1:
        raise XenstoreError("EINVAL", "expected one domid")
    reply(join(str(conn.store.domain_features(parse_domid(args[0])))))


def do_set_feature(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    if len(args) != 2:
        raise XenstoreError("EINVAL", "expected a domid and features")
    conn.store.set_features(parse_domid(args[0]), c_atoi(args[1]) & 0xFFFFFFFF)
    reply(OK)


def do_get_quota(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    quotas = conn.store.quotas
    if len(args) > 2:
        raise XenstoreError("EINVAL", "expected [domid] quota")
    if not args:
        reply(join(" ".join(quotas.names())))
    elif len(args) == 1:
        reply(join(str(quotas.get(args[0]))))
    else:
        reply(join(str(quotas.get(args[1], parse_domid(args[0])))))


def do_set_quota(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    args = _args(payload)
    if len(args) not in (2, 3):
        raise XenstoreError("EINVAL", "expected [domid] quota value")
    domid = parse_domid(args[0]) if len(args) == 3 else None
    conn.store.quotas.set(args[-2], c_atoi(args[-1]) & 0xFFFFFFFF, domid)
    reply(OK)


# -- CONTROL --------------------------------------------------------------------------------------


def _show_quotas(store: Store, index: int) -> str:
    """quota_show_current: every quota that is set, with what it limits."""
    lines = "".join(
        f"{name:<17s}: {values[index]:8d} {DEFAULTS[name][2]}\n"
        for name, values in store.quotas.values.items()
        if values[index] != Q_VAL_DISABLED
    )
    return "Quota settings:\n" + lines


def _check(store: Store) -> None:
    """check_store: xenstored logs what it finds and acknowledges anyway."""
    import logging  # only here: a client that never checks never loads logging

    for problem in store.problems():
        logging.getLogger(__name__).error("xenstore check: %s", problem)


def _control_quota(store: Store, args: list[str], index: int) -> str | None:
    if not args:
        return _show_quotas(store, index)
    if args[0] == "set" and len(args) == 3:
        value = c_atoi(args[2])
        if value < 1:
            raise XenstoreError("EINVAL", "a quota is 1 or more")
        store.quotas.set(("soft-" if index else "") + args[1], value)
        return None
    raise XenstoreError("EINVAL", "expected quota [set NAME VALUE]")


CONTROL_COMMANDS: dict[str, tuple[str, Callable[[Store, list[str]], str | None]]] = {
    "check": ("", lambda store, args: _check(store)),
    "print": ("<string>", lambda store, args: None),
    "quota": ("[set <name> <val>]", lambda store, args: _control_quota(store, args, 0)),
    "quota-soft": ("[set <name> <val>]", lambda store, args: _control_quota(store, args, 1)),
    "help": ("", lambda store, args: None),
}
_CONTROL_ARITY = {"check": 0, "print": 1, "help": 0}


def do_control(conn: Connection, tx: Transaction | None, payload: bytes, reply: Reply) -> None:
    """The harmless commands of xenstored's CONTROL (control.c): check the tree, print,
    show or set quotas, list the commands. Log files and live update are not offered."""
    args = _args(payload)
    if not args or args[0] not in CONTROL_COMMANDS:
        raise XenstoreError("EINVAL", "unknown control command")
    command, params = args[0], args[1:]
    if _CONTROL_ARITY.get(command, len(params)) != len(params):
        raise XenstoreError("EINVAL", f"wrong number of parameters for {command}")
    if command == "help":
        text: str | None = "".join(f"{c:<15s} {p}\n" for c, (p, _) in CONTROL_COMMANDS.items())
    else:
        text = CONTROL_COMMANDS[command][1](conn.store, params)
    reply(OK if text is None else join(text))


# type: (handler, ignores tx_id, dom0 only)  (core.c wire_funcs)
HANDLERS: dict[int, tuple[Handler, bool, bool]] = {
    XsType.XS_CONTROL: (do_control, False, True),
    XsType.XS_DIRECTORY: (do_directory, False, False),
    XsType.XS_READ: (do_read, False, False),
    XsType.XS_GET_PERMS: (do_get_perms, False, False),
    XsType.XS_WATCH: (do_watch, True, False),
    XsType.XS_UNWATCH: (do_unwatch, True, False),
    XsType.XS_TRANSACTION_START: (do_transaction_start, False, False),
    XsType.XS_TRANSACTION_END: (do_transaction_end, False, False),
    XsType.XS_INTRODUCE: (do_introduce, False, True),
    XsType.XS_RELEASE: (do_release, False, True),
    XsType.XS_GET_DOMAIN_PATH: (do_get_domain_path, False, False),
    XsType.XS_WRITE: (do_write, False, False),
    XsType.XS_MKDIR: (do_mkdir, False, False),
    XsType.XS_RM: (do_rm, False, False),
    XsType.XS_SET_PERMS: (do_set_perms, False, False),
    XsType.XS_IS_DOMAIN_INTRODUCED: (do_is_domain_introduced, False, True),
    XsType.XS_RESUME: (do_resume, False, True),
    XsType.XS_SET_TARGET: (do_set_target, False, True),
    XsType.XS_RESET_WATCHES: (do_reset_watches, False, False),
    XsType.XS_DIRECTORY_PART: (do_directory_part, False, False),
    XsType.XS_GET_FEATURE: (do_get_feature, False, False),
    XsType.XS_SET_FEATURE: (do_set_feature, False, True),
    XsType.XS_GET_QUOTA: (do_get_quota, False, True),
    XsType.XS_SET_QUOTA: (do_set_quota, False, True),
}
