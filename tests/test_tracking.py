"""The tracking core: every kind of run opens through it with the same standard tags; importing the package
changes nothing in the process."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, run_py, runs

from clustersweep.tracking.runs import COMPUTATION_TAGS, STANDARD_TAGS

TINY = ["dataset=synthetic", "reducer.k=8", "clusterer.n_init=2", "metrics.silhouette_sample_size=200"]
# The seed notebook shrunk to one run of each kind: EDA, reduction, one K of the sweep, the final, one DBSCAN.
NOTEBOOK = [
    "+experiment=seed_notebook",
    "dataset=synthetic",
    "notebook.mse_sample=50",
    'notebook.kmeans_sweep=["clusterer=kmeans","clusterer.K=3","clusterer.n_init=2"]',
    'notebook.dbscan_sweep=["clusterer=dbscan","clusterer.eps_percentile=90"]',
    "plots.enabled=false",
]


def test_every_kind_of_run_carries_the_standard_tags(store):
    assert run_py(*NOTEBOOK, store=store).returncode == 0
    assert run_py(*TINY, "clusterer.K=4", store=store).returncode == 0
    assert run_py("-m", *TINY, "clusterer.K=3,4", "plots.enabled=false", store=store).returncode == 0
    _, found = runs(store)
    notebook = next(r for r in found if r.info.run_name == "seed-notebook")
    sweep = next(r for r in found if r.data.tags.get("sweep.overrides", "").startswith("dataset=synthetic"))
    kinds = {
        "EDA run": next(r for r in found if r.info.run_name == "eda-synthetic"),
        "single run": next(r for r in found if not {"mlflow.parentRunId", "sweep.overrides"} & set(r.data.tags)),
        "sweep child": next(r for r in found if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id),
        "sweep parent": sweep,
        "notebook child": next(r for r in found if r.data.tags.get("notebook.role") == "final"),
        "notebook parent": notebook,
    }
    print("\n".join(f"{kind}: {sorted(r.data.tags)}" for kind, r in kinds.items()))  # the list, when it fails
    for kind, r in kinds.items():
        missing = [t for t in STANDARD_TAGS if not r.data.tags.get(t)]
        assert not missing, f"the {kind} lacks {missing}"
        assert r.data.tags["mlflow.user"] and r.data.tags["mlflow.source.name"]  # MLflow's own context tags
    for kind in ("EDA run", "single run", "sweep child", "notebook child"):  # runs that compute from data
        missing = [t for t in COMPUTATION_TAGS if t not in kinds[kind].data.tags]
        assert not missing, f"the {kind} lacks {missing}"
        assert len(kinds[kind].data.tags["data.sha256"]) == len(kinds[kind].data.tags["config.identity"]) == 64
    assert len({r.data.tags["code.version"] for r in kinds.values()}) == 1
    assert kinds["EDA run"].data.tags["mlflow.parentRunId"] == notebook.info.run_id
    # A notebook child's overrides are those that recreate it alone: the same config, so the same identity.
    child = kinds["notebook child"]
    alone = run_py(*child.data.tags["hydra.overrides"].split(), store=store)
    assert alone.returncode == 0, alone.stderr
    twin = max(runs(store)[1], key=lambda r: r.info.start_time)
    assert twin.data.params == child.data.params
    assert twin.data.tags["config.identity"] == child.data.tags["config.identity"]


def test_importing_the_package_changes_nothing():
    """No environment change, no resolver, no log setting at import: start-up does them, explicitly."""
    code = """
import importlib, logging, os, pkgutil
import mlflow, hydra, optuna  # what the libraries do on import is theirs
before = dict(os.environ)
factory = logging.getLogRecordFactory()
import clustersweep
for m in pkgutil.walk_packages(clustersweep.__path__, "clustersweep."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
from omegaconf import OmegaConf
changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}
assert not changed, changed
assert not OmegaConf.has_resolver("cs.direction") and not OmegaConf.has_resolver("cs.eps_label")
assert logging.getLogRecordFactory() is factory
from clustersweep.app.cli import start_up
start_up()
assert OmegaConf.has_resolver("cs.direction") and os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MLFLOW_")}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def test_a_dataset_another_run_logs_at_the_same_moment_is_linked_on_the_next_try(store, monkeypatch):
    """MLflow looks a new dataset up, then inserts it: of runs racing to log the same one, all but one break its
    unique key (seen on PostgreSQL: `duplicate key value violates unique constraint "dataset_pk"`)."""
    import numpy as np
    from mlflow.exceptions import MlflowException

    from clustersweep.tracking import runs as tracking_runs
    from clustersweep.tracking.store import experiment_id

    run = tracking_runs.start(store, experiment_id(store, "synthetic"), "racer")
    real, calls = run.client.log_inputs, []

    def lose_the_race_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise MlflowException('duplicate key value violates unique constraint "dataset_pk"')
        return real(*args, **kwargs)

    monkeypatch.setattr(run.client, "log_inputs", lose_the_race_once)
    X = np.zeros((4, 3), dtype=np.float32)
    run.log_input("synthetic", "ab" * 32, "clustersweep.data.generated.Synthetic", X, None)
    run.finish()
    (logged,) = run.client.get_run(run.run_id).inputs.dataset_inputs
    assert len(calls) == 2 and logged.dataset.name == "synthetic"


def test_experiments_open_in_the_uis_model_training_view(store):
    """MLflow 3's UI opens an experiment without `mlflow.experimentKind` in its GenAI view: the project's own get
    it when made, an earlier one on first use; a kind set otherwise is kept."""
    from mlflow.tracking import MlflowClient

    from clustersweep.tracking.store import KIND, KIND_TAG, experiment_id

    client = MlflowClient(store)
    made = client.get_experiment(experiment_id(store, "made-here"))
    older = client.create_experiment("made-before")  # as an earlier version made it: no kind
    chosen = client.create_experiment("chosen", tags={KIND_TAG: "genai_development"})
    assert made.tags[KIND_TAG] == KIND and KIND_TAG not in client.get_experiment(older).tags
    assert experiment_id(store, "made-before") == older and experiment_id(store, "chosen") == chosen
    assert client.get_experiment(older).tags[KIND_TAG] == KIND
    assert client.get_experiment(chosen).tags[KIND_TAG] == "genai_development"


def test_a_subsample_is_a_dataset_of_its_own_and_all_of_train_keeps_the_datas_digest(make_cfg, store):
    """The runs table's Dataset column shows the rows a run fitted on: MLflow keeps one dataset per name and digest,
    so a subsample named and hashed as the full data would show the full data's shape."""
    from clustersweep.tasks.cluster import run

    quiet = ["plots.enabled=false", "model.log=false"]
    whole, part = run(make_cfg(*quiet)), run(make_cfg("dataset.n_train=300", *quiet))
    client, _ = runs(store)
    (full,), (sub,) = (client.get_run(r.run_id).inputs.dataset_inputs for r in (whole, part))
    sha = client.get_run(whole.run_id).data.tags["data.sha256"]
    assert full.dataset.name == "synthetic" and full.dataset.digest == sha[:36]
    assert sub.dataset.name == "synthetic (n_train=300, seed=42)" and sub.dataset.digest != full.dataset.digest
    assert '"features_shape": [300, 784]' in sub.dataset.profile and "[600, 784]" in full.dataset.profile
