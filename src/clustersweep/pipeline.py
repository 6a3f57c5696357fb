"""One configured run: config → data → reducer → clusterer → metrics → plots → MLflow.

Everything that can be checked without compute (config values, estimator params, the tracking store,
the data files) is checked before the MLflow run is created, so bad input never leaves a run behind.
A failure after that marks the run FAILED (KILLED on Ctrl-C) with the error as a tag and the
traceback as an artifact.
"""

from __future__ import annotations

import json
import logging
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

from clustersweep import cache, cluster, metrics, plots, reduce, report, tracking
from clustersweep.config import validate
from clustersweep.data import Dataset, load
from clustersweep.memo import keep_last

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    run_name: str
    metrics: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)
    report: str = ""  # the run's report.md


class Stopwatch:
    """Wall time per stage, logged as `time_<stage>_s`; each stage's start and end also go to the log (under
    Hydra, the console), so a long fit shows where it is."""

    LONG = ("reduce", "cluster")  # the fits: said at INFO; the other stages at DEBUG

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        level = logging.INFO if stage in self.LONG else logging.DEBUG
        log.log(level, "%s …", stage)
        try:
            yield
        finally:
            self.times[f"time_{stage}_s"] = took = time.perf_counter() - start
            log.log(level, "%s done in %.1f s", stage, took)


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.reducer.label}-{cfg.clusterer.label}"


