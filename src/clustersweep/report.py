"""Phase 4 — interpretation: a markdown report of what a person would conclude from a run or a sweep.

Every number comes from the run's own metrics and cluster assignments; labels only interpret.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clustersweep.metrics import NOISE, contingency


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


def run_report(
    name: str,
    m: dict[str, float],
    y_test: np.ndarray,
    test_clusters: np.ndarray,
    class_names: list[str],
    reducer: str,
    k: int | None,
) -> str:
    """The conclusions of one run."""
    lines = [f"# {name}", ""]
    if "explained_variance" in m and k is not None:
        lines.append(
            f"- **Reduction**: {reducer} with k={k} keeps {m['explained_variance']:.1%} of the variance"
            + (f"; 95% needs k95 = {int(m['k95'])} components." if "k95" in m else ".")
        )
    if "reconstruction_mse" in m:
        lines.append(f"- Reconstruction MSE on test at k={k}: {m['reconstruction_mse']:.5f}.")
    found = f"{int(m['n_clusters'])} clusters"
    if "noise_fraction" in m:
        found += f", {m['noise_fraction']:.1%} of the fitted points noise (eps = {m.get('eps', float('nan')):.3g})"
    lines.append(
        f"- **Clustering**: {found}; silhouette {m['silhouette']:.3f} (label-free)."
        if "silhouette" in m
        else f"- **Clustering**: {found}; silhouette undefined."
    )
    lines.append(
        f"- **Against the labels** (interpretation only): ARI {m['ari']:.3f}, NMI {m['nmi']:.3f}, "
        f"purity {m['purity']:.3f}, Hungarian accuracy {m['acc_hungarian']:.3f}."
    )
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


def sweep_report(title: str, df: pd.DataFrame, select_by: str, swept: list[str], best_report: str | None = None) -> str:
    """The conclusions of a sweep: the best run by a label-free metric, K and eps choices, every run."""
    ok = df[df.status == "FINISHED"]
    lines = [f"# {title}", "", f"{len(ok)} finished, {int((df.status != 'FINISHED').sum())} failed."]
    if select_by in ok and ok[select_by].notna().any():
        top = ok.loc[ok[select_by].idxmax()]
        lines.append(
            f"\n**Best by {select_by}** (label-free): {top.run_name} — {select_by} {top[select_by]:.3f}; "
            + ", ".join(f"{m} {top[m]:.3f}" for m in ("ari", "nmi", "purity") if m in top and pd.notna(top[m]))
            + " (labels: interpretation only)."
        )
    km = ok[ok["clusterer.name"] == "kmeans"] if "clusterer.name" in ok else ok.iloc[0:0]
    if len(km) > 1 and "clusterer.K" in km and select_by in km:
        others = [c for c in swept if c != "clusterer.K" and km[c].astype(str).nunique() > 1]  # a block each
        cols = [*others, "clusterer.K", select_by, *[c for c in ("inertia",) if c in km]]
        rows = km.sort_values([*others, "clusterer.K"])[cols]
        best = km.loc[km[select_by].idxmax()]
        where = ", ".join(f"{c}={best[c]}" for c in others)
        lines += [
            "",
            f"## K-Means: best K by {select_by} = {int(best['clusterer.K'])}" + (f" ({where})" if where else ""),
            "",
            md_table(rows),
        ]
    db = ok[ok["clusterer.name"] == "dbscan"] if "clusterer.name" in ok else ok.iloc[0:0]
    if len(db):
        cols = [c for c in ("clusterer.eps_percentile", "eps", "n_clusters", "noise_fraction", "silhouette") if c in db]
        lines += ["", "## DBSCAN: clusters and noise per eps", "", md_table(db.sort_values("eps")[cols])]
    if best_report:
        lines += ["", "## The best run", "", best_report.replace("# ", "### ", 1)]
    return "\n".join(lines) + "\n"
