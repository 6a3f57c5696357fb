"""Embedded points on their first components, a trace per true class or per cluster (the legend hides one)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from clustersweep.report.figures.classes import cluster_names


def _sample(n: int, n_points: int, seed: int) -> np.ndarray:
    """The same seeded subset for every scatter, so class and cluster views of one run show the same points."""
    return np.random.RandomState(seed).permutation(n)[:n_points]


def _components(Z: np.ndarray, n: int) -> np.ndarray:
    """The first n columns of Z, zero-padded when the reducer kept fewer."""
    out = np.zeros((len(Z), n))
    m = min(n, Z.shape[1])
    out[:, :m] = Z[:, :m]
    return out


def _grouped_scatter(
    Z: np.ndarray,
    labels: np.ndarray,
    name_of: Mapping[int, str],
    n_points: int,
    seed: int,
    title: str,
    legend: str,
    dims: int,
) -> go.Figure:
    """One trace per group, so the legend names each group and can hide it."""
    idx = _sample(len(Z), n_points, seed)
    P, labels = _components(Z[idx], dims), labels[idx]
    fig = go.Figure()
    for k in np.unique(labels):
        pts, name = P[labels == k], name_of[int(k)]
        if dims == 2:
            marker = {"size": 3, "opacity": 0.6}
            fig.add_trace(go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=name, marker=marker))
        else:
            marker = {"size": 2, "opacity": 0.5}
            fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers", name=name, marker=marker))
    axes = {f"{a}axis": {"title": {"text": f"component {i + 1}"}} for i, a in enumerate("xyz"[:dims])}
    fig.update_layout(title=title, legend_title=legend, **(axes if dims == 2 else {"scene": axes}))
    return fig


def cluster_scatter(Z: np.ndarray, clusters: np.ndarray, n_points: int, seed: int, title: str) -> go.Figure:
    """First two components of a seeded sample, one trace per cluster."""
    ks = np.unique(clusters)
    name_of = dict(zip(ks.tolist(), cluster_names(ks), strict=True))
    return _grouped_scatter(Z, clusters, name_of, n_points, seed, title, "cluster", dims=2)


def class_scatter_2d(
    Z: np.ndarray, y: np.ndarray, class_names: list[str], n_points: int, seed: int, title: str
) -> go.Figure:
    """First two components of a seeded sample coloured by true class: how far the classes separate unsupervised."""
    return _grouped_scatter(Z, y, dict(enumerate(class_names)), n_points, seed, title, "true class", dims=2)


def class_scatter_3d(
    Z: np.ndarray, y: np.ndarray, class_names: list[str], n_points: int, seed: int, title: str
) -> go.Figure:
    """First three components of a seeded sample coloured by true class, to rotate what 2-D overlaps."""
    return _grouped_scatter(Z, y, dict(enumerate(class_names)), n_points, seed, title, "true class", dims=3)
