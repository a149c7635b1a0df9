"""A picture of NUMA memory: per node, each domain's pages, what each domain has claimed on
the node, and the free memory left; then the host-wide claims and the host's free memory.
As terminal text, or as an SVG ready for a slide (its own background, a scale, numbers, and
colours that stay distinct for dozens of domains)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

from xlemu.themes import THEMES, Theme

SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
CLAIMED, FREE, OTHER = ":", ".", "#"
PAGES_PER_MIB = 256


@dataclass
class NodeUsage:
    """One node in pages: its size, what each domain holds there, what each domain has
    claimed on it, and what is free (claims not subtracted, as Xen reports it)."""

    node: int
    size: int
    free: int
    domains: dict[int, int] = field(default_factory=dict)
    claims: dict[int, int] = field(default_factory=dict)

    @property
    def claimed(self) -> int:
        return min(sum(self.claims.values()), self.free)

    @property
    def used(self) -> int:
        return sum(self.domains.values())

    @property
    def other(self) -> int:
        """Neither free nor a domain's: Xen's own pages, offlined pages, holes."""
        return max(self.size - self.used - self.free, 0)


@dataclass
class MemoryPicture:
    nodes: list[NodeUsage]
    names: dict[int, str]
    host_claims: dict[int, int] = field(default_factory=dict)  # claims bound to no node
    free_memory: int = 0  # pages free and unclaimed (xl info's free_memory)

    def domids(self) -> list[int]:
        """Domains with memory or a claim somewhere, in domid order."""
        held = {d for n in self.nodes for d, p in (*n.domains.items(), *n.claims.items()) if p}
        return sorted(held | {d for d, p in self.host_claims.items() if p})


def _mib(pages: int) -> int:
    return pages // PAGES_PER_MIB


def _node_parts(node: NodeUsage) -> list[tuple[str, int]]:
    """(key, pages) along a node's bar: each domain's pages, each claim, free, the rest."""
    parts = [(f"d{d}", p) for d, p in sorted(node.domains.items()) if p]
    room = node.free  # claims are a share of the free memory
    for d, p in sorted(node.claims.items()):
        if p and room:
            parts.append((f"c{d}", min(p, room)))
            room -= min(p, room)
    return [*parts, (FREE, room), (OTHER, node.other)]


def _cells(parts: list[tuple[str, int]], total: int, width: int) -> list[int]:
    """Whole cells per part adding up to ``width`` (largest remainders win), and at least
    one for a domain's pages or claim, so that a small domain stays visible."""
    exact = [pages * width / max(total, 1) for _, pages in parts]
    cells = [int(x) for x in exact]
    order = sorted(range(len(parts)), key=lambda i: exact[i] - cells[i], reverse=True)
    for i in order[: max(width - sum(cells), 0)]:
        cells[i] += 1
    for i, (key, pages) in enumerate(parts):
        if pages and not cells[i] and key[0] in "dc":
            donor = max(range(len(parts)), key=lambda j: cells[j])
            if cells[donor] > 1:
                cells[donor] -= 1
                cells[i] = 1
    return cells


def bars(picture: MemoryPicture, width: int = 50) -> str:
    """Text bars: a letter per domain, ':' for claimed, '.' for free memory."""
    symbol = {d: SYMBOLS[i % len(SYMBOLS)] for i, d in enumerate(picture.domids())}
    lines = []
    for node in picture.nodes:
        parts = _node_parts(node)
        cells = _cells(parts, node.size, width)
        bar = "".join(
            (symbol[int(key[1:])] if key[0] == "d" else CLAIMED if key[0] == "c" else key) * n
            for (key, _), n in zip(parts, cells, strict=True)
        )
        lines.append(
            f"NODE{node.node} [{bar}] {_mib(node.size):>7} MiB: used {_mib(node.used)}, "
            f"claimed {_mib(node.claimed)}, free {_mib(node.free - node.claimed)}"
        )
    legend = [f"{symbol[d]}={picture.names.get(d, f'd{d}')} (d{d})" for d in picture.domids()]
    lines.append("legend: " + "  ".join([*legend, f"{CLAIMED}=claimed", f"{FREE}=free"]))
    lines.append(
        f"host-wide claims (any node): {_mib(sum(picture.host_claims.values()))} MiB; "
        f"free memory: {_mib(picture.free_memory)} MiB"
    )
    return "\n".join(lines)


# -- SVG ------------------------------------------------------------------------------------

