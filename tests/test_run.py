"""`python run.py` end to end in a subprocess, and what MLflow holds afterwards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import python, run_py, runs

TINY_ARGS = [
    "dataset=synthetic",
    "reducer.k=8",
    "clusterer.K=4",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=300",
    "plots.scatter_points=200",
]
REQUIRED = {
    "ari",
    "nmi",
    "purity",
    "acc_hungarian",
    "silhouette",
    "silhouette_n",
    "n_clusters",
    "inertia",
    "explained_variance",
    "reconstruction_mse",
    "time_load_s",
    "time_reduce_s",
    "time_cluster_s",
    "time_assign_s",
    "time_metrics_s",
    "time_plots_s",
    "time_total_s",
}


def test_run_logs_params_metrics_tags_artifacts_and_name(store):
    res = run_py(*TINY_ARGS, store=store)
    assert res.returncode == 0, res.stderr
    client, found = runs(store)
    assert len(found) == 1
    r = found[0]
    assert r.info.status == "FINISHED"
    name = "pca-k8-kmeans-K4-n_init2-metrics.silhouette_sample_size300-plots.scatter_points200"
    assert r.info.run_name == name
    assert REQUIRED <= set(r.data.metrics)
    assert r.data.metrics["ari"] > 0.5 and r.data.metrics["n_clusters"] == 4
    report = client.download_artifacts(r.info.run_id, "report.md", str(Path(store[10:]).parent))
    assert Path(report).read_text().strip() in res.stdout  # the run's report is printed, then where it went
    assert f"run {name} ({r.info.run_id}) logged to {store}" in res.stdout
    assert f"ARI {r.data.metrics['ari']:.3f}" in res.stdout
    p = r.data.params
    assert p["reducer.k"] == "8" and p["clusterer.K"] == "4" and p["seed"] == "42"
    assert p["reducer.estimator._target_"] == "sklearn.decomposition.PCA"
    t = r.data.tags
    assert len(t["data.sha256"]) == 64 and t["git.dirty"] in {"true", "false"} and len(t["git.commit"]) == 40
    assert "reducer.k=8" in t["hydra.overrides"] and t["command"].startswith("run.py")
    top = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "overrides.yaml", "plots"} <= top
    html = {a.path for a in client.list_artifacts(r.info.run_id, "plots")}
    expected = [
        "cluster_sizes",
        "contingency_counts",
        "contingency_fraction",
        "cluster_purity",
        "best_cluster_recall",
        "cluster_scatter",
        "class_scatter_2d",
        "class_scatter_3d",
        "reconstructions",
        "explained_variance",
        "centroids",
    ]
    assert html == {f"plots/{n}.html" for n in expected}
    assert "spectrum.json" in top and r.data.metrics["k95"] > 8
    page = Path(client.download_artifacts(r.info.run_id, "plots/contingency_counts.html", str(Path(store[10:]).parent)))
    text = page.read_text()
    assert "North" in text and len(text) < 200_000  # class names; plotly.js not embedded, but the store's copy:
    assert re.search(r'"run": "([0-9a-f]{32})"', text)[1] in {
        r.info.run_id for r in runs(store, "clustersweep-assets")[1]
    }
    art = Path(r.info.artifact_uri.removeprefix("file://"))
    assert art.is_relative_to(Path(store[10:]).parent)  # artifacts beside the store, not in Hydra's folders


def test_dbscan_without_reducer_logs_noise_and_skips_undefined_metrics(store):
    res = run_py("dataset=synthetic", "reducer=none", "clusterer=dbscan", "clusterer.eps=0.01", store=store)
    assert res.returncode == 0, res.stderr
    _, (r,) = runs(store)
    assert r.info.status == "FINISHED" and r.info.run_name == "pixels-dbscan-eps0.01-m5"
    assert r.data.metrics["noise_fraction"] == 1.0
    assert "silhouette" not in r.data.metrics and "skipped.silhouette" in r.data.tags
    assert "inertia" not in r.data.metrics


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["reducer.k=0"], "reducer.k=0 is not allowed"),
        (["clusterer.K=1"], "clusterer.K=1 is not allowed"),
        (["clusterer=dbscan", "clusterer.eps=-1"], "clusterer.eps=-1 is not allowed"),
        (["clusterer=dbscan", "clusterer.min_samples=0"], "clusterer.min_samples=0"),
        (["dataset.n_train=-5"], "dataset.n_train=-5"),
        (["reducer.kk=5"], "reducer.kk=5 is not allowed: the chosen reducer has no key 'kk', nor has any other"),
        (["clusterer.eps=0.5"], "clusterer.eps=0.5 is not allowed: the chosen clusterer has no key 'eps'"),
        (["dataset.test_size=0.3"], "dataset.test_size=0.3 is not allowed: the chosen dataset has no key 'test_size'"),
        (["seeed=3"], "seeed=3 is not allowed: the config has no key 'seeed' (a typo?)"),
        (
            ["-m", "reducer=pca_umap,umap", "reducer.n_neighbors=15"],
            "of one: `python run.py -m dataset=synthetic reducer=pca_umap,umap 'reducer.n_neighbors=choice(15)'",
        ),
        (
            ["dataset=image_folder", "dataset.path=/tmp", "dataset.image_size=64"],
            "dataset.image_size=64 is not allowed: expected [height, width], two integers > 0",
        ),
        (
            ["reducer=pcaa"],
            "Could not find 'reducer/pcaa' Available options in 'reducer': none patches_multiscale_umap patches_umap "
            "pca pca_umap svd umap",
        ),
        (["reducer.k=abc"], "reducer.k='abc' is not allowed"),
        (["clusterer.K=[1"], "no viable alternative at input '[1'"),
        (["dataset=fashion_mnist", "dataset.path=/nonexistent"], "/nonexistent"),
        # A sweep that would not do what it says is refused before its parent run exists.
        (["-m", "task=eda"], "task=eda cannot run under -m (a sweep's jobs are clustering runs): it is one run"),
        (["-m", "+experiment=seed_notebook"], "task=notebook cannot run under -m"),
        (["-m", "task=cluster,eda", "clusterer.K=3"], "task=eda cannot run under -m"),
        (["-m", "sweep.select_by=ari", "clusterer.K=3,4"], "sweep.select_by='ari' is not allowed: expected one of"),
        (
            ["-m", "sweep.select_by=silhouette,modularity", "clusterer.K=3"],
            "sweep.select_by=silhouette,modularity cannot be swept",
        ),
        (["-m", "sweep.rerun_finished=maybe", "clusterer.K=3,4"], "sweep.rerun_finished='maybe' is not allowed"),
        (["-m", "search=pca_kmeans", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0 is not allowed"),
        (
            ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "clusterer.K=3,4"],
            "hydra.launcher.n_jobs=0 is not allowed: expected an integer other than 0",
        ),
        (["tracking.lock_timeout=0"], "tracking.lock_timeout=0 is not allowed: expected a number > 0"),
        (["verbose=maybe"], "verbose='maybe' is not allowed: expected true or false"),
        (["consensus.members=0"], "consensus.members=0 is not allowed: expected an integer in 1..100"),
        (["dataset=idx", "dataset.path=/nonexistent"], "dataset.path=/nonexistent: no such folder"),
    ],
)
def test_bad_input_is_one_line_nonzero_exit_and_no_run(store, args, expect):
    flags = [a for a in args if a == "-m"]
    res = run_py(*flags, "dataset=synthetic", *[a for a in args if a != "-m"], store=store)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr
    for experiment in ("synthetic", "fashion-mnist"):
        assert runs(store, experiment)[1] == []


def test_help_is_the_projects_own(store):
    res = run_py("--help", store=store)
    assert res.returncode == 0, res.stderr
    groups = "reducer: none, patches_multiscale_umap, patches_umap, pca, pca_umap, svd, umap"
    for said in ("clustersweep:", groups, "Examples:", "README.md"):
        assert said in res.stdout, res.stdout


def test_corrupt_data_file_is_refused_in_one_line(store, tmp_path):
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (tmp_path / name).write_bytes(b"\x1f\x8b\x08\x00 truncated")
    res = run_py("dataset=fashion_mnist", f"dataset.path={tmp_path}", store=store)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "corrupt or truncated" in lines[0] and str(tmp_path) in lines[0]
    assert runs(store, "fashion-mnist")[1] == []


def test_reproduce_round_trip_and_a_run_from_another_machine(store):
    import subprocess

    assert run_py(*TINY_ARGS, store=store).returncode == 0
    client, (r,) = runs(store)

    def reproduce() -> subprocess.CompletedProcess:
        return python("scripts/reproduce.py", r.info.run_id, "--tracking-uri", store)

    res = reproduce()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ari" in res.stdout and " NO" not in res.stdout and "machine." not in res.stdout
    assert res.stdout.splitlines()[-1].startswith("reproduced: every metric matches (")
    _, both = runs(store)
    assert len(both) == 2 and {x.info.status for x in both} == {"FINISHED"}
    assert any(x.data.tags.get("reproduces") == r.info.run_id for x in both)
    assert {"machine.cpu", "machine.cores", "machine.blas", "machine.threads"} <= set(r.data.tags)
    client.log_metric(r.info.run_id, "ari", r.data.metrics["ari"] + 0.01)  # a logged figure the rerun will not match
    res = reproduce()
    assert res.returncode == 1 and " NO" in res.stdout, res.stdout + res.stderr  # same machine: a real mismatch
    assert res.stdout.splitlines()[-1].startswith("NOT reproduced: 1 of ") and "(ari) on the same CPU" in res.stdout
    client.set_tag(r.info.run_id, "machine.cpu", "Fake CPU 9000")
    res = reproduce()
    assert res.returncode == 3, res.stdout + res.stderr  # another CPU: said, and its own exit code
    assert "(ari); the run was logged on another machine (machine.cpu)" in res.stdout.splitlines()[-1]
    assert f"machine.cpu: logged on 'Fake CPU 9000', rerun on '{r.data.tags['machine.cpu']}'" in res.stdout


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist_subsample(store):
    res = run_py("dataset.n_train=3000", "dataset.n_test=600", "reducer.k=30", "clusterer.K=10", store=store)
    assert res.returncode == 0, res.stderr
    _, (r,) = runs(store, "fashion-mnist")
    m = r.data.metrics
    assert r.info.status == "FINISHED" and r.data.params["dataset.n_train"] == "3000"
    assert 0.35 < m["nmi"] < 0.7 and 0.15 < m["ari"] < 0.6 and m["explained_variance"] > 0.7
    assert r.data.tags["data.sha256"] == "697249e9d1e87d6b2c6a738e828c890264cffecccb13840d472e3585751a5582"
