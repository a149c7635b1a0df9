"""The colour themes of the SVG memory picture: the command line offers their names without
loading the picture."""

from __future__ import annotations

from typing import NamedTuple


class Theme(NamedTuple):
    background: str
    border: str
    text: str
    muted: str
    free: str
    other: str


THEMES = {
    "light": Theme("#ffffff", "#c8c8c8", "#1a1a1a", "#555555", "#ececec", "#7a7a7a"),
    "dark": Theme("#1e1e1e", "#4a4a4a", "#f0f0f0", "#b4b4b4", "#3a3a3a", "#8c8c8c"),
}
