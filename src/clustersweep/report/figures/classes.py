"""True classes against clusters, and the classes' own make-up. Class ids are shown by class name and cluster ids
by `cluster_names`, so no figure needs a lookup table to read."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from clustersweep.stages.metrics import NOISE, contingency


def cluster_names(ks: np.ndarray) -> list[str]:
    """Display names for cluster ids ("C3"; DBSCAN's -1 is "noise"), so clusters never read as classes."""
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


def cluster_purity(y: np.ndarray, clusters: np.ndarray, class_names: list[str]) -> go.Figure:
    """Share of each cluster's top true class (named on the bar and the axis): a pure cluster is a class found
    without labels."""
    table, classes, ks = contingency(y, clusters)
    sizes = table.sum(axis=0)
    top = [class_names[c] for c in classes[table.argmax(axis=0)]]
    names = cluster_names(ks)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=table.max(axis=0) / sizes,
            text=top,
            customdata=sizes,
            hovertemplate="%{x}: %{y:.0%} %{text}<br>%{customdata} images<extra></extra>",
            name="purity",
        )
    )
    title = "Cluster purity (share of the top true class)"
    fig.update_layout(title=title, xaxis_title="cluster: top true class", yaxis_title="purity")
    fig.update_xaxes(type="category", tickvals=names, ticktext=[f"{k}<br>{c}" for k, c in zip(names, top, strict=True)])
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def best_cluster_recall(y: np.ndarray, clusters: np.ndarray, class_names: list[str]) -> go.Figure:
    """Per class, the largest share in one cluster (named on the bar): whether a class stays together.

    Noise is not a cluster, so it never counts as a class's best; a class with no clustered point scores 0, "none".
    """
    table, classes, ks = contingency(y, clusters)
    real, real_ks = table[:, ks != NOISE], ks[ks != NOISE]
    totals = table.sum(axis=1)
    if real.shape[1]:
        share, where = real.max(axis=1) / totals, cluster_names(real_ks[real.argmax(axis=1)])
    else:
        share, where = np.zeros(len(classes)), ["none"] * len(classes)
    fig = go.Figure(
        go.Bar(
            x=[class_names[c] for c in classes],
            y=share,
            text=where,
            hovertemplate="%{x}: %{y:.0%} in %{text}<extra></extra>",
            name="best cluster recall",
        )
    )
    fig.update_layout(
        title="Per-class best cluster recall (largest share of a class in one cluster)",
        xaxis_title="true class",
        yaxis_title="share of the class",
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def cluster_sizes(clusters: np.ndarray, title: str) -> go.Figure:
    """Points per cluster (noise apart), largest first: what a clustering found, labels or not."""
    ks, counts = np.unique(clusters, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    fig = go.Figure(go.Bar(x=cluster_names(ks[order]), y=counts[order], text=counts[order], name="points"))
    fig.update_layout(title=title, xaxis_title="cluster", yaxis_title="points")
    fig.update_xaxes(type="category")
    return fig


def class_counts(y: np.ndarray, class_names: list[str]) -> go.Figure:
    """Images per class, every class listed (a missing class shows as 0), to check the balance."""
    counts = np.bincount(y, minlength=len(class_names))
    fig = go.Figure(go.Bar(x=class_names, y=counts, text=counts, name="images"))
    fig.update_layout(title="Images per class", xaxis_title="class", yaxis_title="images")
    fig.update_xaxes(type="category")
    return fig


def brightness_per_class(X: np.ndarray, y: np.ndarray, class_names: list[str]) -> go.Figure:
    """Mean intensity per class, ascending: how much ink each class has, a cue distance-based clusters pick up."""
    classes, inv = np.unique(y, return_inverse=True)
    means = np.bincount(inv, weights=X.mean(axis=1)) / np.bincount(inv)
    order = np.argsort(means)
    fig = go.Figure(go.Bar(x=[class_names[c] for c in classes[order]], y=means[order], name="mean intensity"))
    fig.update_layout(title="Average image brightness per class", xaxis_title="class", yaxis_title="mean intensity")
    fig.update_xaxes(type="category")
    return fig


def intensity_histogram(X: np.ndarray, n_sample: int, seed: int) -> go.Figure:
    """Pixel values of a seeded sample in 50 bins; binned here, so the HTML holds 50 bars, not every pixel."""
    flat = X.reshape(-1)
    pick = np.random.default_rng(seed).choice(flat.size, size=min(n_sample, flat.size), replace=False)
    counts, edges = np.histogram(flat[pick], bins=50, range=(0.0, 1.0))
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name="pixels"))
    fig.update_layout(
        title=f"Pixel intensity distribution ({len(pick):,} sampled pixels)",
        xaxis_title="intensity (0 = black, 1 = white)",
        yaxis_title="pixels",
        bargap=0,
    )
    return fig
