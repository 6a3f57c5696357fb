"""Data understanding (`python run.py task=eda`): one EDA run per dataset version — value histogram; with labels,
class balance and brightness per class; with images, the average image and samples (and each class's prototype).

Skipped when a FINISHED EDA run of the same data, subsample and code already exists in the experiment.
"""

from __future__ import annotations

import numpy as np
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep.data.dataset import Dataset, load
from clustersweep.report.figures import classes, images
from clustersweep.report.figures.html import write_html
from clustersweep.tracking import assets, runs
from clustersweep.tracking.identity import finished_twin, identity
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import open_experiment


def figures(data: Dataset, n_sample: int, seed: int) -> dict[str, object]:
    """The plots the data allows: per class with labels, images with an image shape."""
    X, y, shape = data.X_train, data.y_train, data.image_shape
    figs: dict[str, object] = {"intensity_histogram": classes.intensity_histogram(X, n_sample, seed)}
    if data.has_labels:
        names = list(data.class_names)
        figs["class_counts"] = classes.class_counts(y, names)
        figs["brightness_per_class"] = classes.brightness_per_class(X, y, names)
    if shape is not None:
        figs["average_image"] = images.average_image(X, shape)
        if data.has_labels:
            figs["samples_per_class"] = images.samples_per_class(X, y, list(data.class_names), shape)
            figs["class_prototypes"] = images.class_prototypes(X, y, list(data.class_names), shape)
        else:
            figs["first_images"] = images.first_images(X, shape)
    return figs


def stats(data: Dataset) -> dict[str, float]:
    """What the notebook reads off its EDA plots, as numbers."""
    X, y = data.X_train, data.y_train
    out = {
        "zero_pixel_fraction": float(np.mean(X == 0)),
        "mean_intensity": float(X.mean(dtype=np.float64)),
        "n_train": float(len(X)),
        "n_test": float(len(data.X_test)),
    }
    for c, name in enumerate(data.class_names or []):
        out[f"count.{name}"] = float(np.sum(y == c))
        out[f"brightness.{name}"] = float(X[y == c].mean(dtype=np.float64)) if np.any(y == c) else 0.0
    return out


def run(cfg: DictConfig, parent: str | None = None, overrides: list[str] | None = None) -> str:
    """Log (or find) the EDA run of cfg.dataset, under `parent` if given; returns its run id. `overrides`: those
    that recreate its config (by default, the command line's)."""
    data = load(cfg.dataset, cfg.seed)
    uri, exp_id = open_experiment(cfg)
    own = OmegaConf.create({"task": "eda", "dataset": cfg.dataset, "seed": cfg.seed, "plots": cfg.plots})
    twin = identity(own, data.sha256)
    found = finished_twin(MlflowClient(uri), exp_id, twin)
    if found:
        print(f"eda: identical run {found} already finished; skipped", flush=True)
        return found
    given = runs.command_overrides() if overrides is None else overrides
    tags = {**runs.computation_tags(twin, data.sha256, given), "task": "eda"}
    with runs.tracked(uri, exp_id, f"eda-{cfg.dataset.name}", tags=tags, params=own, parent=parent) as run:
        run.log(metrics=stats(data))
        js = None if cfg.plots.embed_plotlyjs else assets.plotlyjs(uri)
        with run.artifacts("plots") as out:
            for name, fig in figures(data, 120_000, cfg.seed).items():
                write_html(fig, out / f"{name}.html", cfg.plots.embed_plotlyjs, js)
    print(f"eda: run {run.name} ({run.run_id}) logged to {redact(uri)}", flush=True)
    return run.run_id