# Twelve hues far apart, each in three shades (the dark and light ones a half step round
# the wheel, between the others): 36 colours no two alike, none of them grey (grey means
# free memory); beyond that, hues by the golden angle.
_HUES = [0.58, 0.08, 0.33, 0.92, 0.5, 0.14, 0.75, 0.0, 0.42, 0.67, 0.21, 0.83]
_SHADES = [(0.5, 0.5, 0.0), (0.33, 0.7, 1 / 24), (0.7, 0.7, -1 / 24)]  # light, sat, hue turn


def domain_colour(i: int) -> str:
    """The i-th domain's colour."""
    if i < len(_HUES) * len(_SHADES):
        light, sat, turn = _SHADES[i // len(_HUES)]
        hue = (_HUES[i % len(_HUES)] + turn) % 1
    else:
        hue, light, sat = (i * 0.618034) % 1, 0.4 + 0.15 * (i % 3), 0.6
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _ink(colour: str) -> str:
    """Black or white text, whichever reads better on ``colour`` (WCAG luminance)."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lum = sum(
        w * (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        for w, c in zip((0.2126, 0.7152, 0.0722), (r, g, b), strict=True)
    )
    return "#111111" if lum > 0.3 else "#ffffff"


FONT = 14  # px; text is estimated at 0.6 em per character
WIDTH, PAD, LABEL, BAR_H = 960, 24, 110, 34
BAR_W = WIDTH - 2 * PAD - LABEL


def _tick_step(total_mib: int, ticks: int = 8) -> int:
    """MiB between scale ticks: the smallest power of two giving at most ``ticks`` steps."""
    step = 1
    while total_mib / step > ticks:
        step *= 2
    return step


def _size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib and mib % 1024 == 0 else f"{mib} MiB"


class _Canvas:
    """SVG elements in one theme, with the colours of the picture's domains."""

    def __init__(self, picture: MemoryPicture, theme: Theme) -> None:
        self.picture, self.t = picture, theme
        self.colour = {d: domain_colour(i) for i, d in enumerate(picture.domids())}
        self.out: list[str] = []

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: int = FONT,
        *,
        fill: str | None = None,
        bold: bool = False,
        anchor: str = "start",
    ) -> None:
        from html import escape  # only the SVG needs it

        weight = ' font-weight="bold"' if bold else ""
        self.out.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill or self.t.text}"'
            f'{weight} text-anchor="{anchor}">{escape(text)}</text>'
        )

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: str,
        stroke: str,
        title: str = "",
        extra: str = "",
    ) -> None:
        from html import escape

        inner = f"<title>{escape(title)}</title>" if title else ""
        self.out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}" '
            f'stroke="{stroke}"{extra}>{inner}</rect>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float) -> None:
        self.out.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{self.t.muted}"/>'
        )

    def segment(self, key: str, x: float, y: float, w: float, h: float = BAR_H) -> None:
        """A piece of a bar: a domain's pages (solid, its name or id on it when there is
        room), a domain's claim (hatched in its colour), free memory, or the rest."""
        t, kind = self.t, key[0]
        if kind == "d":
            d = int(key[1:])
            fill = self.colour[d]
            self.rect(x, y, w, h, fill, t.background, f"d{d}")
            for label in (self.picture.names.get(d, f"d{d}"), f"d{d}"):
                if w >= len(label) * 0.6 * (FONT - 2) + 8:
                    self.text(
                        x + w / 2, y + h / 2 + 5, label, FONT - 2, fill=_ink(fill), anchor="middle"
                    )
                    break
        elif kind == "c":
            d = int(key[1:])
            self.rect(
                x,
                y,
                w,
                h,
                f"url(#hatch{d})",
                self.colour[d],
                f"claimed by d{d}",
                ' stroke-width="1.5"',
            )
        else:
            self.rect(x, y, w, h, t.free if key == FREE else t.other, t.border)

    def patterns(self) -> str:
        fills = [(d, c) for d, c in self.colour.items()] + [(-1, self.t.muted)]
        return "".join(
            f'<pattern id="hatch{d}" width="8" height="8" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="8" height="8" fill="{self.t.free}"/>'
            f'<rect width="4" height="8" fill="{fill}"/></pattern>'
            for d, fill in fills
        )


def _legend(picture: MemoryPicture, d: int) -> str:
    """A domain's legend entry: name, id, memory held and claimed (MiB)."""
    held = _mib(sum(n.domains.get(d, 0) for n in picture.nodes))
    node_claims = sum(n.claims.get(d, 0) for n in picture.nodes)
    claimed = _mib(node_claims + picture.host_claims.get(d, 0))
    tail = f", {claimed} claimed" if claimed else ""
    return f"{picture.names.get(d, f'd{d}')} (d{d}): {held} MiB{tail}"


