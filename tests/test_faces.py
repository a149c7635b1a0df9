"""Each package's face (its __init__) says what it exports in a literal __all__, so that
type checkers (mypy --strict does not re-export implicitly) and readers agree with it:
every class, function and constant it offers from the project is listed, and every name
listed exists."""

from __future__ import annotations

import importlib

import pytest

OURS = ("hypervisor_model", "xenctrl", "xenguest", "xlemu", "xenhost")


@pytest.mark.parametrize("name", OURS)
def test_the_face_lists_what_it_offers(name: str) -> None:
    face = importlib.import_module(name)
    offered = {
        key
        for key, value in vars(face).items()
        if not key.startswith("_")
        and key != "annotations"  # from __future__ import annotations
        and (isinstance(value, int) or getattr(value, "__module__", "").split(".")[0] in OURS)
        and not isinstance(value, type(face))  # submodules are reached as such
    }
    assert isinstance(face.__all__, list)
    assert offered <= set(face.__all__), sorted(offered - set(face.__all__))
    assert all(hasattr(face, key) for key in face.__all__)
