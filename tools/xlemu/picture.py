"""A picture of NUMA memory: one bar per node, split into each domain's pages, memory
claimed on the node, and free memory; as terminal text or as SVG for documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
CLAIMED, FREE = ":", "."
PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#ff9da7",
    "#9c755f",
    "#e15759",
    "#bab0ac",
]
CLAIMED_COLOUR, FREE_COLOUR = "#d0d0d0", "#f4f4f4"


@dataclass
class NodeUsage:
    """One node in pages: its size, what each domain holds there, what is claimed on it
    (node claims only) and what is free (claims not subtracted, as Xen reports it)."""

    node: int
    size: int
    free: int
    domains: dict[int, int] = field(default_factory=dict)
    claimed: int = 0


@dataclass
class MemoryPicture:
    nodes: list[NodeUsage]
    names: dict[int, str]
    host_claims: int = 0  # host-wide claims, not bound to any node

    def domids(self) -> list[int]:
        return sorted({d for n in self.nodes for d, pages in n.domains.items() if pages})


def _mib(pages: int) -> int:
    return pages >> 8


def _segments(node: NodeUsage, width: int) -> list[tuple[str, int]]:
    """(key, cells) per segment; cells add up to ``width`` (largest remainders win)."""
    parts = [(str(d), p) for d, p in sorted(node.domains.items()) if p]
    claimed = min(node.claimed, node.free)
    parts += [(CLAIMED, claimed), (FREE, node.free - claimed)]
    total = max(node.size, 1)
    exact = [(key, pages * width / total) for key, pages in parts]
    cells = [(key, int(x)) for key, x in exact]
    short = width - sum(c for _, c in cells)
    order = sorted(range(len(exact)), key=lambda i: exact[i][1] - cells[i][1], reverse=True)
    for i in order[: max(short, 0)]:
        cells[i] = (cells[i][0], cells[i][1] + 1)
    return cells


def bars(picture: MemoryPicture, width: int = 50) -> str:
    """Text bars: a letter per domain, ':' for claimed, '.' for free memory."""
    symbol = {d: SYMBOLS[i % len(SYMBOLS)] for i, d in enumerate(picture.domids())}
    lines = []
    for node in picture.nodes:
        bar = "".join(
            (symbol[int(key)] if key not in (CLAIMED, FREE) else key) * cells
            for key, cells in _segments(node, width)
        )
        used = sum(node.domains.values())
        lines.append(
            f"NODE{node.node} [{bar}] {_mib(node.size):>7} MiB: used {_mib(used)}, "
            f"claimed {_mib(min(node.claimed, node.free))}, free {_mib(node.free - node.claimed)}"
        )
    legend = [f"{symbol[d]}={picture.names.get(d, f'd{d}')} (d{d})" for d in picture.domids()]
    lines.append("legend: " + "  ".join([*legend, f"{CLAIMED}=claimed", f"{FREE}=free"]))
    lines.append(f"host-wide claims (any node): {_mib(picture.host_claims)} MiB")
    return "\n".join(lines)


def svg(picture: MemoryPicture, width: int = 600) -> str:
    """The same picture as a standalone SVG document."""
    colour = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(picture.domids())}
    bar_h, gap, left, top = 28, 14, 70, 30
    height = top + len(picture.nodes) * (bar_h + gap) + 40 + 18 * (len(colour) + 2)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="18" font-weight="bold">NUMA memory '
        f"(host-wide claims: {_mib(picture.host_claims)} MiB)</text>",
    ]
    for row, node in enumerate(picture.nodes):
        y = top + row * (bar_h + gap)
        out.append(f'<text x="10" y="{y + 18}">NODE{node.node}</text>')
        x = float(left)
        for key, cells in _segments(node, width):
            fill = {CLAIMED: CLAIMED_COLOUR, FREE: FREE_COLOUR}.get(key) or colour[int(key)]
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cells}" height="{bar_h}" fill="{fill}" '
                f'stroke="#888" stroke-width="0.3"/>'
            )
            x += cells
        out.append(
            f'<text x="{left + width + 4}" y="{y + 18}" font-size="10">{_mib(node.size)} MiB</text>'
        )
    y = top + len(picture.nodes) * (bar_h + gap) + 10
    entries = [(colour[d], f"{picture.names.get(d, f'd{d}')} (d{d})") for d in picture.domids()]
    entries += [(CLAIMED_COLOUR, "claimed on the node"), (FREE_COLOUR, "free")]
    for i, (fill, label) in enumerate(entries):
        out.append(
            f'<rect x="10" y="{y + 18 * i}" width="12" height="12" fill="{fill}" stroke="#888"/>'
        )
        out.append(f'<text x="28" y="{y + 18 * i + 10}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
