"""The MLflow UI as a user meets it, in headless Chromium, offline: a small sweep with `register_best` through an
MLflow server, then the pages a user opens — the link the sweep prints, a run, its dataset, the logged model and
its registered version."""

from __future__ import annotations

import re

from browser import needs_chromium
from conftest import run_py
from mlflow.tracking import MlflowClient

from clustersweep.tracking import ui

GRID = ["-m", "dataset=synthetic", "dataset.n_train=150", "clusterer.K=3,4", "reducer.k=8", "clusterer.n_init=2"]


@needs_chromium
def test_the_ui_opens_the_runs_table_shows_the_subsample_and_the_registered_model(mlflow_server, chromium, tmp_path):
    where = ["tracking=server", "tracking.experiment=ui", f"cache.dir={tmp_path / 'cache'}", "plots.enabled=false"]
    res = run_py(*GRID, *where, "sweep.register_best=ui-best", store=mlflow_server.uri, out=tmp_path / "hydra")
    assert res.returncode == 0, res.stdout + res.stderr
    link = re.search(r"^sweep: its runs in the MLflow UI: (\S+)$", res.stdout, re.M)[1]
    client = MlflowClient(mlflow_server.uri)
    (version,) = client.search_model_versions("name='ui-best'")
    best = client.get_run(version.run_id)
    exp, model_id = best.info.experiment_id, best.outputs.model_outputs[0].model_id
    parent = client.get_run(best.data.tags["mlflow.parentRunId"])
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    ranked = [r.info.run_name for r in sorted(children, key=lambda r: -r.data.metrics["silhouette"])]

    # The sweep's link opens the Model training view's runs table — not the GenAI overview — with the sweep's
    # runs, the best silhouette first.
    assert link.startswith(f"{mlflow_server.uri}/#/experiments/{exp}/runs?workflowType=machine_learning")
    tab = chromium.open(link)
    text = chromium.text_until(tab, lambda t: all(name in t for name in ranked))
    assert "Run Name" in text and "Sort: silhouette" in text and "Token Usage" not in text, text[-3000:]
    assert text.index(ranked[0]) < text.index(ranked[1]) and parent.info.run_name not in text

    # The run page shows the subsample as its dataset; its details give the subsample's shape, not the data's.
    tab = chromium.open(ui.run_link(mlflow_server.uri, exp, best.info.run_id))
    subsample = "synthetic (n_train=150, seed=42)"
    text = chromium.text_until(tab, lambda t: f"Datasets\n{subsample}" in t)
    assert f"Datasets\n{subsample}" in text, text[-3000:]
    assert chromium.click(tab, subsample)
    text = chromium.text_until(tab, lambda t: "features shape" in t)
    assert "features shape: [150,784]" in text and "targets shape: [150]" in text, text[-3000:]

    # The logged model lists its registered version, the run's scores and params, and the dataset they are on.
    tab = chromium.open(f"{mlflow_server.uri}/#/experiments/{exp}/models/{model_id}")

    def model_page(text: str) -> bool:  # its counts are 0 until the page has them all
        counts = [int(n) for n in re.findall(r"(?:Metrics|Parameters) \((\d+)\)", text)]
        shown = "Model versions\nui-best\nv1" in text and f"Datasets used\n{subsample}" in text
        return shown and len(counts) == 2 and min(counts) >= 10 and "\nsilhouette\nsynthetic (n_train=150" in text

    text = chromium.text_until(tab, model_page)
    assert model_page(text), text[-3000:]

    # The version page links back to the logged model it was registered from.
    tab = chromium.open(f"{mlflow_server.uri}/#/models/ui-best/versions/1")
    links = f"Source Run\n:\n{best.info.run_name}\nSource Model\n:\nmodel\n"
    text = chromium.text_until(tab, lambda t: links in t)
    assert links in text, text[:3000]
