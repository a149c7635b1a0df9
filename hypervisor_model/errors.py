"""How a hypervisor handler fails: raise :class:`XenError` with Xen's errno.

The hypercall entry turns it into the negative return value Xen gives; nothing else
escapes the model.
"""

from hypervisor_model.public.errno import errorcode


class XenError(Exception):
    """A hypercall failure carrying the positive errno Xen would return negated."""

    def __init__(self, errno: int, why: str = "") -> None:
        super().__init__(f"{errorcode.get(errno, errno)}{': ' + why if why else ''}")
        self.errno = errno


class Restart(Exception):
    """A preempted hypercall (Xen's -ERESTART): its continuation leaves the handler, and
    the locks it took, and is re-issued whole once other callers have had a chance to run
    (hypercall_create_continuation)."""
