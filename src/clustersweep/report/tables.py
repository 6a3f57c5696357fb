"""Runs as a table: one row per run with its params and metrics, read from MLflow — and what is read off it: the
swept params, the best run by a metric (`best`, the one rule every choice of a best run follows), a leaderboard of
method families and the criteria table.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from clustersweep.report import pareto
from clustersweep.stages import metrics
from clustersweep.stages.metrics import CRITERIA, LABEL_FREE, RANKED, REPLICATED, direction, lower_is_better, objectives
from clustersweep.tracking.runs import GROUP_TAG, PARTITION


@dataclass
class Outcome:
    """How a sweep's jobs ended — its last line, and the first of its report: one count for both."""

    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # KILLED by Ctrl-C: a resumed search's earlier trials
    store_error: str | None = None  # the store did not answer at the end: the other jobs' outcome is unknown

    @classmethod
    def of(cls, df: pd.DataFrame, unlogged: list[str] = ()) -> Outcome:
        """From a sweep's table (`sweep_table`), and the jobs that failed without reaching the store."""
        done, killed = df.status == "FINISHED", df.status == "KILLED"
        return cls(
            finished=df.loc[done & ~df.skipped, "run_name"].tolist(),
            failed=list(dict.fromkeys([*df.loc[~done & ~killed, "run_name"], *unlogged])),
            skipped=list(df.attrs.get("skipped_jobs", df.loc[df.skipped, "run_name"])),
            interrupted=df.loc[killed, "run_name"].tolist(),
        )

    @property
    def empty(self) -> bool:
        """The store answered and holds no job of the sweep: none finished, failed, was skipped or interrupted."""
        return self.store_error is None and not (self.finished or self.failed or self.skipped or self.interrupted)

    @property
    def ok(self) -> bool:
        """No job failed, and some job reported: a sweep whose launched jobs all ran unseen is no success."""
        return not self.failed and self.store_error is None and not self.empty

    def line(self) -> str:
        if self.store_error is not None:
            text = f"{len(self.failed)} failed" + (": " + ", ".join(self.failed) if self.failed else "")
            return f"{text}; the other jobs unknown: {self.store_error}"
        if self.empty:
            return (
                "0 finished, 0 failed: no job reported to this parent run, though its jobs were launched — they "
                "ran as runs of their own (a launcher that does not pass on CLUSTERSWEEP_PARENT_RUN?)"
            )
        text = f"{len(self.finished)} finished, {len(self.failed)} failed"
        if self.failed:
            text += ": " + ", ".join(self.failed)
        text += f"; {len(self.skipped)} skipped (already finished)" if self.skipped else ""
        return text + (f"; {len(self.interrupted)} interrupted" if self.interrupted else "")


LABELLED = ("ari", "nmi", "purity", "acc_hungarian")  # against the labels: for interpretation, never to choose
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
_ROW = ("run_id", "run_name", "status", "skipped", "sweep.job", "overrides", "degenerate", "group")
_NOT_SWEPT = ("estimator", "label", "experiment", "tracking.", "cache.", "sweep.", "dataset.files", "dataset.mirrors")


def table(runs: list[Run], skipped_ids: set[str] = frozenset()) -> pd.DataFrame:
    """One row per run: run_id, run_name, status, skipped, sweep.job, overrides (the overrides that recreate it
    with `python run.py`), degenerate (why, if it is), then its params and metrics by name."""
    rows = []
    for r in runs:
        row = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "skipped": r.info.run_id in skipped_ids,
            "sweep.job": r.data.tags.get("sweep.job"),
            "overrides": r.data.tags.get("hydra.overrides"),
            "degenerate": r.data.tags.get("degenerate"),
            "group": r.data.tags.get(GROUP_TAG),
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


def stability(client: MlflowClient, run_ids: list[str]) -> float | None:
    """`stability` of these replicates: the agreement of their test partitions (`metrics.stability`); None unless
    each is FINISHED, not degenerate and has its partition."""
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, run_id in enumerate(run_ids):
            run = client.get_run(run_id)
            if run.info.status != "FINISHED" or "degenerate" in run.data.tags:
                return None
            try:
                path = client.download_artifacts(run_id, PARTITION, str(Path(tmp, str(i))))
            except (MlflowException, OSError):
                return None
            parts.append(np.load(path))
    return metrics.stability(parts) if len(parts) >= 2 else None


