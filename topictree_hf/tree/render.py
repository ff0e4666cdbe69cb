"""Pictures of a tree: an indented terminal view and a sunburst PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path

from topictree_hf.tree.model import TopicTree


def render_text(tree: TopicTree, max_depth: int | None = None) -> str:
    """The tree with box-drawing branches, cut at `max_depth` (counts of hidden children shown)."""
    lines = [tree.root]

    def walk(nid: str, prefix: str) -> None:
        kids = tree.children[nid]
        for i, cid in enumerate(kids):
            last = i == len(kids) - 1
            node = tree.nodes[cid]
            hidden = max_depth is not None and node.depth >= max_depth and tree.children[cid]
            more = f"  (+{_count(tree, cid)} below)" if hidden else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{node.topic}{more}")
            if not hidden:
                walk(cid, prefix + ("    " if last else "│   "))

    walk(tree.root_id, "")
    return "\n".join(lines)


def _count(tree: TopicTree, nid: str) -> int:
    return sum(1 + _count(tree, c) for c in tree.children[nid])


def render_png(tree: TopicTree, path: Path, max_depth: int = 4) -> None:
    """A sunburst: one ring per level, each node's wedge proportional to its leaves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leaves: dict[str, int] = {}

    def count(nid: str) -> int:
        leaves[nid] = sum(count(c) for c in tree.children[nid]) or 1
        return leaves[nid]

    count(tree.root_id)
    depth = min(tree.depth, max_depth)
    fig = plt.figure(figsize=(10, 10), dpi=110)
    ax = fig.add_subplot(projection="polar")
    ax.set_axis_off()
    cmap = plt.get_cmap("tab20")
    ring = 1.0 / (depth + 1)

    def draw(nid: str, start: float, width: float, hue: int) -> None:
        node = tree.nodes[nid]
        if node.depth > depth:
            return
        inner = node.depth * ring
        color = "#f4f4f4" if node.depth == 0 else cmap(hue % 20)
        alpha = 1.0 if node.depth <= 1 else max(0.35, 1.0 - 0.2 * node.depth)
        ax.bar(start + width / 2, ring, width=width, bottom=inner, color=color, alpha=alpha,
               edgecolor="white", linewidth=0.6)
        _label(ax, node.topic, start + width / 2, inner + ring / 2, width, ring, node.depth)
        pos = start
        for i, cid in enumerate(tree.children[nid]):
            w = width * leaves[cid] / leaves[nid]
            draw(cid, pos, w, hue if node.depth else i * 2)
            pos += w

    draw(tree.root_id, 0.0, 2 * math.pi, 0)
    ax.set_title(f"{tree.root}: {len(tree.nodes)} topics, {leaves[tree.root_id]} leaves", pad=18)
    tmp = path.with_name(f".{path.name}.tmp")  # a killed run must not leave half a picture to copy
    try:
        fig.savefig(tmp, bbox_inches="tight", format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _label(ax: object, text: str, theta: float, radius: float, width: float, ring: float, depth: int) -> None:
    arc = width * radius  # wedge length in axis units
    if depth == 0:
        ax.text(0, 0, _wrap(text, 14), ha="center", va="center", fontsize=9, weight="bold")  # type: ignore[attr-defined]
        return
    if arc < 0.035:
        return
    deg = math.degrees(theta)
    rotation = deg if deg <= 90 or deg >= 270 else deg + 180
    chars = max(6, int(ring * 95))
    label = text if len(text) <= chars else text[: chars - 1] + "…"
    size = 8 if depth == 1 else 6.5 if depth == 2 else 5.5
    ax.text(theta, radius, label, rotation=rotation, rotation_mode="anchor", ha="center", va="center",  # type: ignore[attr-defined]
            fontsize=size)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines)
