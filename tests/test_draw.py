import networkx as nx
import pytest

from pgm_lab import draw
from pgm_lab import factorization as fz


def test_layered_layout_puts_parents_above_children():
    g = nx.DiGraph(fz.SEVEN_NODE_EDGES)
    pos = draw.layered_layout(g)
    for u, v in g.edges:
        assert pos[u][1] > pos[v][1]
    with pytest.raises(ValueError, match="acyclic"):
        draw.layered_layout(nx.DiGraph([("a", "b"), ("b", "a")]))


def test_draw_graph_directed_undirected_and_pgmpy():
    ax = draw.draw_graph(
        fz.bayesian_network(fz.SEVEN_NODE_EDGES),
        observed=["x7"],
        highlight=["x4"],
        highlight_edges=[("x4", "x7")],
        title="t",
    )
    assert ax.get_title() == "t"
    draw.draw_graph(nx.Graph([("a", "b"), ("b", "c")]), highlight_edges=[("b", "a")])


def test_draw_graph_errors():
    with pytest.raises(ValueError, match="unknown nodes"):
        draw.draw_graph(nx.DiGraph([("a", "b")]), observed=["z"])
    with pytest.raises(ValueError, match="networkx graph"):
        draw.draw_graph([("a", "b")])
