"""A xenstore speaking Xen's wire protocol: the tree with xenstored's permissions,
transactions, watches and quotas, served on a Unix socket for libxenstore (``xl``, the
``xenstore-*`` tools) and reachable in-process through the same messages.

Start one beside a host::

    store = Store()                      # or Store.from_snapshot(saved)
    server = XenstoreServer(store)
    server.start("/run/xenstored/socket")   # clients find it through $XENSTORED_PATH
    ...
    server.stop(); saved = snapshot(store)

Members are imported on first use: a client in this process needs no server.
"""

import typing

from hypervisor_model import lazy
from xenhost.xenstore.snapshot import restore, snapshot  # named as their module: bound now

__getattr__ = lazy.face(
    __name__,
    {
        "xenhost.xenstore.client": ("XsHandle", "daemon_path"),
        "xenhost.xenstore.errors": ("XenstoreError", "XenstoreStateError"),
        "xenhost.xenstore.server": ("XenstoreServer",),
        "xenhost.xenstore.store": ("Store",),
    },
)
__all__ = [
    "Store",
    "XenstoreError",
    "XenstoreServer",
    "XenstoreStateError",
    "XsHandle",
    "daemon_path",
    "restore",
    "snapshot",
]

if typing.TYPE_CHECKING:  # the members, for type checkers
    from xenhost.xenstore.client import XsHandle, daemon_path
    from xenhost.xenstore.errors import XenstoreError, XenstoreStateError
    from xenhost.xenstore.server import XenstoreServer
    from xenhost.xenstore.store import Store
