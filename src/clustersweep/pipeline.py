"""One configured run: config → data → reducer → clusterer → metrics → plots → MLflow.

Everything that can be checked without compute (config values, estimator params, the tracking store,
the data files) is checked before the MLflow run is created, so bad input never leaves a run behind.
A failure after that marks the run FAILED (KILLED on Ctrl-C) with the error as a tag and the
traceback as an artifact.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf

from clustersweep import cache, cluster, metrics, plots, reduce, tracking
from clustersweep.config import build, validate
from clustersweep.data import Dataset, load


@dataclass
class RunResult:
    run_id: str
    run_name: str
    metrics: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)


class Stopwatch:
    """Wall time per stage, logged as `time_<stage>_s`."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[f"time_{stage}_s"] = time.perf_counter() - start


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.reducer.label}-{cfg.clusterer.label}"


def hydra_overrides() -> list[str]:
    """The command-line overrides of this Hydra job ([] when called outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@dataclass
class Prepared:
    """A run checked and ready: everything known before the MLflow run is created."""

    cfg: DictConfig
    clusterer: object
    data: Dataset
    experiment_id: str
    identity: str
    watch: Stopwatch
    start: float


def prepare(cfg: DictConfig) -> Prepared:
    """Validate, build the estimators, load the data and reach the tracking store; no run is created yet."""
    start = time.perf_counter()
    validate(cfg)
    watch = Stopwatch()
    clusterer = build(cfg.clusterer.estimator, "clusterer")
    with watch("load"):
        data = load(cfg.dataset, cfg.seed)
    exp_id = tracking.experiment_id(tracking.tracking_uri(cfg), cfg.tracking.experiment)
    return Prepared(cfg, clusterer, data, exp_id, tracking.identity(cfg, data.sha256), watch, start)


def run(cfg: DictConfig, tags: dict[str, str] | None = None) -> RunResult:
    """Validate, load, then fit and log one run; returns its id and metrics."""
    return execute(prepare(cfg), tags)


def execute(prep: Prepared, tags: dict[str, str] | None = None) -> RunResult:
    """Create the MLflow run and fill it; a failure marks it FAILED (KILLED on Ctrl-C) and re-raises."""
    cfg, watch = prep.cfg, prep.watch
    overrides = hydra_overrides()
    all_tags = {
        **tracking.git_state(),
        **tracking.process_tags(),
        "data.sha256": prep.data.sha256,
        "code.version": tracking.code_version(),
        "config.identity": prep.identity,
        "hydra.overrides": " ".join(overrides),
        "command": tracking.command_line(),
        **(tags or {}),
    }
    name = run_name(cfg)
    with mlflow.start_run(experiment_id=prep.experiment_id, run_name=name, tags=all_tags) as active:
        try:
            mlflow.log_params(tracking.flat_params(cfg))
            scores, skipped = _fit_and_log(cfg, prep.data, prep.clusterer, watch, overrides)
            watch.times["time_total_s"] = time.perf_counter() - prep.start
            mlflow.log_metrics(watch.times)
        except BaseException as e:
            mlflow.set_tag("error", f"{type(e).__name__}: {e}".splitlines()[0][:5000])
            mlflow.log_text(traceback.format_exc(), "error.txt")
            mlflow.end_run("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
    return RunResult(active.info.run_id, name, {**scores, **watch.times}, skipped)


def _fit_and_log(
    cfg: DictConfig, data: Dataset, clusterer, watch: Stopwatch, overrides: list[str]
) -> tuple[dict[str, float], dict[str, str]]:
    with watch("reduce"):
        reducer, Z_train, Z_test, hit = cache.fit_reducer(cfg, data.sha256, tracking.tracking_uri(cfg))
    mlflow.set_tag("cache.reducer", "hit" if hit else "miss")
    with watch("cluster"):
        train_clusters = cluster.fit(clusterer, Z_train)
    with watch("assign"):
        test_clusters = cluster.assign(clusterer, Z_train, train_clusters, Z_test)
    with watch("metrics"):
        m, skipped = metrics.score(
            data.y_train,
            train_clusters,
            data.y_test,
            test_clusters,
            Z_train,
            cfg.metrics.silhouette_sample_size,
            cfg.seed,
        )
        extra = {
            "inertia": getattr(clusterer, "inertia_", None),
            "explained_variance": reduce.explained_variance(reducer),
            "reconstruction_mse": reduce.reconstruction_mse(reducer, data.X_test, Z_test),
        }
        m.update({k: float(v) for k, v in extra.items() if v is not None})
    mlflow.log_metrics(m)
    mlflow.set_tags({f"skipped.{k}": why for k, why in skipped.items()})
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(overrides)), "overrides.yaml")
    if cfg.plots.enabled:
        with watch("plots"), tempfile.TemporaryDirectory() as tmp:
            for fname, fig in _figures(cfg, data, reducer, clusterer, Z_train, train_clusters, test_clusters).items():
                plots.write_html(fig, Path(tmp) / f"{fname}.html", cfg.plots.embed_plotlyjs)
            mlflow.log_artifacts(tmp, "plots")
    return m, skipped


def _figures(cfg, data: Dataset, reducer, clusterer, Z_train, train_clusters, test_clusters) -> dict:
    names = list(data.class_names)
    counts, frac = plots.contingency_heatmaps(data.y_test, test_clusters, names)
    figs = {
        "contingency_counts": counts,
        "contingency_fraction": frac,
        "cluster_scatter": plots.cluster_scatter(
            Z_train,
            train_clusters,
            cfg.plots.scatter_points,
            cfg.seed,
            f"Clusters on the first two components of {cfg.reducer.name} (train sample)",
        ),
    }
    centers = getattr(clusterer, "cluster_centers_", None)
    images = reduce.reconstruct(reducer, centers) if centers is not None else None
    ks = np.arange(len(images)) if images is not None else np.unique(train_clusters[train_clusters != metrics.NOISE])
    if images is None:  # no centers to invert: the mean image of each cluster's members
        images = np.stack([data.X_train[train_clusters == k].mean(axis=0) for k in ks]) if len(ks) else None
    if images is not None:
        table, classes, found = metrics.contingency(data.y_train, train_clusters)
        titles = []
        for k in ks:
            col = table[:, found == k][:, 0] if (found == k).any() else np.zeros(len(classes))
            top = int(col.argmax())
            share = col[top] / max(col.sum(), 1)
            titles.append(f"C{k}: {names[classes[top]]} {share:.0%}")
        figs["centroids"] = plots.image_grid(
            np.clip(images, 0, 1).reshape(-1, *data.image_shape),
            titles,
            "Cluster centroids as images (title: majority train class and its share)",
        )
    return figs
