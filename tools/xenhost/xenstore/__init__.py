"""A xenstore speaking Xen's wire protocol: the tree with xenstored's permissions,
transactions, watches and quotas, served on a Unix socket for libxenstore (``xl``, the
``xenstore-*`` tools) and reachable in-process through the same messages.

Start one beside a host::

    store = Store()                      # or Store.from_snapshot(saved)
    server = XenstoreServer(store)
    server.start("/run/xenstored/socket")   # clients find it through $XENSTORED_PATH
    ...
    server.stop(); saved = snapshot(store)
"""

from xenhost.xenstore.client import XsHandle, daemon_path
from xenhost.xenstore.errors import XenstoreError, XenstoreStateError
from xenhost.xenstore.server import XenstoreServer
from xenhost.xenstore.snapshot import restore, snapshot
from xenhost.xenstore.store import Store