def svg(picture: MemoryPicture, theme: str = "light") -> str:
    """The picture as a standalone SVG on a card of its own: a bar per node on one scale
    (domains solid, their node claims hatched in their colour, free memory grey), the scale,
    the host-wide claims on the same scale, the host's free memory, and a legend with each
    domain's memory and claims."""
    c = _Canvas(picture, THEMES[theme])
    t = c.t
    biggest = max([n.size for n in picture.nodes] + [sum(picture.host_claims.values()), 1])
    scale = BAR_W / biggest  # px per page, for every bar
    left = PAD + LABEL

    total = sum(n.size for n in picture.nodes)
    y: float = PAD + 20
    c.text(PAD, y, f"NUMA memory: {len(picture.nodes)} nodes, {_size(_mib(total))}", 20, bold=True)
    y += 22
    for node in picture.nodes:
        c.text(PAD, y + BAR_H / 2 + 1, f"node {node.node}", FONT + 2, bold=True)
        c.text(PAD, y + BAR_H / 2 + 18, _size(_mib(node.size)), FONT - 2, fill=t.muted)
        x: float = left
        for key, pages in _node_parts(node):
            w = pages * scale
            if key[0] in "dc" and pages:
                w = max(w, 2.0)  # a small domain or claim stays visible
            elif w < 1:
                continue
            c.segment(key, x, y, w)
            x += w
        numbers = (
            f"{_mib(node.used)} MiB used  ·  {_mib(node.claimed)} MiB claimed  ·  "
            f"{_mib(node.free - node.claimed)} MiB free"
        )
        c.text(left, y + BAR_H + 18, numbers, FONT - 2, fill=t.muted)
        y += BAR_H + 40

    # the scale, under the node bars
    step = _tick_step(_mib(biggest))
    c.line(left, y, left + BAR_W, y)
    for mib in range(0, _mib(biggest) + 1, step):
        tx = left + mib * PAGES_PER_MIB * scale
        c.line(tx, y, tx, y + 5)
        anchor = "start" if mib == 0 else "end" if tx > WIDTH - PAD - 30 else "middle"
        c.text(tx, y + 19, _size(mib) if mib else "0", FONT - 2, fill=t.muted, anchor=anchor)
    y += 40

    # host-wide claims: claimed memory bound to no node, on the same scale
    c.text(PAD, y + 13, "host-wide", FONT, bold=True)
    c.text(PAD, y + 29, "claims", FONT, bold=True)
    c.rect(left, y, BAR_W, BAR_H - 8, "none", t.border, extra=' stroke-dasharray="4 3"')
    x = float(left)
    for d, pages in sorted(picture.host_claims.items()):
        if pages:
            w = max(pages * scale, 2.0)
            c.segment(f"c{d}", x, y, w, BAR_H - 8)
            x += w
    host = _mib(sum(picture.host_claims.values()))
    c.text(left, y + BAR_H + 10, f"{host} MiB claimed, on any node", FONT - 2, fill=t.muted)
    y += BAR_H + 40
    c.text(
        PAD,
        y,
        f"Free memory (xl info free_memory): {_mib(picture.free_memory)} MiB",
        FONT,
        bold=True,
    )
    y += 14

    # the legend: domains in columns, then what hatching and grey mean
    entries = [(c.colour[d], _legend(picture, d)) for d in picture.domids()]
    entries += [("url(#hatch-1)", "claimed (hatched, in the domain's colour)")]
    entries += [(t.free, "free")]
    if any(n.other * scale >= 1 for n in picture.nodes):
        entries += [(t.other, "Xen's own pages (and holes)")]
    columns = 3 if len(entries) > 8 else 2
    col_w = (WIDTH - 2 * PAD) / columns
    chars = int((col_w - 30) / (0.6 * (FONT - 1)))
    rows = -(-len(entries) // columns)
    for i, (fill, label) in enumerate(entries):
        lx, ly = PAD + (i // rows) * col_w, y + 12 + (i % rows) * 22
        c.rect(lx, ly, 16, 14, fill, t.border)
        c.text(
            lx + 22, ly + 12, label if len(label) <= chars else label[: chars - 1] + "…", FONT - 1
        )
    height = round(y + 12 + rows * 22 + PAD)

    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" '
        f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
        f"<defs>{c.patterns()}</defs>\n"
        f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1}" rx="12" '
        f'fill="{t.background}" stroke="{t.border}"/>'
    )
    return "\n".join([head, *c.out, "</svg>"]) + "\n"
