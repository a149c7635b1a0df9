"""Page offlining through libxenguest (xg_offline_page.c): xc_mark_page_offline / _online /
xc_query_page_offline_status, one status word per frame (fact sheet 2.9).

(Named test_page_offline.py: tests/hypervisor_model/test_offline.py already has the
basename test_offline, and the test directories are not packages.)

Status words, public/sysctl.h: PG_OFFLINE_OFFLINED = PG_ONLINE_ONLINED = 0x2, PENDING 0x4,
FAILED 0x8, NOT_CONV_RAM 0x800, OWNED 0x1000, owner domid << 16; query answers
PG_OFFLINE_STATUS_OFFLINED 0x2 and PG_OFFLINE_STATUS_OFFLINE_PENDING 0x8. Entries the
sysctl never reached keep its memset fill, 0x01010101.

Host: one node of 64 MiB = frames [0, 16384), 16381 free (MFN 0 never is, and dom0's
structure and shared-info pages, 16383 and 16382, are Xen's). A PV domain costs Xen two pages
more (16381 and 16380).
"""

from __future__ import annotations

import ctypes
import errno

import pytest

from xenctrl import XenError, trace
from xenctrl.api import HOST, Xenctrl
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_decrease_reservation_exact,
    xc_domain_populate_physmap_exact,
    xc_domain_setmaxmem,
)
from xenctrl.handle import xc_interface
from xenctrl.misc import xc_physinfo
from xenguest import xc_mark_page_offline, xc_mark_page_online, xc_query_page_offline_status

pytestmark = pytest.mark.xen_host(nodes=[64])

OFFLINED = ONLINED = 0x2
UNTOUCHED = 0x01010101


def free_pages(xch: xc_interface) -> int:
    return int(xc_physinfo(xch).free_pages)


def pv_domain_page(xch: xc_interface) -> tuple[int, int]:
    """A PV domain owning one page; returns (domid, the page's MFN, written back by Xen)."""
    d = xc_domain_create(xch, config=default_createdomain(False))
    xc_domain_setmaxmem(xch, d, 1024)
    extents = (ctypes.c_uint64 * 1)(0)
    xc_domain_populate_physmap_exact(xch, d, 1, 0, 0, extents)
    return d, int(extents[0])


def test_free_page_goes_offline_at_once_and_comes_back(xch: xc_interface) -> None:
    """A free frame is offlined immediately (free 16381 -> 16380), queried as OFFLINED, and
    onlining returns it to the heap (16381) with a query of 0."""
    assert xc_mark_page_offline(xch, 0x100, 0x100) == [OFFLINED]
    assert free_pages(xch) == 16380
    assert xc_query_page_offline_status(xch, 0x100, 0x100) == [0x2]
    assert xc_mark_page_online(xch, 0x100, 0x100) == [ONLINED]
    assert (free_pages(xch), xc_query_page_offline_status(xch, 0x100, 0x100)) == (16381, [0])


def test_range_gets_one_status_word_per_frame(xch: xc_interface) -> None:
    assert xc_mark_page_offline(xch, 0x200, 0x202) == [OFFLINED] * 3
    assert free_pages(xch) == 16381 - 3


def test_owned_page_is_pending_until_its_owner_frees_it(xch: xc_interface) -> None:
    """OWNED | PENDING | domid << 16 = 0x1000 | 0x4 | 1 << 16 = 0x11004 for d1; the page goes
    offline when freed (so free stays at 16381 - 2 - 1), and onlining gives it back."""
    d, mfn = pv_domain_page(xch)
    assert d == 1 and free_pages(xch) == 16378
    assert xc_mark_page_offline(xch, mfn, mfn) == [0x11004]
    assert xc_query_page_offline_status(xch, mfn, mfn) == [0x8]
    xc_domain_decrease_reservation_exact(xch, d, 1, 0, [mfn])  # PV: the gmfn is the MFN
    assert xc_query_page_offline_status(xch, mfn, mfn) == [0x2]
    assert free_pages(xch) == 16378
    assert xc_mark_page_online(xch, mfn, mfn) == [ONLINED]
    assert free_pages(xch) == 16379


