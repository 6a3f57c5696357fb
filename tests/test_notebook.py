"""Phases 1–4: the EDA run, the reports, and the whole seed notebook as one command."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_py
from mlflow.tracking import MlflowClient

from clustersweep.report import markdown
from clustersweep.tasks import eda
from clustersweep.tasks.cluster import run


def test_eda_run_logs_every_phase1_plot_and_is_not_repeated(make_cfg, store, capsys):
    cfg = make_cfg("task=eda")
    first = eda.run(cfg)
    client = MlflowClient(store)
    r = client.get_run(first)
    assert r.info.status == "FINISHED" and r.info.run_name == "eda-synthetic"
    assert r.data.metrics["count.North"] == 150 and 0 < r.data.metrics["zero_pixel_fraction"] < 1
    plots = {a.path.split("/")[-1] for a in client.list_artifacts(first, "plots")}
    assert plots == {
        f"{n}.html"
        for n in (
            "class_counts",
            "samples_per_class",
            "intensity_histogram",
            "brightness_per_class",
            "average_image",
            "class_prototypes",
        )
    }
    assert eda.run(cfg) == first and "skipped" in capsys.readouterr().out


def test_separation_finds_the_confused_pair():
    y = np.array([0] * 10 + [1] * 10 + [2] * 10)
    c = np.array([0] * 10 + [1] * 5 + [2] * 5 + [1] * 6 + [2] * 4)  # classes 1 and 2 share clusters 1, 2
    sep = markdown.separation(y, c, ["A", "B", "C"])
    assert sep["best"][0] == ("A", 1.0)
    assert {sep["confused"][0][0], sep["confused"][0][1]} == {"B", "C"}
    assert sep["confused"][0][2] == pytest.approx(0.9)


def test_run_report_states_the_runs_own_numbers(make_cfg, store):
    result = run(make_cfg())
    client = MlflowClient(store)
    text = client.download_artifacts(result.run_id, "report.md", str(__import__("tempfile").mkdtemp()))
    md = open(text).read()
    m = result.metrics
    for needle in (
        f"ARI {m['ari']:.3f}",
        f"NMI {m['nmi']:.3f}",
        f"purity {m['purity']:.3f}",
        f"k95 = {int(m['k95'])}",
        f"silhouette {m['silhouette']:.3f}",
    ):
        assert needle in md
    assert "Most confused pairs" in md and "North" + "" in md or "East" in md


def test_seed_notebook_experiment_end_to_end_on_synthetic(store):
    res = run_py("+experiment=seed_notebook", "dataset=synthetic", "notebook.mse_sample=100", store=store)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.info.run_name == "seed-notebook"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    names = sorted(r.info.run_name for r in children)
    assert parent.info.status == "FINISHED" and {r.info.status for r in children} == {"FINISHED"}
    assert "eda-synthetic" in names and "reduction-pca-svd" in names
    assert sum(n.startswith("pca-k100-kmeans-K") for n in names) == 7 + 1  # the sweep K=6..12 and the final
    assert sum("-dbscan-p" in n for n in names) == 6
    (red,) = [r for r in children if r.info.run_name == "reduction-pca-svd"]
    (final,) = [r for r in children if r.data.tags.get("notebook.role") == "final"]
    assert final.data.params["clusterer.n_init"] == "20" and final.data.params["clusterer.n_fit"] == "None"
    # the notebook picks K by silhouette in its clustering space, PCA(100, whiten), not in the common space
    clustering = [r for r in children if "-kmeans-" in r.info.run_name or "-dbscan-" in r.info.run_name]
    assert {r.data.params["metrics.space"] for r in clustering} == {"embedding"}
    text = open(
        client.download_artifacts(parent.info.run_id, "report.md", str(__import__("tempfile").mkdtemp()))
    ).read()
    assert f"k95 = {int(red.data.metrics['k95'])}" in text
    assert f"ARI {final.data.metrics['ari']:.3f}" in text and f"K = {int(parent.data.metrics['best_K'])}" in text
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/kmeans_sweep.html", "summary/dbscan_eps_sweep.html", "summary/summary.csv"} <= files
    red_plots = {a.path.split("/")[-1] for a in client.list_artifacts(red.info.run_id, "plots")}
    assert {"mse_vs_k.html", "evr_pca_vs_svd.html", "reconstructions.html", "explained_variance.html"} <= red_plots
