"""The NUMA picture (xlemu/picture.py): its numbers read from the host by hypercalls, the
text bars (small domains stay visible), and the SVG, rendered and measured: nothing
outside the canvas, every domain present, one scale for every bar, colours distinct for
dozens of domains, text readable on the card in both themes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from itertools import pairwise

import pytest
from xl_helpers import create, toolstack
from xlemu import picture

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def golden_picture() -> picture.MemoryPicture:
    """The host of test_golden.py: 2 x 8192 MiB, dom0 512; web (HVM 2048, node 0), db (PV
    1024, node 1), batch (HVM vNUMA 1024 + 1024, paused), batch claims node1=512M host=256M.
    Pages per node (worked out in test_golden.py): node 0 web 524272, batch 261016, free
    1308143; node 1 dom0 131072, db 262144, batch 263256, free 1439268; batch's claims
    131072 pages on node 1 and 65536 host-wide. The rest of each node is Xen's own (heap
    metadata, what each domain costs Xen): 2097152 - 785288 - 1308143 = 3721 pages on node
    0, 2097152 - 656472 - 1439268 = 1412 on node 1."""
    ts = toolstack((8192, 8192))
    create(ts, 'name="web"', 'type="hvm"', "memory=2048", "vcpus=2")
    create(ts, 'name="db"', 'type="pv"', "memory=1024", "vcpus=2", 'cpus="nodes:1"')
    batch = 'vnuma=[["pnode=0","size=1024","vcpus=0"],["pnode=1","size=1024","vcpus=1"]]'
    create(ts, 'name="batch"', 'type="hvm"', "vcpus=2", batch, paused=True)
    ts.mem_max("batch", "3072")
    ts.claim_set("batch", ["node1=512M", "host=256M"])
    return ts.memory_picture()


def test_memory_picture_numbers(golden_picture: picture.MemoryPicture) -> None:
    """free_memory is xl info's: (1308143 + 1439268) free - 196608 claimed = 2550803."""
    p = golden_picture
    assert [(n.node, n.size, n.free, n.claims) for n in p.nodes] == [
        (0, 2097152, 1308143, {}),
        (1, 2097152, 1439268, {3: 131072}),
    ]
    assert p.nodes[0].domains == {0: 0, 1: 524272, 2: 0, 3: 261016}
    assert p.nodes[1].domains == {0: 131072, 1: 0, 2: 262144, 3: 263256}
    assert [n.other for n in p.nodes] == [3721, 1412]
    assert p.names == {0: "Domain-0", 1: "web", 2: "db", 3: "batch"}
    assert (p.host_claims, p.free_memory) == ({3: 65536}, 2550803)


# -- text ----------------------------------------------------------------------------------


def test_bars(golden_picture: picture.MemoryPicture) -> None:
    """50 cells per node, pages * 50 / node size, the largest remainders get the cells left.
    Node 0: web 12.4997, batch 6.2232, free 31.1887, Xen's 0.0887 -> 12 + 6 + 31 = 49,
    web's .4997 is largest -> 13 B, 6 D, 31 '.'. Node 1: dom0 3.125, db 6.25, batch
    6.2765, batch's claim 3.125, unclaimed free 31.1897, Xen's 0.0337 -> 49, batch's
    .2765 largest -> 3 A, 6 C, 7 D, 3 ':', 31 '.'. Text: used node 0 (524272 + 261016) >> 8
    = 3067, node 1 656472 >> 8 = 2564; claimed 131072 >> 8 = 512; free 1308143 >> 8 =
    5109, (1439268 - 131072) >> 8 = 5110; host-wide 65536 >> 8 = 256; free memory 2550803
    >> 8 = 9964."""
    assert picture.bars(golden_picture) == (
        f"NODE0 [{'B' * 13}{'D' * 6}{'.' * 31}]    8192 MiB: used 3067, claimed 0, free 5109\n"
        f"NODE1 [{'A' * 3}{'C' * 6}{'D' * 7}{':' * 3}{'.' * 31}]    8192 MiB: used 2564, "
        "claimed 512, free 5110\n"
        "legend: A=Domain-0 (d0)  B=web (d1)  C=db (d2)  D=batch (d3)  :=claimed  .=free\n"
        "host-wide claims (any node): 256 MiB; free memory: 9964 MiB"
    )


