"""The methods beyond the notebook, each a YAML file: every one runs, logs the same metrics and plots, and
scores its label-free metrics in the common space."""

from __future__ import annotations

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from sklearn.decomposition import PCA
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from clustersweep.data.dataset import load
from clustersweep.report import tables
from clustersweep.stages import cache, metrics
from clustersweep.stages.cluster import fit_rows
from clustersweep.stages.features import PatchCodes
from clustersweep.tasks.cluster import run

SCORES = {"ari", "nmi", "purity", "acc_hungarian", "n_clusters", *metrics.LABEL_FREE}


@pytest.mark.parametrize(
    ("clusterer", "extra"),
    [
        ("gmm", ["clusterer.covariance_type=diag"]),
        ("minibatch_kmeans", ["clusterer.batch_size=256"]),
        ("hdbscan", ["clusterer.min_cluster_size=30"]),
        ("agglomerative", ["clusterer.n_fit=400"]),
    ],
)
def test_each_clusterer_logs_the_scores_and_plots(make_cfg, store, clusterer, extra):
    result = run(make_cfg(f"clusterer={clusterer}", *extra))
    assert SCORES <= set(result.metrics), result.skipped
    assert result.metrics["nmi"] > 0.5
    client = MlflowClient(store)
    plots = {a.path.split("/")[-1] for a in client.list_artifacts(result.run_id, "plots")}
    assert {"contingency_counts.html", "cluster_purity.html", "centroids.html", "cluster_scatter.html"} <= plots


