"""Numbers against a parameter: spectra, metrics over a sweep's values, a search's trials, two-parameter heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots


def _two_axes() -> go.Figure:
    """A figure with a right-hand y axis, for two quantities of different scale over one x."""
    return make_subplots(specs=[[{"secondary_y": True}]])


def _numeric(s: pd.Series) -> pd.Series:
    """Numbers as numbers, so swept values logged as text (MLflow params) sort 2 < 10."""
    try:
        return pd.to_numeric(s)
    except (ValueError, TypeError):
        return s


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