def test_a_small_domain_keeps_a_cell() -> None:
    """16 MiB of a 4096 MiB node is 0.2 of 50 cells: it still gets one (from the free
    memory, the largest part), so the legend's letter is on the bar."""
    ts = toolstack()
    create(ts, 'name="tiny"', "memory=16", 'cpus="nodes:0"')
    bar = picture.bars(ts.memory_picture()).splitlines()[0].split("[")[1].split("]")[0]
    assert (bar.count("B"), len(bar)) == (1, 50)


# -- SVG: geometry --------------------------------------------------------------------------


def _num(value: str | None) -> float:
    assert value is not None
    return float(value)


def extents(root: ET.Element) -> list[tuple[str, float, float, float, float]]:
    """(what, left, top, right, bottom) of every rect, line and text; a text's width is
    estimated at 0.6 em per character, its height as one em above the baseline."""
    boxes = []
    for el in root.iter():
        tag = el.tag.removeprefix(SVG)
        if tag == "rect" and el.get("x") is not None:
            x, y = _num(el.get("x")), _num(el.get("y"))
            boxes.append((tag, x, y, x + _num(el.get("width")), y + _num(el.get("height"))))
        elif tag == "line":
            xs = sorted([_num(el.get("x1")), _num(el.get("x2"))])
            ys = sorted([_num(el.get("y1")), _num(el.get("y2"))])
            boxes.append((tag, xs[0], ys[0], xs[1], ys[1]))
        elif tag == "text":
            size, width = _num(el.get("font-size")), len(el.text or "") * 0.6
            x, y = _num(el.get("x")), _num(el.get("y"))
            anchor = el.get("text-anchor", "start")
            left = x - {"start": 0, "middle": 0.5, "end": 1}[anchor] * width * size
            boxes.append((f"text {el.text!r}", left, y - size, left + width * size, y + 3))
    return boxes


