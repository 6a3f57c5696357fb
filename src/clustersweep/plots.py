"""Plotly figures that explain a run's clusters; class names on the axes, never bare numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from clustersweep.metrics import NOISE, contingency


def cluster_names(ks: np.ndarray) -> list[str]:
    return ["noise" if k == NOISE else f"C{k}" for k in ks]


def contingency_heatmaps(y: np.ndarray, clusters: np.ndarray, class_names: list[str]) -> tuple[go.Figure, go.Figure]:
    """True class × cluster: counts, and the fraction of each class that lands in each cluster."""
    table, classes, ks = contingency(y, clusters)
    rows, cols = [class_names[c] for c in classes], cluster_names(ks)
    counts = go.Figure(go.Heatmap(z=table, x=cols, y=rows, colorscale="Viridis", text=table, texttemplate="%{text}"))
    counts.update_layout(
        title="True class × cluster (counts, test set)", xaxis_title="cluster", yaxis_title="true class"
    )
    frac = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    norm = go.Figure(
        go.Heatmap(
            z=frac, x=cols, y=rows, colorscale="Blues", zmin=0, zmax=1, text=np.round(frac, 2), texttemplate="%{text}"
        )
    )
    norm.update_layout(
        title="True class × cluster (fraction of each class)", xaxis_title="cluster", yaxis_title="true class"
    )
    for fig in (counts, norm):
        fig.update_yaxes(autorange="reversed", type="category")
        fig.update_xaxes(type="category")
    return counts, norm


def cluster_scatter(Z: np.ndarray, clusters: np.ndarray, n_points: int, seed: int, title: str) -> go.Figure:
    """First two components of a seeded sample, one trace per cluster."""
    idx = np.random.RandomState(seed).permutation(len(Z))[:n_points]
    Z, clusters = Z[idx], clusters[idx]
    fig = go.Figure()
    ks = np.unique(clusters)
    for k, name in zip(ks, cluster_names(ks), strict=True):
        pts = Z[clusters == k]
        y = pts[:, 1] if Z.shape[1] > 1 else np.zeros(len(pts))
        fig.add_trace(go.Scattergl(x=pts[:, 0], y=y, mode="markers", name=name, marker={"size": 3, "opacity": 0.6}))
    fig.update_layout(title=title, xaxis_title="component 1", yaxis_title="component 2", legend_title="cluster")
    return fig


def image_grid(images: np.ndarray, titles: list[str], title: str, cols: int = 5) -> go.Figure:
    """Images (n, H, W) in a grid of grey heatmaps, each titled."""
    rows = max(1, math.ceil(len(images) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    for i, img in enumerate(images):
        fig.add_trace(
            go.Heatmap(z=img, colorscale="gray", zmin=0, zmax=1, showscale=False, name=titles[i]),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(title=title, height=200 * rows + 80)
    return fig


def write_html(fig: go.Figure, path: Path, embed_plotlyjs: bool) -> Path:
    """Write HTML for MLflow's artifact viewer; plotly.js from its CDN unless embedded for offline use."""
    fig.write_html(path, include_plotlyjs=True if embed_plotlyjs else "cdn", full_html=True)
    return path
