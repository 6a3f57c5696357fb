"""Figures as HTML for MLflow's artifact viewer: plotly.js from its CDN, or embedded to open offline."""

from __future__ import annotations

from pathlib import Path

import plotly
import plotly.graph_objects as go

_CDN = f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"  # the bundled version


def to_html(fig: go.Figure, embed_plotlyjs: bool) -> str:
    """HTML for MLflow's artifact viewer; plotly.js from its CDN unless embedded for offline use."""
    return fig.to_html(include_plotlyjs=True if embed_plotlyjs else _CDN, full_html=True)


def write_html(fig: go.Figure, path: Path, embed_plotlyjs: bool) -> Path:
    path.write_text(to_html(fig, embed_plotlyjs), encoding="utf-8")
    return path
