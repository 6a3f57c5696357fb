"""A sweep's (or an experiment's) report: one table of every run's params and metrics, plots of each metric
against the swept parameters, and the best run by a label-free metric. Logged on a sweep's parent run and
written by `scripts/compare.py` for any finished sweep or experiment.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from clustersweep import plots, report
from clustersweep.metrics import LABEL_FREE, LOWER_IS_BETTER

SHOWN_METRICS = [
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "modularity",
    "ari",
    "nmi",
    "purity",
    "acc_hungarian",
    "inertia",
    "n_clusters",
    "noise_fraction",
]
_NOT_SWEPT = ("estimator", "label", "experiment", "tracking.", "cache.", "sweep.", "dataset.files", "dataset.mirrors")


def table(runs: list[Run], skipped_ids: set[str] = frozenset()) -> pd.DataFrame:
    """One row per run: run_id, run_name, status, skipped, then its params and metrics by name."""
    rows = []
    for r in runs:
        row = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "skipped": r.info.run_id in skipped_ids,
            "sweep.job": r.data.tags.get("sweep.job"),
        }
        row.update({f"param:{k}": v for k, v in r.data.params.items()})
        row.update(r.data.metrics)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["run_id", "run_name", "status", "skipped"])
    params = [c.removeprefix("param:") for c in df.columns if c.startswith("param:")]
    df.columns = [c.removeprefix("param:") for c in df.columns]
    df.attrs["params"] = params  # metric names may have dots too (`count.Trouser`): say which are params
    for col in df.columns:
        if col not in ("run_id", "run_name", "status", "skipped"):
            converted = pd.to_numeric(df[col], errors="coerce")
            if converted.notna().sum() == df[col].notna().sum():
                df[col] = converted
    return df


def sweep_table(client: MlflowClient, parent_id: str) -> pd.DataFrame:
    """The parent's children plus the earlier runs its skipped jobs stand for (a search may propose a trial that
    one of its own children already ran: that run is listed once). attrs["skipped_jobs"]: the skipped jobs' runs."""
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=50_000
    )
    twins = [v for k, v in parent.data.tags.items() if k.startswith("skipped.")]
    earlier = sorted(set(twins) - {r.info.run_id for r in children})
    df = table([*children, *(client.get_run(i) for i in earlier)], set(earlier))
    names = dict(zip(df.run_id, df.run_name, strict=True))
    df.attrs["skipped_jobs"] = [names[i] for i in twins]
    df.attrs["study"] = parent.data.tags.get("sweep.study")  # an Optuna search, not a grid
    return df


