"""Watches: which changes a watch sees (watch.c is_child and the match modes of
fire_watches), and the path its events report."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Match(Enum):
    EXACT = 0  # a node below a removed one: only a watch on that very node
    SUBTREE = 1  # a change: watches on the node or any parent, within their depth
    DEPTH = 2  # "@special/<domid>": the watch on it, or a depth watch on "@special"
    NODEPTH = 3  # "@special": watches on it without a depth


def is_child(child: str, parent: str, depth: int) -> bool:
    """Whether ``child`` is ``parent`` or below it, at most ``depth`` levels (< 0: any)."""
    n = len(parent)
    if not child.startswith(parent):
        return False
    if n > 1 and len(child) > n and child[n] != "/":
        return False
    if depth < 0 or len(child) == n:
        return True
    levels = 1 if n == 1 else 0  # below "/" the first name is a level already
    i = n
    while levels <= depth:
        if i == len(child):
            return True
        if child[i] == "/":
            levels += 1
        i += 1
    return False


class Watch(NamedTuple):
    node: str  # canonical path or @special
    token: str
    depth: int = -1  # -1: no limit
    prefix_len: int = 0  # a relative watch reports paths without its domain's prefix

    def matches(self, name: str, match: Match) -> bool:
        if match is Match.EXACT:
            return name == self.node
        if match is Match.SUBTREE:
            return is_child(name, self.node, self.depth)
        if match is Match.DEPTH:
            return name == self.node or (self.depth > 0 and is_child(name, self.node, self.depth))
        return name == self.node and self.depth < 0

    def event_path(self, name: str) -> str:
        return name[self.prefix_len :]