def with_criteria(client: MlflowClient, df: pd.DataFrame, ace_index: str) -> pd.DataFrame:
    """`df` with the criteria that compare representations, where the runs allow them: `stability` (replicates)
    and `ace` by `ace_index` (scores in several spaces)."""
    return with_ace(with_stability(client, df), ace_index)


def with_stability(client: MlflowClient, df: pd.DataFrame) -> pd.DataFrame:
    """`df` with each replicated configuration's `stability` on every row of its replicates."""
    if "group" not in df or not df.group.dropna().duplicated().any():
        return df
    df = df.copy()
    for _, runs in df[df.group.notna()].groupby("group"):
        if len(runs) >= 2:
            value = stability(client, runs.run_id.tolist())
            df.loc[runs.index, REPLICATED] = np.nan if value is None else value
    return df


def with_ace(df: pd.DataFrame, index: str) -> pd.DataFrame:
    """`df` with `ace` on each run (Wang & Ye 2024): the configurations' (replicates' mean) percentile rank among the
    FINISHED, not degenerate ones by `index` in each space they were all scored in (`metrics.space`'s plain name,
    `<index>.<space>` for `metrics.other_spaces`), averaged over the spaces; 1 is first in every space."""
    if "metrics.space" not in df or index not in df:
        return df
    ok = df[df.status == "FINISHED"]
    per = replicated(ok[ok.degenerate.isna()] if "degenerate" in ok else ok)
    per.index = _config(per)
    spaces = sorted({*per["metrics.space"].dropna(), *(c.split(".", 1)[1] for c in per if c.startswith(f"{index}."))})
    if len(spaces) < 2:
        return df
    values = pd.DataFrame({sp: per[index].where(per["metrics.space"] == sp, per.get(f"{index}.{sp}")) for sp in spaces})
    ranks = (-values if lower_is_better(index) else values).dropna().rank(pct=True).mean(axis=1)
    return df.assign(**{RANKED: _config(df).map(ranks)})


def _config(df: pd.DataFrame) -> pd.Series:
    """Each run's configuration: its replicates' group, or the run itself."""
    return df.group.fillna(df.run_id) if "group" in df else df.run_id


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
    df.attrs["select_by"] = parent.data.tags.get("sweep.select_by")  # its objectives, joined by commas
    return df


def sweeps_table(client: MlflowClient, parent_ids: Sequence[str]) -> pd.DataFrame:
    """The jobs of one or more sweeps as one table (`sweep_table` of each; a run two of them share listed once)."""
    parts = [sweep_table(client, p) for p in parent_ids]
    if len(parts) == 1:
        return parts[0]
    df = pd.concat(parts, ignore_index=True).drop_duplicates("run_id", ignore_index=True)
    df.attrs = {
        "params": sorted({p for part in parts for p in part.attrs.get("params", [])}),
        "skipped_jobs": [j for part in parts for j in part.attrs.get("skipped_jobs", [])],
        "select_by": ";".join(dict.fromkeys(str(part.attrs.get("select_by")) for part in parts)),
    }
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


def replicated(df: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: the replicates of one (runs with the same tag `config.group`, `sweep.replicates`)
    become the row of the first seed with each metric their mean, `replicates` their count and `<metric>_sd` the
    sample sd of each score. A table with no two replicates of one configuration is returned as it is."""
    if "group" not in df or not df.group.dropna().duplicated().any():
        return df
    params = set(df.attrs.get("params", []))
    metrics = [c for c in df.columns if c not in params and c not in _ROW and pd.api.types.is_numeric_dtype(df[c])]
    scores = [m for m in [*LABEL_FREE, *LABELLED] if m in metrics]
    rows = []
    for _, runs in df.groupby(_config(df), sort=False):
        row = runs.sort_values("seed").iloc[0].copy() if "seed" in runs else runs.iloc[0].copy()
        row[metrics] = runs[metrics].mean()
        row["replicates"] = len(runs)
        for m in scores:
            row[f"{m}_sd"] = runs[m].std(ddof=1)
        rows.append(row)
    out = pd.DataFrame(rows).reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def replicates(row: pd.Series) -> int:
    """How many replicates a row of `replicated` stands for (1: a run)."""
    n = row.get("replicates")
    return 1 if n is None or pd.isna(n) else int(n)


def mean_sd(row: pd.Series, metric: str) -> str:
    """`metric` of a run, or the mean ± sd of a configuration's replicates (a row of `replicated`)."""
    sd = row.get(f"{metric}_sd")
    return f"{row[metric]:.3f}" + (f" ± {sd:.3f}" if replicates(row) > 1 and pd.notna(sd) else "")


def best(df: pd.DataFrame, metric: str | Sequence[str]) -> pd.Series | None:
    """The FINISHED, not degenerate configuration with the best value of `metric` — the lowest where lower is
    better (Davies–Bouldin, inertia), else the highest; None when no such run has the metric. A configuration run
    with several seeds (`replicated`) is judged by its mean over them, and given as its first seed's run. With
    several objectives (`sweep.select_by` a list), the one `pareto.pick` chooses among those that have them all."""
    chosen = objectives(metric)
    ok = completed(df, chosen)
    return None if ok.empty else ok.loc[pareto.pick(ok, chosen, [direction(m) for m in chosen])]


def completed(df: pd.DataFrame, chosen: Sequence[str]) -> pd.DataFrame:
    """The configurations a choice is made among: FINISHED, not degenerate, every objective of `chosen` known; one
    row per configuration (`replicated`)."""
    ok = df[(df.status == "FINISHED")] if "status" in df else df
    ok = replicated(ok[ok.degenerate.isna()] if "degenerate" in ok else ok)
    return ok.dropna(subset=chosen) if set(chosen) <= set(ok.columns) else ok.iloc[:0]


def front(df: pd.DataFrame, chosen: Sequence[str]) -> pd.DataFrame:
    """The completed configurations on the Pareto front of the objectives `chosen`, with their `mean_rank` (over
    all the completed ones, `pareto.mean_rank`), the pick first, then by mean rank."""
    ok = completed(df, chosen)
    if ok.empty:
        return ok
    directions = [direction(m) for m in chosen]
    ranked = ok.assign(mean_rank=pareto.mean_rank(ok, chosen, directions))
    on = ranked[pareto.pareto_front(ok, chosen, directions)].sort_values("mean_rank", ascending=False, kind="stable")
    return pd.concat([on.loc[[pareto.pick(ok, chosen, directions)]], on]).drop_duplicates("run_id")


def with_front(df: pd.DataFrame, chosen: Sequence[str]) -> pd.DataFrame:
    """`df` with `pareto_front`: True on every run (each replicate) of a configuration on the front of `chosen`."""
    return df.assign(pareto_front=_config(df).isin(_config(front(df, chosen))))


def leaderboard(df: pd.DataFrame, select_by: str) -> pd.DataFrame:
    """The best run of each method family (reducer × clusterer), chosen by the label-free `select_by` among runs
    scored in the common space; ARI/NMI/purity/ACC beside it for interpretation, and the command that recreates
    it (a run id only opens in its own store). Best family first."""
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
                "replicates": replicates(top),
                select_by: top[select_by],
                **{m: mean_sd(top, m) if pd.notna(top.get(m)) else None for m in LABELLED},
                "wall time (s)": round(float(top.get("time_total_s", float("nan"))), 1),
                "recreate with": recreate_with(top.get("overrides")),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out.sort_values(select_by, ascending=lower_is_better(select_by)).reset_index(drop=True)


def recreate_with(overrides: object) -> str:
    """The command that recreates a run from its `hydra.overrides` tag: `python run.py` alone for the default
    configuration (no overrides); "" for a run that has no such tag (logged before it existed)."""
    if not isinstance(overrides, str):
        return ""
    return f"`python run.py {overrides}`" if overrides else "`python run.py`"


def criteria(df: pd.DataFrame) -> pd.DataFrame:
    """How well each label-free metric would choose among these runs, judged by the labels: the run it picks with
    that run's NMI and ACC, and its Spearman rank correlation with NMI and with ACC over all the runs (signed so
    that 1 means it orders the runs as the labels do); a configuration's replicates count as one run, their means.
    Best tracker of NMI first.

    For choosing a search's objective on a labelled dataset *other* than the one it will search, so that the
    searched data's labels never steer the choice (docs/results.md, "Choosing the objective")."""
    ok = df[df.status == "FINISHED"] if "status" in df else df
    if "metrics.space" in ok:
        ok = ok[ok["metrics.space"] == "common"]
    ok = replicated(ok)  # a configuration's replicates: their means
    rows = []
    single = [[m] for m in CRITERIA if m in ok and ok[m].notna().sum() >= 3]
    for chosen in [*single, *fronts(df.attrs.get("select_by"), ok)]:
        runs = completed(ok, chosen)
        top = best(runs, chosen)
        score = pareto.mean_rank(runs, chosen, [direction(m) for m in chosen])  # higher is better
        rows.append(
            {
                "objective": chosen[0] if len(chosen) == 1 else f"front of {', '.join(chosen)}",
                "its pick": top.run_name,
                "runs": len(runs),
                **{m: top.get(m) for m in ("nmi", "acc_hungarian", "ari")},
                **{f"rank corr. with {m}": score.corr(runs[m], method="spearman") for m in ("nmi", "acc_hungarian")},
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("rank corr. with nmi", ascending=False).reset_index(drop=True) if rows else out


def fronts(select_by: str | None, df: pd.DataFrame) -> list[list[str]]:
    """The lists of several objectives the sweeps chose by (`sweep.select_by` tags, `;` between sweeps) that `df`
    has every column of."""
    lists = [o.split(",") for o in (select_by or "").split(";") if "," in o]
    return [o for o in lists if set(o) <= set(df.columns)]


def for_reading(df: pd.DataFrame) -> pd.DataFrame:
    """The table as a file a person opens: run name, status and the metrics first (the shown ones in their order,
    then the rest), then everything else; whole numbers as integers (`12`, not `12.0`)."""
    params = set(df.attrs.get("params", []))
    metrics = [c for c in df.columns if c not in params and c not in _ROW and pd.api.types.is_numeric_dtype(df[c])]
    first = ["run_name", "status", *(m for m in SHOWN_METRICS if m in metrics)]
    order = list(dict.fromkeys([*(c for c in first if c in df), *metrics, *df.columns]))
    return whole_numbers(df[order])


def whole_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns whose every value is a whole number, as integers (missing values stay missing)."""
    out = df.copy()
    for col in out.columns:
        values = out[col].dropna()
        if not pd.api.types.is_float_dtype(values) or values.empty:
            continue
        if (values == values.round()).all() and values.abs().max() < 2**53:
            out[col] = out[col].astype("Int64")
    return out


def fitted(df: pd.DataFrame, width: int, name_width: int = 48) -> tuple[str, int]:
    """`df` as text at most `width` characters wide: long run names shortened in the middle, then the columns that
    fit, from the left; returns (text, how many columns were left out)."""
    shown = df.copy()
    if "run_name" in shown:
        shown["run_name"] = [n if len(n) <= name_width else f"{n[: name_width - 21]}…{n[-20:]}" for n in shown.run_name]
    cols = list(shown.columns)
    text = shown[cols].to_string(index=False)
    while len(cols) > 1 and max(map(len, text.splitlines())) > width:
        cols.pop()
        text = shown[cols].to_string(index=False)
    return text, len(shown.columns) - len(cols)


def printable(df: pd.DataFrame, select_by: str) -> pd.DataFrame:
    """The columns a person compares: name, status, swept params, the shown metrics, why a run is degenerate;
    best first. A configuration's replicates are one row (`replicated`): the metrics' means, their count and sds."""
    df = replicated(df)
    shown = [m for m in dict.fromkeys([select_by, *SHOWN_METRICS]) if m in df]
    spread = ["replicates", *(f"{m}_sd" for m in shown)] if "replicates" in df else []
    cols = ["run_name", "status", *swept(df), *shown, *spread]
    out = df[[c for c in cols if c in df]].copy()
    if "skipped" in df and df.skipped.any():
        out.insert(2, "skipped", df.skipped)
    if "degenerate" in df and df.degenerate.notna().any():
        out["degenerate"] = df.degenerate
    if select_by in out:
        out = out.sort_values(select_by, ascending=lower_is_better(select_by), na_position="last")
    return out.reset_index(drop=True)
