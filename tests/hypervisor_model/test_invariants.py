"""The invariant check finds a physmap that maps frames its domain does not own, or one
frame at two gfns, whatever the order the runs come in (one sweep along the owned runs)."""

from __future__ import annotations

import pytest

import hypervisor_model
from hypervisor_model import InvariantError
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_populate_physmap,
    xc_domain_setmaxmem,
)
from xenctrl.handle import xc_interface_open


def guest_with_pages(gfns: list[int]) -> tuple[hypervisor_model.Hypervisor, int]:
    hv = hypervisor_model.boot(nodes=[1024])
    xch = xc_interface_open(hv)
    domid = xc_domain_create(xch, config=default_createdomain(True))
    xc_domain_setmaxmem(xch, domid, 1 << 20)
    assert xc_domain_populate_physmap(xch, domid, len(gfns), 0, 0, gfns) == len(gfns)
    hv.check_invariants()
    return hv, domid


def test_a_physmap_of_unowned_frames_is_found() -> None:
    """gfns 0, 2, 4 populated (three runs), then gfn 9 mapped to a frame nobody owns (one
    above the highest owned frame: owned frames come from the top of a block down)."""
    hv, domid = guest_with_pages([0, 2, 4])
    d = hv.find_domain(domid)
    assert d is not None
    top = max(run.start + run.length for run in d.pages)
    d.p2m.insert(9, 1, top, 1, None)
    with pytest.raises(InvariantError, match=rf"d{domid}: p2m maps frames {top:#x}\+1 it does"):
        hv.check_invariants()


def test_a_frame_at_two_gfns_is_found() -> None:
    """gfn 7 mapped to the frame behind gfn 2: owned, but mapped twice."""
    hv, domid = guest_with_pages([0, 2, 4])
    d = hv.find_domain(domid)
    assert d is not None
    run = d.p2m.find(2)
    assert run is not None
    frame = run.value_at(2)
    assert frame is not None
    d.p2m.insert(7, 1, frame, 1, None)
    with pytest.raises(InvariantError, match=rf"frame {frame:#x} mapped at two gfns") as caught:
        hv.check_invariants()
    assert "it does not own" not in str(caught.value)
