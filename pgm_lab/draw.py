"""Drawing graphical models with matplotlib (no graphviz needed); used from chapter 01 on.

Directed graphs are laid out in layers by topological generation (parents above
children); undirected graphs with a spring layout unless ``pos`` is given.
Observed nodes are shaded, as in the slides.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx


def _as_nx(graph) -> nx.Graph:
    if isinstance(graph, nx.Graph):
        return graph
    raise ValueError(f"expected a networkx graph or a pgmpy model, got {type(graph).__name__}")


def layered_layout(graph: nx.DiGraph) -> dict:
    """Positions with parents above children: layer = topological generation."""
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("layered_layout needs a directed acyclic graph")
    pos = {}
    for depth, layer in enumerate(nx.topological_generations(graph)):
        layer = sorted(layer, key=str)
        for i, node in enumerate(layer):
            pos[node] = (i - (len(layer) - 1) / 2, -depth)
    return pos


def draw_graph(
    graph,
    pos: dict | None = None,
    ax=None,
    *,
    observed: Iterable = (),
    highlight: Iterable = (),
    highlight_edges: Iterable = (),
    labels: dict | None = None,
    title: str | None = None,
    node_size: int = 900,
    font_size: int = 11,
    edge_color: str = "0.25",
    highlight_color: str = "tab:red",
):
    """Draw a DAG or an undirected graph; return the matplotlib axes.

    ``observed`` nodes are shaded grey, ``highlight`` nodes get a coloured ring and
    ``highlight_edges`` (pairs) are drawn thick in ``highlight_color``.
    """
    import matplotlib.pyplot as plt

    g = _as_nx(graph)
    observed, highlight = set(observed), set(highlight)
    unknown = (observed | highlight) - set(g.nodes)
    if unknown:
        raise ValueError(
            f"unknown nodes {sorted(map(str, unknown))}; the graph has {sorted(map(str, g.nodes))}"
        )
    if pos is None:
        pos = (
            layered_layout(g)
            if g.is_directed() and nx.is_directed_acyclic_graph(g)
            else nx.spring_layout(g, seed=0)
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    hl = {tuple(e) for e in highlight_edges}
    if not g.is_directed():
        hl |= {(v, u) for u, v in hl}
    plain = [e for e in g.edges if tuple(e) not in hl]
    bold = [e for e in g.edges if tuple(e) in hl]
    common = {"ax": ax, "arrows": g.is_directed(), "node_size": node_size}
    if g.is_directed():
        common.update(arrowstyle="-|>", arrowsize=16)
    nx.draw_networkx_edges(g, pos, edgelist=plain, edge_color=edge_color, width=1.4, **common)
    if bold:
        nx.draw_networkx_edges(g, pos, edgelist=bold, edge_color=highlight_color, width=3.2, **common)
    colors = ["0.75" if n in observed else "white" for n in g.nodes]
    rings = [highlight_color if n in highlight else "black" for n in g.nodes]
    widths = [3.0 if n in highlight else 1.4 for n in g.nodes]
    nx.draw_networkx_nodes(
        g, pos, ax=ax, node_color=colors, edgecolors=rings, linewidths=widths, node_size=node_size
    )
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=font_size)
    ax.set_axis_off()
    ax.margins(0.15)
    if title:
        ax.set_title(title)
    return ax
