"""``__HYPERVISOR_multicall``: a batch of hypercalls issued as one (xen/common/multicall.c).

Each entry is copied in, run as its own hypercall through the same table as a top-level call
(same calling domain, same guest memory: :meth:`Hypervisor.dispatch`), and its result written
back into the entry; nothing else of the entry is written. libxenctrl sends every memory_op
this way on Linux x86_64, to receive a 64-bit result. Other hypercalls may run between
entries, as Xen may preempt the batch there.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING

from hypervisor_model.codec import codec
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import guest_handle_okay
from hypervisor_model.public.errno import EFAULT, EINVAL
from hypervisor_model.public.xen import multicall_entry

if TYPE_CHECKING:
    from hypervisor_model.domain import Domain
    from hypervisor_model.hypervisor import Hypervisor

ENTRY = codec(multicall_entry)  # read as flat values: op, result, args[0..5]
ENTRY_SIZE = ENTRY.size
RESULT = struct.Struct("<Q")  # multicall_entry.result, at offset 8
RESULT_OFFSET = 8
ENTRY_ARGS = 5  # Xen passes args[0..4]; args[5] is never read (public/xen.h)
WORD_MASK = (1 << 64) - 1  # the entry's result is a long, stored as its 64 bits


class _McState(threading.local):
    """A vCPU's multicall state (struct mc_state); a calling thread is the vCPU here."""

    in_multicall = False


_mc_state = _McState()


def do_multicall(hv: Hypervisor, current: Domain, call_list: int, nr_calls: int, *_: int) -> int:
    """Run ``nr_calls`` entries from ``call_list`` in order. 0 once all ran; EFAULT when an
    entry cannot be read or its result written (entries before it have run); a multicall
    inside a multicall is EINVAL, in that entry's result."""
    nr_calls &= (1 << hv.release.multicall_nr_calls_bits) - 1  # 4.17: a uint32_t
    if _mc_state.in_multicall:
        raise XenError(EINVAL, "multicall reentry is disallowed")
    if not guest_handle_okay(call_list, nr_calls, ENTRY_SIZE):
        raise XenError(EFAULT, "call list outside the guest's address space")
    memory = hv.caller_memory  # the entries' handles resolve where the list's do
    read, write = memory.copy_from_guest, memory.try_copy_to_guest
    _mc_state.in_multicall = True
    try:
        for addr in range(call_list, call_list + nr_calls * ENTRY_SIZE, ENTRY_SIZE):
            if addr != call_list:
                hv.preempt_check()  # do_multicall's continuation point between entries
            op, _, *args = ENTRY.unpack_from(read(addr, ENTRY_SIZE))
            args[ENTRY_ARGS] = 0  # the sixth word is never read
            result = hv.dispatch(current, op, args)
            if not write(addr + RESULT_OFFSET, RESULT.pack(result & WORD_MASK)):
                raise XenError(EFAULT, "entry result not writable")
    finally:
        _mc_state.in_multicall = False
    return 0
