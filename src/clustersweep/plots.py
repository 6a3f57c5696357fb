"""Plotly figures for every plot of the Fashion-MNIST notebook: arrays in, figure out, no I/O but `write_html`.

Class ids are shown by class name and cluster ids by `cluster_names`, so no figure needs a lookup table to read.
Images are flat rows in [0, 1] reshaped to `image_shape` (H, W) and drawn by `image_grid`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots

from clustersweep.metrics import NOISE, contingency


def cluster_names(ks: np.ndarray) -> list[str]:
    """Display names for cluster ids ("C3"; DBSCAN's -1 is "noise"), so clusters never read as classes."""
    return ["noise" if k == NOISE else f"C{k}" for k in ks]


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


def _two_axes() -> go.Figure:
    """A figure with a right-hand y axis, for two quantities of different scale over one x."""
    return make_subplots(specs=[[{"secondary_y": True}]])


def _numeric(s: pd.Series) -> pd.Series:
    """Numbers as numbers, so swept values logged as text (MLflow params) sort 2 < 10."""
    try:
        return pd.to_numeric(s)
    except (ValueError, TypeError):
        return s


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
    ks = np.unique(clusters)
    name_of = dict(zip(ks.tolist(), cluster_names(ks), strict=True))
    return _grouped_scatter(Z, clusters, name_of, n_points, seed, title, "cluster", dims=2)


def image_grid(
    images: np.ndarray, titles: list[str], title: str, cols: int = 5, row_labels: list[str] | None = None
) -> go.Figure:
    """Images (n, H, W) as one grey mosaic, each tile titled (and each row labelled, if given).

    One heatmap trace instead of a subplot per image: a tenth of the time to build and of the HTML to load.
    """
    images = np.asarray(images, dtype=float)
    n, h, w = images.shape
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    top, gap = max(h // 3, 6), 2  # room for a tile's title above it; space between tiles
    pitch_y, pitch_x = h + top, w + gap
    mosaic = np.full((rows * pitch_y, cols * pitch_x - gap), np.nan)
    notes = []
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * pitch_y + top : (r + 1) * pitch_y, c * pitch_x : c * pitch_x + w] = img
        if titles[i]:
            notes.append({"x": c * pitch_x + (w - 1) / 2, "y": r * pitch_y + top - 1.5, "text": titles[i]})
    for r, label in enumerate(row_labels or []):
        notes.append({"x": -1.5, "y": r * pitch_y + top + h / 2, "text": label, "xanchor": "right"})
    fig = go.Figure(
        go.Heatmap(z=mosaic, colorscale="gray", zmin=0, zmax=1, showscale=False, hoverongaps=False, name=title)
    )
    for note in notes:
        fig.add_annotation(
            showarrow=False, yanchor="bottom" if "xanchor" not in note else "middle", font={"size": 11}, **note
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    tile_px = min(180, max(90, 1000 // cols))
    fig.update_layout(  # no fixed width: the mosaic shrinks to fit the frame (MLflow's artifact viewer is narrow)
        title=title,
        height=int(tile_px * rows * pitch_y / h) + 100,
        plot_bgcolor="white",
        margin={"l": 120 if row_labels else 40},
    )
    return fig


_CDN = f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"  # the bundled version


def to_html(fig: go.Figure, embed_plotlyjs: bool) -> str:
    """HTML for MLflow's artifact viewer; plotly.js from its CDN unless embedded for offline use."""
    return fig.to_html(include_plotlyjs=True if embed_plotlyjs else _CDN, full_html=True)


def write_html(fig: go.Figure, path: Path, embed_plotlyjs: bool) -> Path:
    path.write_text(to_html(fig, embed_plotlyjs), encoding="utf-8")
    return path


# Phase 1: data understanding


def class_counts(y: np.ndarray, class_names: list[str]) -> go.Figure:
    """Images per class, every class listed (a missing class shows as 0), to check the balance."""
    counts = np.bincount(y, minlength=len(class_names))
    fig = go.Figure(go.Bar(x=class_names, y=counts, text=counts, name="images"))
    fig.update_layout(title="Images per class", xaxis_title="class", yaxis_title="images")
    fig.update_xaxes(type="category")
    return fig


def samples_per_class(X: np.ndarray, y: np.ndarray, class_names: list[str], image_shape: tuple[int, int]) -> go.Figure:
    """The first image of each class, to see what each class name looks like."""
    classes, first = np.unique(y, return_index=True)
    images = X[first].reshape(-1, *image_shape)
    return image_grid(images, [class_names[c] for c in classes], "One sample per class")


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


def brightness_per_class(X: np.ndarray, y: np.ndarray, class_names: list[str]) -> go.Figure:
    """Mean intensity per class, ascending: how much ink each class has, a cue distance-based clusters pick up."""
    classes, inv = np.unique(y, return_inverse=True)
    means = np.bincount(inv, weights=X.mean(axis=1)) / np.bincount(inv)
    order = np.argsort(means)
    fig = go.Figure(go.Bar(x=[class_names[c] for c in classes[order]], y=means[order], name="mean intensity"))
    fig.update_layout(title="Average image brightness per class", xaxis_title="class", yaxis_title="mean intensity")
    fig.update_xaxes(type="category")
    return fig


def average_image(X: np.ndarray, image_shape: tuple[int, int]) -> go.Figure:
    """The mean of all images: where the pixels that carry shape sit."""
    return image_grid(X.mean(axis=0).reshape(1, *image_shape), ["all images"], "Overall average image", cols=1)


def class_prototypes(X: np.ndarray, y: np.ndarray, class_names: list[str], image_shape: tuple[int, int]) -> go.Figure:
    """Each class's average image: the prototype a centroid-based clusterer could find."""
    classes = np.unique(y)
    images = np.stack([X[y == c].mean(axis=0) for c in classes]).reshape(-1, *image_shape)
    return image_grid(images, [class_names[c] for c in classes], "Class-average images (prototypes)")


# Phase 2: dimensionality reduction


def explained_variance(evr: ArrayLike, k95: int | None, title: str) -> go.Figure:
    """Per-component and cumulative explained variance, to choose k; the 95% point marked when known."""
    evr = np.asarray(evr, dtype=float)
    x = np.arange(1, len(evr) + 1)
    fig = _two_axes()
    fig.add_trace(go.Scatter(x=x, y=evr, mode="lines", name="per-component EVR"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=np.cumsum(evr), mode="lines", name="cumulative EVR"), secondary_y=True)
    if k95 is not None:
        fig.add_vline(x=k95, line_dash="dash", line_color="grey", annotation_text=f"95% @ {k95}")
    fig.update_layout(title=title, xaxis_title="component (1 = most variance)", hovermode="x unified")
    fig.update_yaxes(title_text="explained variance ratio", secondary_y=False)
    fig.update_yaxes(title_text="cumulative EVR", range=[0, 1], secondary_y=True)
    return fig


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


def reconstructions(
    originals: np.ndarray,
    reconstructed: dict[int, np.ndarray],
    class_names_per_image: list[str],
    image_shape: tuple[int, int],
) -> go.Figure:
    """Originals on top, then one row per k of their reconstructions: what detail each k keeps."""
    ks, n = sorted(reconstructed), len(originals)
    images = np.concatenate([originals, *(reconstructed[k] for k in ks)]).reshape(-1, *image_shape)
    titles = list(class_names_per_image) + [""] * (n * len(ks))  # columns named once, rows labelled
    labels = ["original", *(f"k={k}" for k in ks)]
    return image_grid(images, titles, "Reconstructions at each k (top row: originals)", cols=n, row_labels=labels)


def curves(
    x_by_name: Mapping[str, ArrayLike | None] | None,
    y_by_name: Mapping[str, Sequence[float] | np.ndarray],
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Methods compared on one chart (e.g. PCA vs TruncatedSVD); a missing x is the 1-based position."""
    fig = go.Figure()
    for name, ys in y_by_name.items():
        xs = (x_by_name or {}).get(name)
        x = np.arange(1, len(ys) + 1) if xs is None else xs
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title)
    return fig


# Phase 3: clustering


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


def k_distance(kdist_sorted: ArrayLike, eps: float | None, min_samples: int) -> go.Figure:
    """Sorted distances to the min_samples-th neighbour; DBSCAN's eps sits at the knee, drawn when chosen."""
    d = np.asarray(kdist_sorted, dtype=float)
    fig = go.Figure(go.Scatter(x=np.arange(1, len(d) + 1), y=d, mode="lines", name=f"{min_samples}-NN distance"))
    if eps is not None:
        fig.add_hline(y=eps, line_dash="dash", line_color="grey", annotation_text=f"eps = {eps:.3g}")
    fig.update_layout(
        title=f"k-distance curve (k = min_samples = {min_samples}): look for the knee",
        xaxis_title="points, sorted by distance",
        yaxis_title=f"{min_samples}-NN distance",
    )
    return fig


def eps_sweep(eps: ArrayLike, n_clusters: ArrayLike, noise_fraction: ArrayLike, silhouette: ArrayLike) -> go.Figure:
    """DBSCAN per eps: clusters found against noise left, and silhouette where it is defined (NaN elsewhere)."""
    order = np.argsort(np.asarray(eps, dtype=float))
    e, k, nf, s = (np.asarray(a, dtype=float)[order] for a in (eps, n_clusters, noise_fraction, silhouette))
    fig = _two_axes()
    fig.add_trace(go.Scatter(x=e, y=k, mode="lines+markers", name="clusters"), secondary_y=False)
    fig.add_trace(go.Scatter(x=e, y=nf, mode="lines+markers", name="noise fraction"), secondary_y=True)
    sil = go.Scatter(
        x=e, y=s, mode="markers", name="silhouette (noise left out)", marker={"size": 10, "symbol": "diamond"}
    )
    fig.add_trace(sil, secondary_y=True)
    fig.update_layout(title="DBSCAN sweep over eps", xaxis_title="eps")
    fig.update_yaxes(title_text="clusters found", secondary_y=False)
    low = min(0.0, float(np.min(s[np.isfinite(s)], initial=0.0)))  # silhouette can be negative
    fig.update_yaxes(title_text="noise fraction / silhouette", range=[low, 1], secondary_y=True)
    return fig


def metric_vs_param(df: pd.DataFrame, x: str, y: str, color: str | None, title: str) -> go.Figure:
    """A sweep's metric against one parameter, one line per value of another (e.g. silhouette vs K per reducer)."""
    df = df.assign(**{x: pd.to_numeric(df[x])}).sort_values(x)  # MLflow params arrive as text
    groups = [(y, df)] if color is None else [(str(v), g) for v, g in df.groupby(color, dropna=False)]
    fig = go.Figure([go.Scatter(x=g[x], y=g[y], mode="lines+markers", name=name) for name, g in groups])
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, legend_title=color or "")
    return fig


def search_trials(df: pd.DataFrame, x: str, objective: str, labelled: Sequence[str] = ("nmi", "ari")) -> go.Figure:
    """A search's trials against one searched parameter: the label-free objective that steered the search (left)
    and, for interpretation only, the label scores beside it (right). One marker per trial, named on hover."""
    df = df.assign(**{x: _numeric(df[x])}).sort_values(x)
    fig = make_subplots(1, 2, subplot_titles=(f"{objective} (the objective)", "against the labels (not used)"))
    fig.add_trace(go.Scatter(x=df[x], y=df[objective], mode="markers", name=objective, text=df.run_name), row=1, col=1)
    for m in [m for m in labelled if m in df]:
        fig.add_trace(go.Scatter(x=df[x], y=df[m], mode="markers", name=m, text=df.run_name), row=1, col=2)
    fig.update_layout(title=f"Search trials vs {x}")
    fig.update_xaxes(title_text=x)
    return fig


def two_axis(x: ArrayLike, y1: ArrayLike, y2: ArrayLike, name1: str, name2: str, title: str, x_title: str) -> go.Figure:
    """Two metrics of different scale against one parameter, e.g. inertia (elbow) and silhouette vs K."""
    order = np.argsort(np.asarray(x))
    xs, a, b = (np.asarray(v)[order] for v in (x, y1, y2))
    fig = _two_axes()
    fig.add_trace(go.Scatter(x=xs, y=a, mode="lines+markers", name=name1), secondary_y=False)
    fig.add_trace(go.Scatter(x=xs, y=b, mode="lines+markers", name=name2), secondary_y=True)
    fig.update_layout(title=title, xaxis_title=x_title)
    fig.update_yaxes(title_text=name1, secondary_y=False)
    fig.update_yaxes(title_text=name2, secondary_y=True)
    return fig


def heatmap(df: pd.DataFrame, x: str, y: str, z: str, title: str) -> go.Figure:
    """A metric over two swept parameters, one cell per pair (repeats averaged), the value written in the cell."""
    grid = df.assign(**{c: _numeric(df[c]) for c in (x, y)}).pivot_table(index=y, columns=x, values=z, aggfunc="mean")
    values = grid.to_numpy(dtype=float)
    text = [["" if np.isnan(v) else f"{v:.3g}" for v in row] for row in values]
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[str(v) for v in grid.columns],
            y=[str(v) for v in grid.index],
            text=text,
            texttemplate="%{text}",
            colorscale="Viridis",
            colorbar={"title": {"text": z}},
        )
    )
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig
