"""Markdown reports: what a person would conclude from one run (`run_report`) or from a sweep (`sweep_report`).

Every number comes from the runs' own metrics and cluster assignments; labels only interpret.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clustersweep.report.tables import LABELLED, Outcome, best, completed, front, mean_sd, replicated, replicates
from clustersweep.stages.metrics import NOISE, contingency, objectives


def md_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-markdown table (no extra dependency)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.{digits}f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.4g}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def separation(y: np.ndarray, clusters: np.ndarray, class_names: list[str], top: int = 3) -> dict[str, list]:
    """Per class, the largest share of it in one cluster (best/worst separated), and the class pairs whose
    cluster distributions overlap most (Σ_k min(P(k|a), P(k|b)): 1 = always clustered together)."""
    table, classes, ks = contingency(y, clusters)
    table = table[:, ks != NOISE]
    frac = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    recall = sorted(
        ((class_names[c], float(frac[i].max(initial=0))) for i, c in enumerate(classes)), key=lambda t: -t[1]
    )
    pairs = [
        (class_names[classes[a]], class_names[classes[b]], float(np.minimum(frac[a], frac[b]).sum()))
        for a in range(len(classes))
        for b in range(a + 1, len(classes))
    ]
    pairs.sort(key=lambda t: -t[2])
    return {"best": recall[:top], "worst": recall[::-1][:top], "confused": pairs[:top]}


def cluster_sizes(clusters: np.ndarray, top: int = 12) -> str:
    """'C0 412, C3 388, … noise 12': the clusters' sizes, largest first (the first `top`)."""
    ks, counts = np.unique(clusters, return_counts=True)
    order = [i for i in np.argsort(-counts, kind="stable") if ks[i] != NOISE]
    parts = [f"C{ks[i]} {counts[i]}" for i in order[:top]]
    if len(order) > top:
        parts.append(f"… {len(order) - top} more")
    if (ks == NOISE).any():
        parts.append(f"noise {counts[ks == NOISE][0]}")
    return ", ".join(parts)


def run_report(
    name: str,
    m: dict[str, float],
    y_test: np.ndarray | None,
    test_clusters: np.ndarray,
    class_names: list[str] | None,
    reducer: str,
    k: int | None,
    degenerate: str | None = None,
    clamped: dict[str, str] | None = None,
) -> str:
    """The conclusions of one run; of a degenerate one (`metrics.degenerate`), that first, and no per-class
    figures (they would read as success: a single cluster "separates" every class 100%). Without labels
    (`y_test` None), the label-free figures and that there were none. `clamped`: the internal sizes the data
    could not hold (key → "48: the train rows", `stages.clamps`), each said in a line."""
    lines = [f"# {name}", ""]
    if degenerate:
        lines += [f"**Degenerate clustering: {degenerate}.** Not a clustering to interpret; no sweep picks it.", ""]
    if "explained_variance" in m and k is not None:
        lines.append(
            f"- **Reduction**: {reducer} with k={k} keeps {m['explained_variance']:.1%} of the variance"
            + (f"; 95% needs k95 = {int(m['k95'])} components." if "k95" in m else ".")
        )
    if "reconstruction_mse" in m:
        lines.append(f"- Reconstruction MSE on test at k={k}: {m['reconstruction_mse']:.5f}.")
    found = f"{int(m['n_clusters'])} cluster" + ("" if m["n_clusters"] == 1 else "s")
    if "noise_fraction" in m:
        found += f", {m['noise_fraction']:.1%} of the fitted points noise" + (
            f" (eps = {m['eps']:.3g})" if "eps" in m else ""
        )
    lines.append(
        f"- **Clustering**: {found}; silhouette {m['silhouette']:.3f} (label-free)."
        if "silhouette" in m
        else f"- **Clustering**: {found}; silhouette undefined."
    )
    if y_test is None:
        lines.append(
            "- **No labels**: the dataset has none, so ARI, NMI, purity and Hungarian accuracy are not computed."
        )
    else:
        lines.append(
            f"- **Against the labels** (interpretation only): ARI {m['ari']:.3f}, NMI {m['nmi']:.3f}, "
            f"purity {m['purity']:.3f}, Hungarian accuracy {m['acc_hungarian']:.3f}."
        )
    sizes = cluster_sizes(test_clusters)
    if sizes:
        lines.append(f"- **Cluster sizes** (test): {sizes}.")
    for key, why in (clamped or {}).items():
        value, bound = why.split(": ", 1)
        lines.append(f"- **Clamped to the data**: {key} = {value}, at most {bound} (tag `clamped.{key}`).")
    if degenerate or y_test is None or class_names is None:
        return "\n".join(lines) + "\n"
    sep = separation(y_test, test_clusters, class_names)
    lines.append(
        "- **Best separated classes** (largest share in one cluster): "
        + ", ".join(f"{c} {v:.0%}" for c, v in sep["best"])
        + "."
    )
    lines.append("- **Worst separated classes**: " + ", ".join(f"{c} {v:.0%}" for c, v in sep["worst"]) + ".")
    lines.append(
        "- **Most confused pairs** (share of clusters in common): "
        + ", ".join(f"{a} & {b} {v:.0%}" for a, b, v in sep["confused"])
        + "."
    )
    return "\n".join(lines) + "\n"


def sweep_report(
    title: str,
    df: pd.DataFrame,
    select_by: str | Sequence[str],
    swept: list[str],
    best_report: str | None = None,
    outcome: Outcome | None = None,
) -> str:
    """The conclusions of a sweep: its best run by `select_by` (a label-free metric; for a list of them, the pick
    of their Pareto front, and the front), how the number of clusters did — the (first) metric over K for each
    clusterer given K, the clusters and noise found by each that finds its own — and the best run's own report.
    Its first line counts the jobs as the sweep's last line does (`outcome`, by default the table's own)."""
    chosen = objectives(select_by)
    ok = replicated(df[df.status == "FINISHED"])  # a configuration's replicates as one row: their means
    lines = [f"# {title}", "", (outcome or Outcome.of(df)).line() + "."]
    top = best(ok, chosen)
    if top is not None:
        n = replicates(top)
        labelled = [f"{m} {mean_sd(top, m)}" for m in LABELLED[:3] if pd.notna(top.get(m))]
        mean = f" (mean ± sd of {n} replicates, seeds {int(top.seed)}–{int(top.seed) + n - 1})" if n > 1 else ""
        by = chosen[0] if len(chosen) == 1 else "the Pareto front of " + ", ".join(chosen)
        lines.append(
            f"\n**Best by {by}** (label-free): {top.run_name}{mean} — "
            + ", ".join(f"{m} {mean_sd(top, m)}" for m in chosen)
            + (f"; {', '.join(labelled)} (labels: interpretation only)." if labelled else "; no labels.")
        )
    if len(chosen) > 1:
        lines += _front_section(ok, chosen, swept)
    if len(ok) and not any(m in ok and ok[m].notna().any() for m in LABELLED):
        lines.append("\nThe data had no labels: only label-free metrics were computed.")
    for name, runs in ok.groupby("clusterer.name") if "clusterer.name" in ok else ():
        if "clusterer.K" in runs and runs["clusterer.K"].notna().all():
            lines += _k_section(name, runs, chosen[0], swept)
        elif len(runs) and "n_clusters" in runs:
            lines += _found_section(name, runs, chosen[0], swept)
    if best_report:
        lines += ["", "## The best run", "", best_report.replace("# ", "### ", 1)]
    return "\n".join(lines) + "\n"


def _front_section(ok: pd.DataFrame, chosen: list[str], swept: list[str]) -> list[str]:
    """The Pareto front of the objectives `chosen`, the pick first (`tables.front`)."""
    on = front(ok, chosen)
    if on.empty:
        return []
    cols = ["run_name", *(c for c in swept if c in on), *chosen, "mean_rank"]
    return [
        "",
        f"## Pareto front of {', '.join(chosen)}: {len(on)} of {len(completed(ok, chosen))} configurations",
        "",
        "No other configuration is at least as good on every objective and better on one. The pick (first) has the "
        "best mean percentile rank over the objectives among all the configurations; a tie goes to the first "
        "objective.",
        "",
        md_table(on[cols]),
    ]


def _k_section(name: str, runs: pd.DataFrame, select_by: str, swept: list[str]) -> list[str]:
    """`select_by` (and inertia, where logged) against K, a block per value of the other swept params."""
    top = best(runs, select_by)
    if len(runs) < 2 or top is None:
        return []
    others = [c for c in swept if c != "clusterer.K" and c in runs and runs[c].astype(str).nunique() > 1]
    cols = [*others, "clusterer.K", select_by, *[c for c in ("inertia",) if c in runs and runs[c].notna().any()]]
    where = ", ".join(f"{c}={top[c]}" for c in others)
    return [
        "",
        f"## {name}: best K by {select_by} = {int(top['clusterer.K'])}" + (f" ({where})" if where else ""),
        "",
        md_table(runs.sort_values([*others, "clusterer.K"])[[c for c in cols if c in runs]]),
    ]


def _found_section(name: str, runs: pd.DataFrame, select_by: str, swept: list[str]) -> list[str]:
    """A clusterer that finds its own number of clusters (DBSCAN, HDBSCAN): clusters and noise per swept value."""
    params = [c for c in swept if c in runs and runs[c].astype(str).nunique() > 1]
    cols = [*params, *[c for c in ("eps", "n_clusters", "noise_fraction", select_by, "degenerate") if c in runs]]
    order = [c for c in (*params, "eps") if c in runs]
    rows = runs.sort_values(order) if order else runs
    return ["", f"## {name}: clusters and noise found", "", md_table(rows[cols])]