def experiment_table(client: MlflowClient, experiment: str) -> pd.DataFrame:
    """Every run of an experiment that is not a sweep's parent."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no experiment named {experiment!r}")
    runs = client.search_runs([exp.experiment_id], max_results=50_000)
    return table([r for r in runs if "sweep.overrides" not in r.data.tags])


def swept(df: pd.DataFrame) -> list[str]:
    """Params whose value differs between runs (short keys only: `reducer.k`, not its estimator copy)."""
    params = [c for c in df.attrs.get("params", []) if c in df and not any(s in c for s in _NOT_SWEPT)]
    return [c for c in params if df[c].dropna().astype(str).nunique() > 1]


def best(df: pd.DataFrame, metric: str) -> pd.Series | None:
    ok = df[(df.status == "FINISHED")] if "status" in df else df
    if metric not in ok or ok[metric].notna().sum() == 0:
        return None
    idx = ok[metric].idxmin() if metric in LOWER_IS_BETTER else ok[metric].idxmax()
    return ok.loc[idx]


def leaderboard(df: pd.DataFrame, select_by: str) -> pd.DataFrame:
    """The best run of each method family (reducer × clusterer), chosen by the label-free `select_by` among runs
    scored in the common space; ARI/NMI/purity/ACC beside it for interpretation. Best family first."""
    cols = {"reducer.name", "clusterer.name", "metrics.space", select_by}
    if not cols <= set(df.columns):
        return pd.DataFrame()
    ok = df[(df.status == "FINISHED") & (df["metrics.space"] == "common") & df[select_by].notna()]
    rows = []
    for (reducer, clusterer), runs in ok.groupby(["reducer.name", "clusterer.name"]):
        top = best(runs, select_by)
        rows.append(
            {
                "reducer → clusterer": f"{reducer} → {clusterer}",
                "best run (by " + select_by + ")": top.run_name,
                "runs": len(runs),
                select_by: top[select_by],
                **{m: top.get(m) for m in ("ari", "nmi", "purity", "acc_hungarian")},
                "wall time (s)": round(float(top.get("time_total_s", float("nan"))), 1),
                "run_id": top.run_id,
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out.sort_values(select_by, ascending=select_by in LOWER_IS_BETTER).reset_index(drop=True)


def criteria(df: pd.DataFrame) -> pd.DataFrame:
    """How well each label-free metric would choose among these runs, judged by the labels: the run it picks with
    that run's NMI and ACC, and its Spearman rank correlation with NMI and with ACC over all the runs (signed so
    that 1 means it orders the runs as the labels do). Best tracker of NMI first.

    For choosing a search's objective on a labelled dataset *other* than the one it will search, so that the
    searched data's labels never steer the choice (README, "Choosing the objective")."""
    ok = df[df.status == "FINISHED"] if "status" in df else df
    if "metrics.space" in ok:
        ok = ok[ok["metrics.space"] == "common"]
    rows = []
    for metric in (m for m in LABEL_FREE if m in ok and ok[m].notna().sum() >= 3):
        runs = ok[ok[metric].notna()]
        top = best(runs, metric)
        oriented = -runs[metric] if metric in LOWER_IS_BETTER else runs[metric]
        rows.append(
            {
                "objective": metric,
                "its pick": top.run_name,
                "runs": len(runs),
                **{m: top.get(m) for m in ("nmi", "acc_hungarian", "ari")},
                **{f"rank corr. with {m}": oriented.corr(runs[m], method="spearman") for m in ("nmi", "acc_hungarian")},
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("rank corr. with nmi", ascending=False).reset_index(drop=True) if rows else out


def figures(df: pd.DataFrame, select_by: str) -> dict[str, object]:
    """Each metric against each swept numeric param (a line per other choice), and a heatmap over two; for a
    search (its trials are scattered, not a grid), the objective and NMI/ARI against each searched param."""
    study = df.attrs.get("study")
    df = df[df.status == "FINISHED"]
    params = swept(df)
    if study and select_by in df:
        return {f"search_{select_by}_vs_{x}": plots.search_trials(df, x, select_by) for x in params}
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(df[p])]
    metrics = [m for m in dict.fromkeys([select_by, *SHOWN_METRICS]) if m in df and df[m].notna().any()]
    figs: dict[str, object] = {}
    for x in numeric:
        others = [p for p in params if p != x]
        data = df.assign(choice=_choice_label(df, others)) if others else df
        for m in metrics:
            figs[f"{m}_vs_{x}"] = plots.metric_vs_param(
                data,
                x,
                m,
                "choice" if others else None,
                f"{m} vs {x}" + (f" (a line per {', '.join(others)})" if others else ""),
            )
    if len(params) >= 2 and select_by in metrics:
        x, y = (numeric + [p for p in params if p not in numeric])[:2]
        cells = df.groupby([x, y], dropna=False)[select_by]
        agg = (cells.min() if select_by in LOWER_IS_BETTER else cells.max()).reset_index()
        extra = [p for p in params if p not in (x, y)]
        title = f"{select_by} over {x} × {y}" + (f" (best over {', '.join(extra)})" if extra else "")
        figs[f"heatmap_{select_by}"] = plots.heatmap(agg, x, y, select_by, title)
    return figs


def _choice_label(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    return df[cols].astype(str).apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1)


def printable(df: pd.DataFrame, select_by: str) -> pd.DataFrame:
    """The columns a person compares: name, status, swept params, the shown metrics; best first."""
    cols = ["run_name", "status", *swept(df), *[m for m in dict.fromkeys([select_by, *SHOWN_METRICS]) if m in df]]
    out = df[[c for c in cols if c in df]].copy()
    if "skipped" in df and df.skipped.any():
        out.insert(2, "skipped", df.skipped)
    if select_by in out:
        out = out.sort_values(select_by, ascending=select_by in LOWER_IS_BETTER, na_position="last")
    return out.reset_index(drop=True)


def reducer_comparisons(client: MlflowClient, df: pd.DataFrame) -> dict[str, object]:
    """With PCA and SVD both swept over k: reconstruction MSE vs k and per-component EVR, a line per reducer."""
    ok = df[df.status == "FINISHED"]
    if not {"reducer.name", "reducer.k", "reconstruction_mse"} <= set(ok.columns):
        return {}
    ok = ok[ok["reducer.name"].isin(["pca", "svd"]) & ok["reducer.k"].notna()]
    if ok["reducer.name"].nunique() < 2 or ok["reducer.k"].nunique() < 2:
        return {}
    mse = ok.groupby(["reducer.name", "reducer.k"])["reconstruction_mse"].mean().reset_index()
    label = {"pca": "PCA", "svd": "TruncatedSVD"}
    xs, ys, evr = {}, {}, {}
    for name, part in mse.groupby("reducer.name"):
        xs[label[name]], ys[label[name]] = part["reducer.k"].tolist(), part["reconstruction_mse"].tolist()
        widest = ok[ok["reducer.name"] == name].sort_values("reducer.k").iloc[-1]
        with tempfile.TemporaryDirectory() as tmp:
            spectrum = artifact_text(client, widest.run_id, "spectrum.json", tmp)
        if spectrum:
            evr[f"{label[name]} EVR"] = json.loads(spectrum)["explained_variance_ratio"]
    figs: dict[str, object] = {
        "reconstruction_mse_vs_k": plots.curves(
            xs, ys, "Reconstruction MSE vs k: PCA vs TruncatedSVD", "# components (k)", "MSE (test)"
        )
    }
    if len(evr) == 2:
        figs["evr_pca_vs_svd"] = plots.curves(
            None, evr, "Per-component explained variance: PCA vs TruncatedSVD", "component", "EVR"
        )
    return figs


def write_report(
    df: pd.DataFrame, select_by: str, out: Path, embed_plotlyjs: bool = False, client: MlflowClient | None = None
) -> list[Path]:
    """summary.csv + one HTML per figure into `out` (with a client, also the PCA-vs-SVD comparisons)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.csv"]
    df.to_csv(written[0], index=False)
    figs = {**figures(df, select_by), **(reducer_comparisons(client, df) if client is not None else {})}
    for name, fig in figs.items():
        written.append(plots.write_html(fig, out / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', name)}.html", embed_plotlyjs))
    return written


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp: str) -> str | None:
    try:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text()
    except Exception:  # noqa: BLE001 - an older run without that artifact
        return None


def log_report(client: MlflowClient, parent_id: str, df: pd.DataFrame, select_by: str) -> None:
    """The report as the parent's `summary/` artifacts, the best run as its tags and metrics."""
    top = best(df, select_by)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(df, select_by, Path(tmp) / "summary", client=client)
        best_md = artifact_text(client, top.run_id, "report.md", tmp) if top is not None else None
        text = report.sweep_report(client.get_run(parent_id).info.run_name, df, select_by, swept(df), best_md)
        (Path(tmp) / "summary" / "report.md").write_text(text)
        client.log_artifacts(parent_id, str(Path(tmp) / "summary"), "summary")
        client.log_text(parent_id, text, "report.md")
    print(text, flush=True)
    if top is None:
        return
    client.set_tag(parent_id, "best.run_id", top.run_id)
    client.set_tag(parent_id, "best.run_name", top.run_name)
    client.set_tag(parent_id, "best.selected_by", select_by)
    for m in dict.fromkeys([select_by, "ari", "nmi", "purity", "acc_hungarian"]):
        if m in top and pd.notna(top[m]):
            client.log_metric(parent_id, f"best_{m}", float(top[m]))