def test_onlining_a_pending_page_cancels_the_offline(xch: xc_interface) -> None:
    """online_page on an offlining page: ONLINED, and the page returns to the heap when
    freed (16378 -> 16379)."""
    d, mfn = pv_domain_page(xch)
    xc_mark_page_offline(xch, mfn, mfn)
    assert xc_mark_page_online(xch, mfn, mfn) == [ONLINED]
    assert xc_query_page_offline_status(xch, mfn, mfn) == [0]
    xc_domain_decrease_reservation_exact(xch, d, 1, 0, [mfn])
    assert free_pages(xch) == 16379


def test_onlining_an_online_page_reports_0(xch: xc_interface) -> None:
    """online_page leaves status 0 and succeeds for a page that is neither offlined nor
    pending."""
    assert xc_mark_page_online(xch, 0x300, 0x300) == [0]


@pytest.mark.parametrize(
    ("start", "end", "words", "offlined"),
    [
        # 16381 goes offline; 16382 and 16383 are dom0's xen-heap pages, only marked pending
        # (XENPAGE 0x100 | PENDING | DOMID_XEN 0x7FF2 << 16); 16384 >= max_page: EINVAL,
        # its word untouched.
        (16381, 16384, [OFFLINED, 0x7FF20104, 0x7FF20104, UNTOUCHED], 1),
        # The first frame already fails: nothing reached.
        (16384, 16385, [UNTOUCHED, UNTOUCHED], 0),
    ],
    ids=["stops-at-max-page", "nothing-reached"],
)
def test_offline_stops_at_the_first_invalid_frame(
    xch: xc_interface, start: int, end: int, words: list[int], offlined: int
) -> None:
    """The sysctl stops at the first error, keeps what it did, and copies the whole array."""
    with pytest.raises(XenError) as e:
        xc_mark_page_offline(xch, start, end)
    assert e.value.errno == errno.EINVAL
    assert e.value.status == words  # type: ignore[attr-defined]
    assert free_pages(xch) == 16381 - offlined


def test_end_before_start_is_einval_without_a_hypercall(xch: xc_interface) -> None:
    with trace.Trace() as t, pytest.raises(XenError) as e:
        xc_query_page_offline_status(xch, 5, 4)
    assert e.value.errno == errno.EINVAL
    assert [list(r.hypercalls()) for r in t.records] == [[]]


@pytest.mark.xen_host(ranges=[[[0, 4096], [8192, 16384]]])
def test_frame_in_a_ram_hole(xch: xc_interface) -> None:
    """Frame 0x1800 lies in the hole [4096, 8192): offline_page answers FAILED | NOT_CONV_RAM
    = 0x808 with EINVAL; query_page_offline answers EINVAL without a word (0x01010101)."""
    with pytest.raises(XenError) as e:
        xc_mark_page_offline(xch, 0x1800, 0x1800)
    assert (e.value.errno, e.value.status) == (errno.EINVAL, [0x808])  # type: ignore[attr-defined]
    with pytest.raises(XenError) as e:
        xc_query_page_offline_status(xch, 0x1800, 0x1800)
    assert (e.value.errno, e.value.status) == (errno.EINVAL, [UNTOUCHED])  # type: ignore[attr-defined]


def test_offlining_below_a_node_claim_recalls_it(xch: xc_interface, xenctrl_api: Xenctrl) -> None:
    """v7 reserve_offlined_page: a claim of all 16379 free frames (d's own two Xen pages
    taken), then one goes offline: 16379 claimed > 16378 free, so the claim is cut by the
    excess to 16378."""
    d = xc_domain_create(xch, config=default_createdomain(False))
    xc_domain_setmaxmem(xch, d, 64 * 1024)
    xenctrl_api.domain_claim_memory(d, {0: 16379})
    assert xc_mark_page_offline(xch, 0x100, 0x100) == [OFFLINED]
    assert xenctrl_api.domain_get_claims(d) == {HOST: 0, 0: 16378}