def hydra_overrides() -> list[str]:
    """The command-line overrides of this Hydra job, secrets masked ([] when called outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return [tracking.redact(o) for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else []


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
    clusterer = validate(cfg)["clusterer"]
    watch = Stopwatch()
    with watch("load"):
        data = load(cfg.dataset, cfg.seed)
    exp_id = tracking.experiment_id(tracking.tracking_uri(cfg), cfg.tracking.experiment)
    return Prepared(cfg, clusterer, data, exp_id, tracking.identity(cfg, data.sha256), watch, start)


def run(cfg: DictConfig, tags: dict[str, str] | None = None) -> RunResult:
    """Validate, load, then fit and log one run, and print its report; returns its id and metrics."""
    result = execute(prepare(cfg), tags)
    where = tracking.redact(tracking.tracking_uri(cfg))
    print(f"{result.report}\nrun {result.run_name} ({result.run_id}) logged to {where}", flush=True)
    return result


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
            scores, skipped, md = _fit_and_log(cfg, prep.data, prep.clusterer, watch, overrides)
            watch.times["time_total_s"] = time.perf_counter() - prep.start
            mlflow.log_metrics(watch.times)
        except BaseException as e:
            mlflow.set_tag("error", tracking.redact(f"{type(e).__name__}: {e}").splitlines()[0][:5000])
            mlflow.log_text(tracking.redact(traceback.format_exc()), "error.txt")
            mlflow.end_run("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
    return RunResult(active.info.run_id, name, {**scores, **watch.times}, skipped, md)


@dataclass
class Fitted:
    """What one run computed, for its metrics and plots."""

    reducer: object
    clusterer: object
    Z_train: np.ndarray
    Z_test: np.ndarray
    fit_idx: np.ndarray  # the train rows the clusterer was fitted on (all, or a seeded subsample)
    fit_clusters: np.ndarray
    test_clusters: np.ndarray
    evr: np.ndarray | None  # explained-variance ratio of every principal component of train


def fit_rows(n_fit: int | None, n: int, seed: int) -> np.ndarray:
    """The train rows the clusterer is fitted on: all, or a seeded random subsample (`clusterer.n_fit`)."""
    if n_fit is None or n_fit >= n:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, n_fit, replace=False))


def k95(evr: np.ndarray) -> int:
    """Components needed to explain 95% of the variance."""
    return int(np.searchsorted(np.cumsum(evr), 0.95) + 1)


def _fit_and_log(
    cfg: DictConfig, data: Dataset, clusterer, watch: Stopwatch, overrides: list[str]
) -> tuple[dict[str, float], dict[str, str], str]:
    """Fit, score, draw and log; returns (metrics, {metric: why it was left out}, the report's markdown)."""
    uri = tracking.tracking_uri(cfg)
    with watch("reduce"):
        reducer, Z_train, Z_test, mse, hit = cache.fit_reducer(cfg, data.sha256, uri)
        has_spectrum = reduce.explained_variance(reducer) is not None
        evr = cache.spectrum(cfg, data.sha256, uri) if has_spectrum else None
    idx = fit_rows(cfg.clusterer.get("n_fit"), len(Z_train), cfg.seed)
    with watch("cluster"):
        fit_clusters = cluster.fit(clusterer, Z_train[idx])
    with watch("assign"):
        test_clusters = cluster.assign(clusterer, Z_train[idx], fit_clusters, Z_test)
    f = Fitted(reducer, clusterer, Z_train, Z_test, idx, fit_clusters, test_clusters, evr)
    with watch("metrics"):
        space = Z_train if cfg.metrics.space == "embedding" else cache.common_space(cfg, data.sha256, uri)
        m, skipped = metrics.score(
            data.y_train[idx],
            fit_clusters,
            data.y_test,
            test_clusters,
            space[idx],
            cfg.metrics.silhouette_sample_size,
            cfg.metrics.modularity_sample_size,
            cfg.seed,
        )
        extra = {
            "inertia": getattr(clusterer, "inertia_", None),
            "eps": getattr(clusterer, "eps_", None),
            "explained_variance": reduce.explained_variance(reducer),
            "k95": None if evr is None else k95(evr),
            "reconstruction_mse": mse,
            "n_fit": len(idx),
        }
        m.update({k: float(v) for k, v in extra.items() if v is not None})
    # Few store calls (each is a SQLite transaction): the scores with their tags first, so no later failure loses
    # them, then every file in one upload.
    tags = {"cache.reducer": "hit" if hit else "miss", **{f"skipped.{k}": why for k, why in skipped.items()}}
    mlflow.log_metrics(m)
    mlflow.set_tags(tags)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        md = report.run_report(
            run_name(cfg), m, data.y_test, test_clusters, list(data.class_names), cfg.reducer.name, cfg.reducer.get("k")
        )
        (out / "report.md").write_text(md)
        (out / "config.yaml").write_text(tracking.redact(OmegaConf.to_yaml(cfg, resolve=True)))
        (out / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
        own_evr = getattr(reducer, "explained_variance_ratio_", None)
        if own_evr is not None:  # the sweep report compares reducers' spectra (PCA vs SVD)
            (out / "spectrum.json").write_text(json.dumps({"explained_variance_ratio": [float(v) for v in own_evr]}))
        if cfg.plots.enabled:
            with watch("plots"):
                (out / "plots").mkdir()
                pages = {k: plots.to_html(fig, cfg.plots.embed_plotlyjs) for k, fig in figures(cfg, data, f).items()}
                for fname, html in {**pages, **reduction_pages(cfg, data, f)}.items():
                    (out / "plots" / f"{fname}.html").write_text(html, encoding="utf-8")
        mlflow.log_artifacts(tmp)
    return m, skipped, md


def figures(cfg: DictConfig, data: Dataset, f: Fitted) -> dict[str, object]:
    """The clustering plots of one run (Phase 3 of the notebook); `reduction_figures` has the rest."""
    names, shape = list(data.class_names), tuple(data.image_shape)
    Z_fit = f.Z_train[f.fit_idx]
    n, seed = cfg.plots.scatter_points, cfg.seed
    counts, frac = plots.contingency_heatmaps(data.y_test, f.test_clusters, names)
    figs: dict[str, object] = {
        "contingency_counts": counts,
        "contingency_fraction": frac,
        "cluster_purity": plots.cluster_purity(data.y_test, f.test_clusters, names),
        "best_cluster_recall": plots.best_cluster_recall(data.y_test, f.test_clusters, names),
        "cluster_scatter": plots.cluster_scatter(
            Z_fit, f.fit_clusters, n, seed, f"Clusters on the first two components of {cfg.reducer.name} (train)"
        ),
    }
    kdist = getattr(f.clusterer, "kdist_", None)
    if kdist is not None:
        figs["k_distance"] = plots.k_distance(kdist, f.clusterer.eps_, f.clusterer.min_samples)
    centroids = _centroids(data, f)
    if centroids is not None:
        figs["centroids"] = plots.image_grid(
            centroids[0].reshape(-1, *shape),
            centroids[1],
            "Cluster centroids as images (title: majority train class and its share)",
        )
    return figs


def reduction_figures(cfg: DictConfig, data: Dataset, f: Fitted) -> dict[str, object]:
    """The plots of the reducer stage (Phase 2 of the notebook): class scatters, reconstructions, spectrum."""
    names, shape = list(data.class_names), tuple(data.image_shape)
    n, seed = cfg.plots.scatter_points, cfg.seed
    figs: dict[str, object] = {}
    if cfg.reducer.name != "none":
        space = f"{cfg.reducer.name} k={f.Z_train.shape[1]}"
        figs["class_scatter_2d"] = plots.class_scatter_2d(
            f.Z_train, data.y_train, names, n, seed, f"{space}: first two components by true class (train)"
        )
        figs["class_scatter_3d"] = plots.class_scatter_3d(
            f.Z_train, data.y_train, names, n, seed, f"{space}: first three components by true class (train)"
        )
        first = [int(np.flatnonzero(data.y_test == c)[0]) for c in np.unique(data.y_test)]
        rec = reduce.reconstruct(f.reducer, f.Z_test[first])
        if rec is not None:
            figs["reconstructions"] = plots.reconstructions(
                data.X_test[first],
                {f.Z_train.shape[1]: np.clip(rec, 0, 1)},
                [names[data.y_test[i]] for i in first],
                shape,
            )
    if f.evr is not None:
        figs["explained_variance"] = plots.explained_variance(
            f.evr, k95(f.evr), f"PCA spectrum of train: 95% of the variance at k={k95(f.evr)}"
        )
    return figs


_pages: dict[bytes, dict[str, str]] = {}


def reduction_pages(cfg: DictConfig, data: Dataset, f: Fitted) -> dict[str, str]:
    """`reduction_figures` as HTML, rendered once for the runs that share the reducer's output (a sweep over the
    clusterer) and reused: the same embeddings, data and plot settings give the same pages."""
    settings = [data.sha256, list(data.class_names), cfg.reducer.name, cfg.seed, OmegaConf.to_container(cfg.plots)]

    def render() -> dict[str, str]:
        figs = reduction_figures(cfg, data, f)
        return {name: plots.to_html(fig, cfg.plots.embed_plotlyjs) for name, fig in figs.items()}

    return keep_last(_pages, (f.Z_train, f.Z_test), [*settings, f.evr is None], render)


def _centroids(data: Dataset, f: Fitted) -> tuple[np.ndarray, list[str]] | None:
    """K-Means centers mapped back to pixels; without centers, each cluster's mean image. Titled by majority."""
    centers = getattr(f.clusterer, "cluster_centers_", None)
    images = reduce.reconstruct(f.reducer, centers) if centers is not None else None
    found = np.unique(f.fit_clusters[f.fit_clusters != metrics.NOISE])
    ks = np.arange(len(images)) if images is not None else found
    if images is None:
        if not len(ks):
            return None
        X_fit = data.X_train[f.fit_idx]
        images = np.stack([X_fit[f.fit_clusters == k].mean(axis=0) for k in ks])
    table, classes, labels = metrics.contingency(data.y_train[f.fit_idx], f.fit_clusters)
    titles = []
    for k in ks:
        col = table[:, labels == k][:, 0] if (labels == k).any() else np.zeros(len(classes), dtype=int)
        top = int(col.argmax())
        titles.append(f"C{k}: {data.class_names[classes[top]]} {col[top] / max(col.sum(), 1):.0%}")
    return np.clip(images, 0, 1), titles
