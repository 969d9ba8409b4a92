"""Graph input for chapters 02-04: one checked way to read a graph, networkx's public API only.

:func:`as_graph` accepts a ``networkx`` graph or a pgmpy model built on one
(``DiscreteBayesianNetwork``, ``DAG``, ``DiscreteMarkovNetwork``) and refuses a directed
graph with a cycle, naming the cycle: d-separation (chapter 02) needs a DAG. The modules
that walk graphs (``independence``, ``mrf``, ``numeric_independence``) read neighbours
through ``G.pred``, ``G.succ`` and ``G.adj``, never networkx's private dicts.
"""

from __future__ import annotations

import networkx as nx

__all__ = ["as_graph", "is_acyclic"]


def is_acyclic(g: nx.DiGraph) -> bool:
    """Kahn's algorithm: every node can be peeled off (in-degree 0) iff there is no cycle."""
    succ = g.succ
    indegree = {n: len(p) for n, p in g.pred.items()}
    stack = [n for n, d in indegree.items() if d == 0]
    peeled = 0
    while stack:
        n = stack.pop()
        peeled += 1
        for c in succ[n]:
            indegree[c] -= 1
            if indegree[c] == 0:
                stack.append(c)
    return peeled == len(indegree)


def as_graph(graph, *, check_acyclic: bool = True) -> nx.Graph:
    """Return ``graph`` as a networkx graph after checking it.

    Accepts a ``networkx.DiGraph`` / ``networkx.Graph`` and the pgmpy models built on them
    (``DiscreteBayesianNetwork``, ``DAG``, ``DiscreteMarkovNetwork``, ``UndirectedGraph``).
    A directed graph must be acyclic: a directed cycle raises ``ValueError`` naming it.
    """
    from pgmpy.models import FactorGraph

    if isinstance(graph, FactorGraph):
        raise ValueError(
            "graph is a pgmpy FactorGraph (variable and factor nodes); pass the Markov network "
            "(e.g. factor_graph.to_markov_model()) instead"
        )
    if not isinstance(graph, nx.Graph):
        raise ValueError(
            "graph must be a networkx DiGraph/Graph or a pgmpy DiscreteBayesianNetwork/"
            f"DiscreteMarkovNetwork, got {type(graph).__name__}"
        )
    if check_acyclic and graph.is_directed() and not is_acyclic(graph):
        cycle = nx.find_cycle(graph)
        path = " → ".join(repr(u) for u, _ in cycle) + f" → {cycle[0][0]!r}"
        raise ValueError(f"the directed graph has a directed cycle ({path}); d-separation needs a DAG")
    return graph
