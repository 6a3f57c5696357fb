"""A sweep's summary — one table of every run, each metric against the swept params, the linear reducers compared
over k, and its report.md — written to a folder (`scripts/compare.py`) or logged on the sweep's parent run with
the best run as its tags (`log_report`).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from clustersweep.report import markdown
from clustersweep.report.figures import charts
from clustersweep.report.figures.html import ServedPlotlyJs, write_html
from clustersweep.report.tables import (
    LABELLED,
    SHOWN_METRICS,
    Outcome,
    best,
    for_reading,
    front,
    replicates,
    swept,
    with_front,
)
from clustersweep.stages.metrics import lower_is_better, objectives, objectives_name
from clustersweep.tracking.runs import Run


def figures(df: pd.DataFrame, select_by: str) -> dict[str, object]:
    """Each metric against each swept numeric param (a line per other choice), and a heatmap over two; for a
    search (its trials are scattered, not a grid), the objective and NMI/ARI against each searched param."""
    study = df.attrs.get("study")
    df = df[df.status == "FINISHED"]
    params = swept(df)
    if study and select_by in df:
        return {f"search_{select_by}_vs_{x}": charts.search_trials(df, x, select_by) for x in params}
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(df[p])]
    metrics = [m for m in dict.fromkeys([select_by, *SHOWN_METRICS]) if m in df and df[m].notna().any()]
    figs: dict[str, object] = {}
    for x in numeric:
        others = [p for p in params if p != x]
        data = df.assign(choice=_choice_label(df, others)) if others else df
        for m in metrics:
            figs[f"{m}_vs_{x}"] = charts.metric_vs_param(
                data,
                x,
                m,
                "choice" if others else None,
                f"{m} vs {x}" + (f" (a line per {', '.join(others)})" if others else ""),
            )
    if len(params) >= 2 and select_by in metrics:
        x, y = (numeric + [p for p in params if p not in numeric])[:2]
        cells = df.groupby([x, y], dropna=False)[select_by]
        agg = (cells.min() if lower_is_better(select_by) else cells.max()).reset_index()
        extra = [p for p in params if p not in (x, y)]
        title = f"{select_by} over {x} × {y}" + (f" (best over {', '.join(extra)})" if extra else "")
        figs[f"heatmap_{select_by}"] = charts.heatmap(agg, x, y, select_by, title)
    return figs


def _choice_label(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    return df[cols].astype(str).apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1)


def reducer_comparisons(client: MlflowClient, df: pd.DataFrame) -> dict[str, object]:
    """The linear reducers of a sweep (those with a reconstruction) over k: test reconstruction MSE against k, a
    line per reducer, and the per-component explained variance of each one's widest run (its `spectrum.json`)."""
    cols = {"reducer.name", "reducer.k", "reconstruction_mse"}
    ok = df[df.status == "FINISHED"]
    if not cols <= set(ok.columns):
        return {}
    ok = ok[ok["reducer.k"].notna() & ok["reconstruction_mse"].notna()]
    if ok["reducer.k"].nunique() < 2:
        return {}
    mse = ok.groupby(["reducer.name", "reducer.k"])["reconstruction_mse"].mean().reset_index()
    xs, ys, evr = {}, {}, {}
    for name, part in mse.groupby("reducer.name"):
        xs[name], ys[name] = part["reducer.k"].tolist(), part["reconstruction_mse"].tolist()
        widest = ok[ok["reducer.name"] == name].sort_values("reducer.k").iloc[-1]
        with tempfile.TemporaryDirectory() as tmp:
            spectrum = artifact_text(client, widest.run_id, "spectrum.json", tmp)
        if spectrum:
            evr[name] = json.loads(spectrum)["explained_variance_ratio"]
    names = " vs ".join(xs)
    figs: dict[str, object] = {
        "reconstruction_mse_vs_k": charts.curves(
            xs, ys, f"Reconstruction MSE vs k: {names}", "# components (k)", "MSE (test)"
        )
    }
    if evr:
        figs["explained_variance_by_reducer"] = charts.curves(
            None, evr, f"Per-component explained variance: {' vs '.join(evr)}", "component", "EVR"
        )
    return figs


def write_report(
    df: pd.DataFrame,
    select_by: str,
    out: Path,
    embed_plotlyjs: bool = False,
    client: MlflowClient | None = None,
    plotlyjs: ServedPlotlyJs | None = None,
) -> list[Path]:
    """summary.csv + one HTML per figure into `out` (with a client, also the linear reducers compared)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.csv"]
    for_reading(df).to_csv(written[0], index=False)
    figs = {**figures(df, select_by), **(reducer_comparisons(client, df) if client is not None else {})}
    for name, fig in figs.items():
        page = out / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', name)}.html"
        written.append(write_html(fig, page, embed_plotlyjs, plotlyjs))
    return written


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp: str) -> str | None:
    try:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text()
    except Exception:  # noqa: BLE001 - an older run without that artifact
        return None


def log_report(
    parent: Run,
    df: pd.DataFrame,
    select_by: str | Sequence[str],
    outcome: Outcome,
    plotlyjs: ServedPlotlyJs | None = None,
) -> pd.Series | None:
    """The report as the parent's `report.md` and `summary/` artifacts, the best run by `select_by` as its tags
    (`best.*`) and metrics (`best_<metric>`); the report is printed too. It counts the jobs as `outcome` does.
    Several objectives (a list): the best is the pick of their Pareto front (`tables.best`), summary.csv marks the
    front's runs (`pareto_front`) and the tag `sweep.pareto_front` names them, the pick first; the figures follow
    the first objective. Returns the best run's row (None when no run has the metric)."""
    chosen = objectives(select_by)
    top = best(df, chosen)
    shown = with_front(df, chosen) if len(chosen) > 1 else df
    with parent.artifacts() as out, tempfile.TemporaryDirectory() as tmp:
        write_report(shown, chosen[0], out / "summary", client=parent.client, plotlyjs=plotlyjs)
        best_md = artifact_text(parent.client, top.run_id, "report.md", tmp) if top is not None else None
        text = markdown.sweep_report(parent.name, df, chosen, swept(df), best_md, outcome)
        (out / "summary" / "report.md").write_text(text)
        (out / "report.md").write_text(text)
    print(text, flush=True)
    if top is None:
        return None
    on = front(df, chosen).run_name.tolist() if len(chosen) > 1 else []
    parent.log(
        metrics={f"best_{m}": float(top[m]) for m in dict.fromkeys([*chosen, *LABELLED]) if pd.notna(top.get(m))},
        tags={
            "best.run_id": top.run_id,
            "best.run_name": top.run_name,
            "best.selected_by": objectives_name(chosen),
            "best.replicates": str(replicates(top)),
            **({"sweep.pareto_front": _capped(", ".join(on))} if on else {}),
        },
    )
    return top


def _capped(text: str, limit: int = 5000) -> str:
    """A tag's value within MLflow's limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