def many_domains(count: int) -> picture.MemoryPicture:
    """``count`` guests of 200 MiB over 4 nodes of 4 GiB, one tiny one of 4 MiB, and claims
    (per node and host-wide) by a few."""
    ts = toolstack((4096, 4096, 4096, 4096))
    for i in range(count):
        create(ts, f'name="guest-with-a-long-name-{i}"', "memory=200")
    create(ts, 'name="tiny"', "memory=4")
    for domid in sorted({1, count // 2 + 1, count}):
        ts.mem_max(str(domid), "1G")
        ts.claim_set(str(domid), ["node2=64M", "host=32M"])
    return ts.memory_picture()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("count", [3, 35])
def test_svg_geometry(theme: str, count: int) -> None:
    """Everything lies inside the canvas; every domain has a legend entry and its own
    colour; each node's bar spans the node's size on the shared scale."""
    p = many_domains(count)
    root = ET.fromstring(picture.svg(p, theme))
    width, height = _num(root.get("width")), _num(root.get("height"))
    for what, left, top, right, bottom in extents(root):
        assert left >= 0 and right <= width and top >= 0 and bottom <= height, what

    legend = [t.text or "" for t in root.iter(f"{SVG}text") if re.search(r"\(d\d+\)", t.text or "")]
    assert [int(re.search(r"\(d(\d+)\)", t).group(1)) for t in legend] == p.domids()  # type: ignore[union-attr]
    fills = {
        rect.get("fill")
        for rect in root.iter(f"{SVG}rect")
        if (rect.findtext(f"{SVG}title") or "").startswith("d")
    }
    assert len(fills) == len({d for n in p.nodes for d, pages in n.domains.items() if pages})

    # every node's bar: its pieces tile [left, left + node size * scale]
    bar_rows: dict[str, list[tuple[float, float]]] = {}
    for rect in root.iter(f"{SVG}rect"):
        if _num(rect.get("height")) == picture.BAR_H:
            bar_rows.setdefault(rect.get("y") or "", []).append(
                (_num(rect.get("x")), _num(rect.get("width")))
            )
    assert len(bar_rows) == len(p.nodes)
    left = picture.PAD + picture.LABEL
    for pieces in bar_rows.values():
        assert pieces[0][0] == left
        for (x1, w1), (x2, _) in pairwise(pieces):
            assert x2 == pytest.approx(x1 + w1, abs=0.11)
        end = pieces[-1][0] + pieces[-1][1]
        assert end == pytest.approx(left + picture.BAR_W, abs=4)  # min widths may add 2 px


def redmean(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """A weighted RGB distance that follows what eyes tell apart ("redmean")."""
    r = (a[0] + b[0]) / 2
    dr, dg, db = (x - y for x, y in zip(a, b, strict=True))
    return float(((2 + r / 256) * dr * dr + 4 * dg * dg + (2 + (255 - r) / 256) * db * db) ** 0.5)


def test_domain_colours_are_distinct_and_not_grey() -> None:
    """The first 36 colours are pairwise apart and none is a grey (free memory's)."""
    colours = [picture.domain_colour(i) for i in range(36)]
    rgb = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in colours]
    for i, a in enumerate(rgb):
        assert max(a) - min(a) > 40, colours[i]  # saturated: not grey
        for j, b in enumerate(rgb[i + 1 :], i + 1):
            assert redmean(a, b) > 60, (colours[i], colours[j])


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_svg_has_its_own_background_and_readable_text(theme: str) -> None:
    """A card filling the canvas, so that the picture reads on light and dark slides alike;
    the text colour contrasts with it."""
    root = ET.fromstring(picture.svg(many_domains(3), theme))
    card = root.find(f"{SVG}rect")  # the first drawn, under everything else
    assert card is not None
    assert (card.get("width"), card.get("rx")) == (str(picture.WIDTH - 1), "12")
    t = picture.THEMES[theme]
    assert card.get("fill") == t.background
    lum = [int(c[1:3], 16) for c in (t.background, t.text, t.muted)]
    assert abs(lum[0] - lum[1]) > 180 and abs(lum[0] - lum[2]) > 90


def test_svg_shows_claims_per_domain_and_the_numbers(
    golden_picture: picture.MemoryPicture,
) -> None:
    """batch's node-1 claim is a hatched piece in batch's colour, its host-wide claim one
    on the host-wide bar; the numbers under each bar and the free memory are written."""
    text = picture.svg(golden_picture)
    root = ET.fromstring(text)
    claims = [r for r in root.iter(f"{SVG}rect") if r.findtext(f"{SVG}title") == "claimed by d3"]
    assert [r.get("fill") for r in claims] == ["url(#hatch3)", "url(#hatch3)"]
    scale = picture.BAR_W / 2097152
    assert [_num(r.get("width")) for r in claims] == [
        pytest.approx(131072 * scale, abs=0.06),
        pytest.approx(65536 * scale, abs=0.06),
    ]
    words = [t.text for t in root.iter(f"{SVG}text")]
    assert "2564 MiB used  ·  512 MiB claimed  ·  5110 MiB free" in words
    assert "Free memory (xl info free_memory): 9964 MiB" in words
    assert "batch (d3): 2047 MiB, 768 claimed" in words


def test_svg_escapes_domain_names() -> None:
    """A name with XML's special characters still gives a well-formed document."""
    ts = toolstack()
    create(ts, 'name="a<b&c>"', "memory=64")
    root = ET.fromstring(picture.svg(ts.memory_picture()))
    assert "a<b&c> (d1): 64 MiB" in [t.text for t in root.iter(f"{SVG}text")]


def test_the_memory_picture_leaves_dmesg_whole() -> None:
    """The picture reads Xen's 'u' dump off the console without clearing it, so dmesg still
    shows the boot banner, then the dump; ``dmesg -c`` alone empties it."""
    ts = toolstack()
    before = ts.dmesg()
    assert before.startswith("(XEN) ")
    ts.memory_picture()
    after = ts.dmesg()
    assert after.startswith(before)
    assert "'u' pressed -> dumping numa info" in after[len(before) :]
    assert ts.dmesg(clear=True) == after
    assert ts.dmesg() == ""
