"""Phase 1 — data understanding: one EDA run per dataset version (`python run.py task=eda`).

Skipped when a FINISHED EDA run of the same data, subsample and code already exists in the experiment.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep import plots, tracking
from clustersweep.data import Dataset, load


def figures(data: Dataset, n_sample: int, seed: int) -> dict[str, object]:
    names, shape = list(data.class_names), tuple(data.image_shape)
    X, y = data.X_train, data.y_train
    return {
        "class_counts": plots.class_counts(y, names),
        "samples_per_class": plots.samples_per_class(X, y, names, shape),
        "intensity_histogram": plots.intensity_histogram(X, n_sample, seed),
        "brightness_per_class": plots.brightness_per_class(X, y, names),
        "average_image": plots.average_image(X, shape),
        "class_prototypes": plots.class_prototypes(X, y, names, shape),
    }


def stats(data: Dataset) -> dict[str, float]:
    """What the notebook reads off its EDA plots, as numbers."""
    X, y = data.X_train, data.y_train
    out = {
        "zero_pixel_fraction": float(np.mean(X == 0)),
        "mean_intensity": float(X.mean(dtype=np.float64)),
        "n_train": float(len(X)),
        "n_test": float(len(data.X_test)),
    }
    for c, name in enumerate(data.class_names):
        out[f"count.{name}"] = float(np.sum(y == c))
        out[f"brightness.{name}"] = float(X[y == c].mean(dtype=np.float64)) if np.any(y == c) else 0.0
    return out


def run(cfg: DictConfig, parent_run_id: str | None = None) -> str:
    """Log (or find) the EDA run of cfg.dataset; returns its run id."""
    data = load(cfg.dataset, cfg.seed)
    uri = tracking.tracking_uri(cfg)
    exp_id = tracking.experiment_id(uri, cfg.tracking.experiment)
    identity = tracking.identity(
        OmegaConf.create({"task": "eda", "dataset": cfg.dataset, "seed": cfg.seed, "plots": cfg.plots}), data.sha256
    )
    found = tracking.finished_twin(MlflowClient(uri), exp_id, identity)
    if found:
        print(f"eda: identical run {found} already finished; skipped", flush=True)
        return found
    tags = {
        "task": "eda",
        "config.identity": identity,
        "data.sha256": data.sha256,
        **tracking.git_state(),
        "command": tracking.command_line(),
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(experiment_id=exp_id, run_name=f"eda-{cfg.dataset.name}", tags=tags) as active:
        mlflow.log_params({k: v for k, v in tracking.flat_params(cfg).items() if k.startswith(("dataset.", "seed"))})
        mlflow.log_metrics(stats(data))
        with tempfile.TemporaryDirectory() as tmp:
            for name, fig in figures(data, 120_000, cfg.seed).items():
                plots.write_html(fig, Path(tmp) / f"{name}.html", cfg.plots.embed_plotlyjs)
            mlflow.log_artifacts(tmp, "plots")
    print(f"eda: logged run {active.info.run_id}", flush=True)
    return active.info.run_id