def test_label_free_metrics_are_computed_in_the_common_pca_space(make_cfg):
    cfg = make_cfg("reducer=none", "clusterer.n_fit=400", "metrics.silhouette_sample_size=1000", "plots.enabled=false")
    result = run(cfg)
    data = load(cfg.dataset, cfg.seed)
    idx = fit_rows(400, len(data.X_train), cfg.seed)
    common = PCA(cfg.metrics.common_k, svd_solver="covariance_eigh").fit_transform(data.X_train)[idx]
    labels = instantiate(cfg.clusterer.estimator).fit_predict(data.X_train[idx])
    assert result.metrics["silhouette"] == pytest.approx(
        metrics.silhouette(common, labels, 1000, cfg.seed)[0], abs=1e-5
    )
    assert result.metrics["davies_bouldin"] == pytest.approx(davies_bouldin_score(common, labels), rel=1e-5)
    assert result.metrics["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(common, labels), rel=1e-5)


def test_metrics_space_embedding_scores_in_the_runs_own_space_and_other_spaces_add_theirs(make_cfg):
    common = run(make_cfg("metrics.space=common", "plots.enabled=false")).metrics
    own = run(make_cfg("metrics.space=embedding", "plots.enabled=false")).metrics
    assert common["nmi"] == own["nmi"] and common["silhouette"] != own["silhouette"]
    both = run(make_cfg("metrics.other_spaces=[embedding]", "plots.enabled=false")).metrics
    for m in ("silhouette", "davies_bouldin", "calinski_harabasz", "modularity"):
        assert both[m] == common[m] and both[f"{m}.embedding"] == own[m]


def test_the_patches_space_is_one_space_for_every_seed_and_reducer(make_cfg, store):
    """`patches`: exact PCA of the standardized patch codes, coded with a seed of their own, never the run's: runs
    with other seeds and reducers are scored in the very same space, fitted once."""
    off = ["plots.enabled=false", "model.log=false"]
    a = make_cfg("reducer=pca", "seed=1", "metrics.space=patches", *off)
    b = make_cfg("reducer=svd", "seed=2", "metrics.other_spaces=[embedding,patches]", *off)
    folder = cache.cache_dir(a, store)
    first = run(a).metrics
    fits = cache.stored(folder)["reducer fits"][0]  # pca-k8 and the patches space
    second = run(b).metrics
    assert cache.stored(folder)["reducer fits"][0] == fits + 2  # svd-k8 and the common space: the patches space hit
    assert "modularity" in first and "modularity.patches" not in first
    assert {"modularity.patches", "modularity.embedding", "silhouette.patches"} <= set(second)
    data = load(a.dataset, a.seed)
    shared = [cache.patch_space(cfg, load(cfg.dataset, cfg.seed), store) for cfg in (a, b)]
    np.testing.assert_array_equal(shared[0], shared[1])
    p = a.metrics.patches
    codes = PatchCodes(list(data.image_shape), p.n_filters, p.patch, p.pool, random_state=p.seed)
    pca = PCA(a.metrics.common_k, svd_solver="covariance_eigh")
    np.testing.assert_allclose(
        shared[0], make_pipeline(codes, StandardScaler(), pca).fit_transform(data.X_train), atol=1e-4
    )


def test_a_subsample_of_another_seed_goes_through_the_one_fitted_patches_space(make_cfg, store):
    """The space is fitted on the rows its own seed draws; a run's other subsample is mapped through it, so a train
    row drawn by both seeds has the same coordinates in both."""
    cfgs = [make_cfg("dataset.n_train=300", f"seed={seed}") for seed in (0, 3)]
    data = [load(cfg.dataset, cfg.seed) for cfg in cfgs]
    spaces = [cache.patch_space(cfg, d, store) for cfg, d in zip(cfgs, data, strict=True)]
    rows = [{row.tobytes(): i for i, row in enumerate(d.X_train)} for d in data]
    both = sorted(rows[0].keys() & rows[1].keys())
    assert 50 < len(both) < 300 and all(len(s) == 300 for s in spaces)
    first, second = ([r[key] for key in both] for r in rows)
    np.testing.assert_allclose(spaces[0][first], spaces[1][second], atol=1e-4)


@pytest.mark.parametrize(
    "reducer", [["reducer=pca_umap"], ["reducer=patches_umap", "reducer.n_filters=16", "reducer.pool=2"]]
)
def test_a_umap_chain_runs_is_cached_and_skips_reconstruction(make_cfg, store, reducer, monkeypatch, capfd):
    cfg = make_cfg(*reducer, "reducer.pca_k=20", "reducer.k=3", "reducer.n_neighbors=10", "clusterer=gmm")
    cfg.plots.enabled = False
    cfg.verbose = True  # the fit's progress lines: they are not part of what it computes
    first = run(cfg)
    assert "epochs" in capfd.readouterr().out
    assert SCORES <= set(first.metrics) and first.metrics["nmi"] > 0.5
    assert "reconstruction_mse" not in first.metrics  # UMAP has no reconstruction worth scoring
    cfg.verbose = False  # the default: the same computation (identity, name, cache), and quiet, in its model too
    second = run(cfg)
    assert "epochs" not in capfd.readouterr().out and second.run_name == first.run_name
    client = MlflowClient(store)
    tags = [client.get_run(r.run_id).data.tags for r in (first, second)]
    assert tags[1]["cache.reducer"] == "hit" and tags[0]["config.identity"] == tags[1]["config.identity"]
    assert np.isclose(first.metrics["nmi"], second.metrics["nmi"])
    logged = client.get_logged_model(client.get_run(second.run_id).outputs.model_outputs[0].model_id)
    model = mlflow.sklearn.load_model(logged.artifact_location)
    assert not any(getattr(step, "verbose", False) for _, step in model.steps)
    if "reducer=patches_umap" in reducer:  # our own step: a change of its code is a new fit, not a stale one
        monkeypatch.setattr(cache, "targets_code", lambda node: "edited")
        assert client.get_run(run(cfg).run_id).data.tags["cache.reducer"] == "miss"


def test_leaderboard_lists_each_familys_best_by_the_label_free_metric(make_cfg, store, tmp_path):
    from conftest import python, run_py, runs

    k3, k4 = (run(make_cfg(f"clusterer.K={k}", "plots.enabled=false")) for k in (3, 4))
    args = ["dataset=synthetic", "reducer.k=8", "clusterer=gmm", "clusterer.K=4", "plots.enabled=false"]
    assert run_py(*args, store=store).returncode == 0  # from the command line: its overrides recreate it
    (gmm,) = [r for r in runs(store)[1] if "gmm" in r.info.run_name]
    readme = tmp_path / "results.md"
    readme.write_text("# x\n<!-- leaderboard:begin -->\nold\n<!-- leaderboard:end -->\ntail\n")
    cmd = ["scripts/compare.py", "--experiment", "synthetic", "--leaderboard"]
    res = python(*cmd, "--tracking-uri", store, "--out", str(tmp_path), "--into", str(readme))
    assert res.returncode == 0, res.stderr
    rows = [line for line in (tmp_path / "leaderboard.md").read_text().splitlines() if line.startswith("| pca")]
    assert len(rows) == 2
    best_km = max((k3, k4), key=lambda r: r.metrics["silhouette"])
    by_family = {row.split(" | ")[0].strip("| "): row for row in rows}
    assert best_km.run_name in by_family["pca → kmeans"] and gmm.info.run_name in by_family["pca → gmm"]
    cells = [c.strip() for c in by_family["pca → gmm"].strip("|").split("|")]
    assert cells[3] == "1"  # replicates: one run
    assert float(cells[4]) == pytest.approx(gmm.data.metrics["silhouette"], abs=5e-4)  # the selecting metric
    assert float(cells[6]) == pytest.approx(gmm.data.metrics["nmi"], abs=5e-4)
    assert cells[-1] == f"`python run.py {' '.join(args)} tracking.uri={store}`"  # a command, not a run id
    text = readme.read_text()
    assert "old" not in text and by_family["pca → gmm"] in text and text.endswith("tail\n")
    bad = python(*cmd, "--metric", "nmi", "--tracking-uri", store)
    assert bad.returncode == 2 and "cannot pick a leaderboard" in bad.stderr
    judged = python(*cmd[:-1], "--criteria", "--tracking-uri", store, "--out", str(tmp_path))
    assert judged.returncode == 0, judged.stderr
    rows = [line for line in (tmp_path / "criteria.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert sorted(row.split(" | ")[0].strip("| ") for row in rows) == sorted(metrics.LABEL_FREE)


def test_criteria_judge_each_label_free_metric_by_how_it_ranks_the_runs():
    df = pd.DataFrame(
        {
            "run_name": ["r1", "r2", "r3", "r4", "failed", "own-space"],
            "status": ["FINISHED"] * 4 + ["FAILED", "FINISHED"],
            "metrics.space": ["common"] * 5 + ["embedding"],
            "nmi": [0.1, 0.2, 0.3, 0.4, 0.0, 0.0],
            "acc_hungarian": [0.4, 0.3, 0.2, 0.1, 0.0, 0.0],
            "ari": [0.0] * 6,
            "silhouette": [0.1, 0.3, 0.2, 0.4, 9.0, 9.0],  # ranks 1 3 2 4: Spearman 0.8 with nmi
            "davies_bouldin": [4.0, 3.0, 2.0, 1.0, 0.0, 0.0],  # lower is better: nmi's own order
            "calinski_harabasz": [4.0, 3.0, 2.0, 1.0, 9.0, 9.0],  # higher is better: the reverse of nmi's
        }
    )
    table = tables.criteria(df)
    assert table.objective.tolist() == ["davies_bouldin", "silhouette", "calinski_harabasz"]
    assert table["its pick"].tolist() == ["r4", "r4", "r1"] and table.runs.tolist() == [4, 4, 4]
    assert table["rank corr. with nmi"].tolist() == pytest.approx([1.0, 0.8, -1.0])
    assert table["rank corr. with acc_hungarian"].tolist() == pytest.approx([-1.0, -0.8, 1.0])
    assert tables.criteria(df.head(2)).empty  # fewer than 3 runs judge nothing
    # the sweeps chose by a front of two (sweep.select_by=[silhouette,davies_bouldin]): a row of its own, its pick
    # the front's best mean rank (r4: first in both), its correlation that of the mean rank (ranks 1 2.5 2.5 4)
    df.attrs["select_by"] = "silhouette,davies_bouldin;modularity,silhouette"  # modularity: not logged, no row
    front = tables.criteria(df).set_index("objective").loc["front of silhouette, davies_bouldin"]
    assert front["its pick"] == "r4" and front["rank corr. with nmi"] == pytest.approx(0.9486833)


def test_best_never_picks_a_degenerate_run():
    df = pd.DataFrame(
        {
            "run_name": ["two tight clusters, 70% noise", "ten clusters", "twelve clusters"],
            "status": ["FINISHED"] * 3,
            "degenerate": ["70% of the points are noise (metrics.max_noise=0.5)", None, None],
            "silhouette": [0.9, 0.3, 0.2],
            "davies_bouldin": [0.1, 1.2, 1.0],
        }
    )
    assert tables.best(df, "silhouette").run_name == "ten clusters"
    assert tables.best(df, "davies_bouldin").run_name == "twelve clusters"  # lower is better
    assert tables.best(df[df.degenerate.notna()], "silhouette") is None
