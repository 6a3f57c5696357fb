"""Sweeps against a real MLflow tracking server: runs, metrics and proxied artifacts over HTTP, secrets never
logged, a server that does not answer, and one that dies in the middle of a sweep."""

from __future__ import annotations

from pathlib import Path

import requests
import urllib3.util.connection
from conftest import WAIT, free_port, loopback_only, read_until, run_py, start_run_py
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from clustersweep.errors import one_line
from clustersweep.tracking.redact import redact

GRID = [
    "dataset=synthetic",
    "reducer=pca,svd",
    "reducer.k=4",
    "clusterer.K=3,4",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
]


def server_args(experiment: str, tmp_path: Path) -> list[str]:
    """tracking=server into its own experiment; the reducer cache in the test's folder, not ~/.cache."""
    return ["tracking=server", f"tracking.experiment={experiment}", f"cache.dir={tmp_path / 'cache'}"]


def experiment_runs(client: MlflowClient, name: str) -> tuple[list, list]:
    """(parents, children) of an experiment."""
    exp = client.get_experiment_by_name(name)
    found = [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in found if "sweep.overrides" in r.data.tags], [r for r in found if "sweep.job" in r.data.tags]


def test_a_joblib_sweep_logs_runs_metrics_and_artifacts_to_the_server_and_no_secret(mlflow_server, tmp_path):
    password, token = "pw-Zq81-secret", "tok-7Hc2-secret"
    uri = mlflow_server.uri.replace("http://", "http://alice:" + password + "@")
    res = run_py(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *GRID,
        *server_args("server-sweep", tmp_path),
        "sweep.register_best=server-best",
        store=uri,
        out=tmp_path / "hydra",
        env={"MLFLOW_TRACKING_TOKEN": token},
        process=True,  # joblib's workers
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 finished, 0 failed" in res.stdout
    assert loopback_only(mlflow_server.port)  # serve_tracking.sh binds 127.0.0.1 unless told otherwise
    client = MlflowClient(mlflow_server.uri)
    (parent,), children = experiment_runs(client, "server-sweep")
    assert parent.info.status == "FINISHED" and len(children) == 4
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len({c.data.tags["process.pid"] for c in children}) == 2  # two joblib workers
    assert all(0 < c.data.metrics["nmi"] <= 1 and c.data.metrics["n_clusters"] >= 3 for c in children)
    # Artifacts go through the server (proxied) into its own artifact folder.
    exp = client.get_experiment_by_name("server-sweep")
    assert exp.artifact_location.startswith("mlflow-artifacts:")
    child = children[0]
    config = Path(client.download_artifacts(child.info.run_id, "config.yaml", str(tmp_path)))
    assert "experiment: server-sweep" in config.read_text()
    stored = list((mlflow_server.store / "artifacts").rglob(f"{child.info.run_id}/artifacts/config.yaml"))
    assert len(stored) == 1
    assert "summary/summary.csv" in {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    # The REST API says the same.
    found = requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp.experiment_id]}, timeout=WAIT
    ).json()["runs"]
    assert len(found) == 5
    metric = requests.get(
        f"{mlflow_server.uri}/api/2.0/mlflow/metrics/get-history",
        params={"run_id": child.info.run_id, "metric_key": "nmi"},
        timeout=WAIT,
    ).json()["metrics"]
    assert metric[0]["value"] == child.data.metrics["nmi"]
    # … and shows each run's logged model and its dataset input.
    got = requests.get(
        f"{mlflow_server.uri}/api/2.0/mlflow/runs/get", params={"run_id": child.info.run_id}, timeout=WAIT
    )
    run = got.json()["run"]
    (dataset,) = run["inputs"]["dataset_inputs"]
    assert (
        dataset["dataset"]["digest"] == child.data.tags["data.sha256"][:36]
        and dataset["dataset"]["name"] == "synthetic"
    )
    (output,) = run["outputs"]["model_outputs"]
    model = requests.get(f"{mlflow_server.uri}/api/2.0/mlflow/logged-models/{output['model_id']}", timeout=WAIT).json()
    assert (
        model["model"]["info"]["source_run_id"] == child.info.run_id
        and model["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    )
    assert {m["key"] for m in model["model"]["data"]["metrics"]} >= {"nmi", "silhouette"}
    # The best run's model registered through the server, linked to its logged model both ways.
    (version,) = client.search_model_versions("name='server-best'")
    best = client.get_logged_model(client.get_run(version.run_id).outputs.model_outputs[0].model_id)
    assert version.source == f"models:/{best.model_id}" and "server-best" in best.tags["mlflow.modelVersions"]
    # No secret in anything the sweep logged or printed; the URI is there, masked.
    assert "alice\\:***@127.0.0.1" in res.stdout  # Hydra's log of each job's overrides (it escapes `:`)
    logged = [res.stdout, res.stderr]
    for run in [parent, *children]:
        logged += [run.info.run_name, *run.data.params.values(), *run.data.tags.values()]
        folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        logged += [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()]
    everything = "\n".join(logged)
    assert password not in everything and token not in everything
    assert child.data.params["tracking.uri"] == f"http://alice:***@127.0.0.1:{mlflow_server.port}"


def test_redact_masks_uri_passwords_and_secret_variables_in_every_form(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-abc-123")
    assert redact("http://alice:pw@h:5000/x tok-abc-123") == "http://alice:***@h:5000/x ***"
    assert redact(r"tracking.uri=http\://alice\:pw@h\:5000") == r"tracking.uri=http\://alice\:***@h\:5000"
    assert redact("postgresql://u:p@ss@db:5432/x?to=a@b") == "postgresql://u:***@db:5432/x?to=a@b"
    kept = "sqlite:////tmp/a@b/mlflow.db http://h:5000 https://user@h mail me@host"
    assert redact(kept) == kept
    error = MlflowException("API request to http://alice:pw@h:5000/api/2.0/mlflow/runs/get failed")
    assert redact(one_line(error)) == "API request to http://alice:***@h:5000/api/2.0/mlflow/runs/get failed"


def test_a_server_that_does_not_answer_stops_a_run_and_a_sweep_at_once(tmp_path, monkeypatch):
    uri = f"http://bob:pw-Lk3@127.0.0.1:{free_port()}"
    port = int(uri.rsplit(":", 1)[1])
    tries = []  # connections to the server: one, not MLflow's retries over minutes
    connect = urllib3.util.connection.create_connection
    monkeypatch.setattr(
        urllib3.util.connection,
        "create_connection",
        lambda address, *a, **k: tries.append(address) or connect(address, *a, **k),
    )
    for mode in ([], ["-m", "clusterer.K=3,4"]):
        tries.clear()
        res = run_py(*mode, "dataset=synthetic", "tracking=server", store=uri, out=tmp_path / "hydra")
        assert res.returncode == 2, res.stdout + res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert f"tracking.uri=http://bob:***@127.0.0.1:{uri.rsplit(':', 1)[1]} does not answer" in lines[0]
        assert "pw-Lk3" not in res.stdout + res.stderr
        assert "[1/" not in res.stdout  # no job started
        assert [p for _, p in tries] == [port], tries


def test_a_server_dying_mid_sweep_fails_the_jobs_that_cannot_log_and_a_rerun_does_only_those(mlflow_server, tmp_path):
    grid = [
        "dataset=synthetic",
        "reducer.k=4",
        "clusterer.K=2,3,4,5",
        "clusterer.n_init=20",
        "metrics.silhouette_sample_size=200",
        "plots.enabled=false",
        *server_args("server-fault", tmp_path),
    ]
    names = sorted(
        f"pca-k4-kmeans-K{k}-n_init20-metrics.silhouette_sample_size200-plots.enabled=false" for k in range(2, 6)
    )
    out = tmp_path / "hydra"
    proc = start_run_py("-m", *grid, store=mlflow_server.uri, out=out)
    try:
        seen = read_until(proc, lambda seen: seen.count("finished in") >= 2)
        mlflow_server.stop()  # the server dies: SIGTERM then SIGKILL to its process group
        rest, _ = proc.communicate(timeout=WAIT)
    finally:
        if mlflow_server.proc is None:
            mlflow_server.start()  # the same port and store: a restart
    text = seen + rest
    assert proc.returncode == 1, text
    failed_lines = [ln for ln in text.splitlines() if "FAILED" in ln and ln.startswith("[")]
    assert failed_lines, text
    summary = [ln for ln in text.splitlines() if ln.startswith("sweep failed:")]
    assert len(summary) == 1, text
    for line in failed_lines:  # every job that could not log is named in the summary
        assert line.split("] ")[1].split(" …")[0] in summary[0]
    assert "Traceback" not in text

    client = MlflowClient(mlflow_server.uri)
    _, before = experiment_runs(client, "server-fault")
    kept = {c.info.run_id: c.data.metrics for c in before if c.info.status == "FINISHED"}
    assert 2 <= len(kept) < 4

    res = run_py("-m", *grid, store=mlflow_server.uri, out=out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("skipped: identical run") == len(kept)
    parents, children = experiment_runs(client, "server-fault")
    finished = sorted(c.info.run_name for c in children if c.info.status == "FINISHED")
    assert finished == names  # all four, none twice
    assert "RUNNING" not in {r.info.status for r in [*parents, *children]}
    for run_id, metrics in kept.items():  # nothing logged before the crash was lost
        assert client.get_run(run_id).data.metrics == metrics
        assert "config.yaml" in {a.path for a in client.list_artifacts(run_id)}
