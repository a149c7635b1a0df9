"""One client of the xenstore (xenstored's struct connection): the domain it speaks for,
its watches and transactions, and the messages waiting to be sent to it."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from xenhost.xenstore.store import Store
from xenhost.xenstore.transaction import Transaction
from xenhost.xenstore.watch import Watch
from xenhost.xenstore.wire import XENSTORE_PAYLOAD_MAX, XsType, join

Message = tuple[int, int, int, bytes]  # type, req_id, tx_id, payload


class Connection:
    """A socket client speaks for dom0, as xenstored's socket connections do; an
    in-process client may speak for any domain, and is then held to its permissions."""

    def __init__(
        self, store: Store, domid: int = 0, notify: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.domid = domid
        self.watches: list[Watch] = []
        self.transactions: dict[int, Transaction] = {}
        self.next_transaction_id = 0
        self.notify = notify  # told whenever a message is queued (wakes a server loop)
        self._out: deque[Message] = deque()
        self._ready = threading.Condition()
        store.attach(self)

    @property
    def implicit_path(self) -> str:
        """Where relative paths start (get_implicit_path): the domain's home."""
        return f"/local/domain/{self.domid}"

    def send(self, message: Message) -> None:
        with self._ready:
            self._out.append(message)
            self._ready.notify_all()
        if self.notify is not None:
            self.notify()

    def send_event(self, path: str, token: str) -> None:
        """send_event: too long an event is dropped, and so is one identical to an event
        still waiting to be sent (special "@" events excepted)."""
        payload = join(path.encode("latin-1"), token.encode("latin-1"))
        if len(payload) > XENSTORE_PAYLOAD_MAX:
            return
        event = (XsType.XS_WATCH_EVENT, 0, 0, payload)
        with self._ready:
            if not path.startswith("@") and event in self._out:
                return
        self.send(event)

    def take(self, timeout: float | None = 0) -> Message | None:
        """The next queued message, waiting up to ``timeout`` seconds (None: forever)."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._out, timeout):
                return None
            return self._out.popleft()

    def close(self) -> None:
        self.store.detach(self)
