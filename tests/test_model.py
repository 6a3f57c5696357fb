"""The fitted pipeline as an MLflow model: loaded in a new process, it gives the test rows the clusters the run
logged, for a clusterer with `predict` and for those without (their test-set rule is in the model)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import requests
from conftest import ROOT, WAIT, free_port, python, run_py, runs, stop_group, wait_for
from scipy import sparse

from clustersweep.data.dataset import load
from clustersweep.tasks import cluster

PREDICT = """
import sys, numpy as np, mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
np.save(sys.argv[4], model.predict(np.load(sys.argv[3])))
"""


@pytest.mark.parametrize(
    "clusterer",
    [
        ["clusterer=kmeans"],
        ["clusterer=gmm"],
        ["clusterer=dbscan", "clusterer.eps=auto"],
        ["clusterer=hdbscan", "clusterer.min_cluster_size=20"],
        ["clusterer=kmeans", "clusterer.n_init=1", "consensus.members=3"],
    ],
    ids=lambda c: "-".join(o.split("=")[1] for o in c if o.startswith(("clusterer=", "consensus."))),
)
def test_the_model_in_a_new_process_gives_the_logged_test_clusters(make_cfg, store, tmp_path, clusterer):
    cfg = make_cfg(*clusterer, "plots.enabled=false")
    res = cluster.run(cfg)
    client, _ = runs(store)
    logged = np.load(client.download_artifacts(res.run_id, "test_clusters.npy", str(tmp_path)))
    X_test = load(cfg.dataset, cfg.seed).X_test
    np.save(tmp_path / "X.npy", X_test)
    out = tmp_path / "predicted.npy"
    done = subprocess.run(
        [sys.executable, "-c", PREDICT, store, res.run_id, str(tmp_path / "X.npy"), str(out)],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    predicted = np.load(out)
    assert len(np.unique(logged)) > 1 and np.array_equal(predicted, logged)
    run = client.get_run(res.run_id)
    assert [o.model_id for o in run.outputs.model_outputs] and run.data.metrics["size_model_bytes"] > 1000
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.digest == run.data.tags["data.sha256"][:36] and dataset.dataset.name == "synthetic"


def test_model_log_false_logs_no_model(make_cfg, store):
    res = cluster.run(make_cfg("model.log=false", "plots.enabled=false"))
    client, _ = runs(store)
    assert not client.get_run(res.run_id).outputs.model_outputs and "size_model_bytes" not in res.metrics


def test_a_sweep_registers_its_best_and_predict_assigns_new_data(store, tmp_path):
    args = ["-m", "dataset=synthetic", "clusterer.K=3,4", "reducer.k=8", "clusterer.n_init=2", "plots.enabled=false"]
    res = run_py(*args, "sweep.register_best=fmnist-best", store=store)
    assert res.returncode == 0 and "registered " in res.stdout, res.stdout[-2000:] + res.stderr
    client, found = runs(store)
    (parent,) = [r for r in found if "sweep.overrides" in r.data.tags]
    (version,) = client.search_model_versions("name='fmnist-best'")
    assert version.run_id == parent.data.tags["best.run_id"] and version.tags["sweep.parent"] == parent.info.run_id
    assert version.tags["sweep.selected_by"] == "silhouette"
    # Linked both ways: the version's source is the logged model, which lists the version and carries the run's
    # scores (measured on its dataset) and params, so the Models tab can sort by them.
    best = client.get_run(version.run_id)
    logged = client.get_logged_model(best.outputs.model_outputs[0].model_id)
    assert version.source == f"models:/{logged.model_id}"
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "fmnist-best", "version": 1}]
    scores = {m.key: m for m in logged.metrics}
    assert scores["silhouette"].value == best.data.metrics["silhouette"] and "nmi" in scores
    (dataset,) = best.inputs.dataset_inputs
    assert (scores["nmi"].dataset_name, scores["nmi"].dataset_digest) == (dataset.dataset.name, dataset.dataset.digest)
    assert logged.params == best.data.params and len(client.get_metric_history(best.info.run_id, "nmi")) == 1
    X = np.random.default_rng(0).random((7, 784), dtype=np.float32)
    np.save(tmp_path / "new.npy", X)
    cmd = ["-m", "clustersweep.predict", "models:/fmnist-best/latest", str(tmp_path / "new.npy")]
    done = python(*cmd, "--out", str(tmp_path / "c.csv"), "--tracking-uri", store)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "c.csv")
    assert list(table.columns) == ["row", "cluster"] and len(table) == 7 and table.cluster.between(0, 3).all()
    np.save(tmp_path / "wide.npy", np.zeros((2, 785), np.float32))
    cmd[-1] = str(tmp_path / "wide.npy")
    bad = python(*cmd, "--tracking-uri", store)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "has 785 values per row but models:/fmnist-best/latest takes 784 (images of 28x28)" in bad.stderr
    # The README's Python lines, as written, in the checkout's place (the store is mlruns/mlflow.db there), in a
    # new process as a user's; then the same rows as float64 and as float32 give the same clusters, and raw
    # 0–255 pixels for a model fitted on 0–1 get one warning line.
    snippet = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[1]
    check = """
