"""xl's conventions: command names keep xl's meaning (xl's ``top`` is xentop, so the NUMA
picture has a name of its own)."""

from __future__ import annotations

from xl_helpers import Xl


def test_top_is_the_picture_s_old_name_and_says_so(xl: Xl) -> None:
    """The old name still draws the picture, with one line on stderr naming the new one."""
    old, new = xl("top", "--width", "20"), xl("numa-picture", "--width", "20")
    assert (old.code, old.out) == (new.code, new.out) == (0, new.out)
    assert old.err_lines == ["xlemu: `top` is xl's xentop; the NUMA picture is now `numa-picture`"]
    assert new.err == ""