print(list(clusters))
X = np.load("new.npy")
print(list(model.predict(X.astype(np.float64))) == list(model.predict(X)) == list(clusters))
model.predict((X * 255).astype(np.uint8))
"""
    done = python("-c", snippet + check, cwd=tmp_path, process=True)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout.splitlines()
    assert said[-1] == "True" and len(eval(said[-2])) == 7  # noqa: S307 - the list it printed
    warned = done.stderr.strip().splitlines()
    assert len(warned) == 1 and "far outside [" in warned[0] and "of the rows the model was fitted on" in warned[0]


def test_a_logged_model_takes_sparse_rows_and_says_what_rows_it_takes(make_cfg, store, tmp_path):
    """Loaded with mlflow.pyfunc: sparse rows give the clusters of the dense ones; rows of another width or values
    that are not numbers are one line naming the rows it takes (what a DataFrame or ndarray through pyfunc gets)."""
    import mlflow

    cfg = make_cfg("plots.enabled=false")
    res = cluster.run(cfg)
    client, _ = runs(store)
    logged = np.load(client.download_artifacts(res.run_id, "test_clusters.npy", str(tmp_path)))
    X_test = load(cfg.dataset, cfg.seed).X_test
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(f"runs:/{res.run_id}/model")
    assert np.array_equal(model.predict(sparse.csr_matrix(X_test)), logged)
    assert np.array_equal(model.predict(pd.DataFrame(X_test)), logged)
    for rows in (X_test[:2, :12], pd.DataFrame(X_test[:2, :12])):
        with pytest.raises(ValueError, match=r"^expected rows of 784 values \(28x28 images\), got 12$"):
            model.predict(rows)
    with pytest.raises(ValueError, match=r"^expected rows of 784 values \(28x28 images\) that are numbers"):
        model.predict(pd.DataFrame([["a"] * 784]))


def test_the_served_model_answers_rows_of_another_width_with_what_it_takes(make_cfg, store, tmp_path):
    """`mlflow models serve`: rows of 12 values get HTTP 400 whose JSON message names the 784 values it takes
    (as a DataFrame and as a tensor); rows of 784 get their clusters."""
    res = cluster.run(make_cfg("plots.enabled=false"))
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{res.run_id}/model"]
    cmd += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        # A busy machine: the server imports MLflow and loads the model first.
        wait_for(lambda: server.poll() is not None or _answers(f"{url}/ping"))
        assert server.poll() is None and _answers(f"{url}/ping"), log.read_text()[-3000:]
        for body in ({"inputs": [[0.0] * 12]}, {"dataframe_split": {"data": [[0.0] * 12]}}):
            answer = requests.post(f"{url}/invocations", json=body, timeout=WAIT)
            assert answer.status_code == 400, answer.text
            said = answer.json()
            assert said["error_code"] == "INVALID_PARAMETER_VALUE", said
            assert "expected rows of 784 values (28x28 images), got 12" in said["message"], said
        good = requests.post(f"{url}/invocations", json={"inputs": [[0.0] * 784]}, timeout=WAIT)
        assert good.status_code == 200 and len(good.json()["predictions"]) == 1, good.text
    finally:
        stop_group(server)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False
