"""One configured run of the pipeline (`task=cluster`, the default): config → data → reducer → clusterer →
metrics → plots → MLflow.

Everything that can be checked without compute (config values, estimator params, the tracking store, the data
files) is checked by `prepare`, before the MLflow run is created, so bad input never leaves a run behind. `execute`
opens the run through the tracking core: a failure after that marks it FAILED (KILLED on Ctrl-C) with the error
as the tag `error` and the traceback as `error.txt`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from clustersweep.config.names import run_name
from clustersweep.config.validate import validate
from clustersweep.data.dataset import Dataset, load
from clustersweep.report import markdown
from clustersweep.stages import cache, clamps, cluster, metrics, model, reduce
from clustersweep.tasks import consensus
from clustersweep.tasks.cluster_plots import Fitted, pages
from clustersweep.tracking import assets, runs, ui
from clustersweep.tracking.identity import flat_params, identity
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import open_experiment

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    run_name: str
    metrics: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)
    report: str = ""  # the run's report.md
    degenerate: str | None = None  # why the clustering is no clustering to interpret


class Stopwatch:
    """Wall time per stage, logged as `time_<stage>_s`; each stage's start and end also go to the log (under
    Hydra, the console), so a long fit shows where it is."""

    LONG = ("reduce", "cluster", "consensus")  # the fits: said at INFO; the other stages at DEBUG

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


@dataclass
class Prepared:
    """A run checked and ready: everything known before the MLflow run is created."""

    cfg: DictConfig
    overrides: list[str]  # those that recreate its config with `python run.py`
    clusterer: object
    data: Dataset
    uri: str
    experiment_id: str
    identity: str
    group: str  # the identity but for the seed: shared by a configuration's replicates
    watch: Stopwatch
    start: float


def prepare(cfg: DictConfig, overrides: list[str] | None = None) -> Prepared:
    """Validate, build the estimators, load the data and reach the tracking store; no run is created yet.
    `overrides`: those that make `cfg` (by default, this Hydra job's)."""
    start = time.perf_counter()
    validate(cfg)  # what the config alone can tell, before the data is read
    uri, exp_id = open_experiment(cfg)
    watch = Stopwatch()
    data, clusterer = checked(cfg, watch)
    given = runs.command_overrides() if overrides is None else overrides
    ids = identity(cfg, data.sha256), identity(cfg, data.sha256, replicates=True)
    return Prepared(cfg, given, clusterer, data, uri, exp_id, *ids, watch, start)


def checked(cfg: DictConfig, watch: Stopwatch | None = None) -> tuple[Dataset, object]:
    """What a run checks against its data (loaded once per process per dataset config, `load`): its values and
    estimators, its data and the clusterer built; the config alone is `validate(cfg)`'s (a sweep's parent checks
    each job so, before it opens)."""
    with watch("load") if watch else nullcontext():
        data = load(cfg.dataset, cfg.seed)
    return data, validate(cfg, data)["clusterer"]


def run(cfg: DictConfig, tags: dict[str, str] | None = None) -> RunResult:
    """Validate, load, then fit and log one run, and print its report; returns its id and metrics."""
    prep = prepare(cfg)
    result = execute(prep, tags)
    where = f"logged to {redact(prep.uri)}; in the MLflow UI{redact(ui.opening(prep.uri))}"
    link = ui.run_link(prep.uri, prep.experiment_id, result.run_id)
    print(f"{result.report}\nrun {result.run_name} ({result.run_id}) {where}: {link}", flush=True)
    return result


def execute(prep: Prepared, tags: dict[str, str] | None = None, parent: str | None = None) -> RunResult:
    """Open the MLflow run (under `parent`, if given) and fill it, every fit and score on `compute.threads`
    threads; a failure is recorded on the run and re-raised."""
    name = run_name(prep.cfg)
    own = runs.computation_tags(prep.identity, prep.data.sha256, prep.overrides, prep.group)
    with (
        threadpool_limits(limits=prep.cfg.compute.threads),
        runs.tracked(
            prep.uri, prep.experiment_id, name, tags={**own, **(tags or {})}, params=prep.cfg, parent=parent
        ) as run,
    ):
        scores, skipped, md, flawed, costs = _fit_and_log(run, prep)
        prep.watch.times["time_total_s"] = time.perf_counter() - prep.start
        run.log(metrics={**prep.watch.times, **costs})
    return RunResult(run.run_id, name, {**scores, **prep.watch.times, **costs}, skipped, md, flawed)


def _fit_and_log(
    run: runs.Run, prep: Prepared
) -> tuple[dict[str, float], dict[str, str], str, str | None, dict[str, float]]:
    """Fit, score, draw and log; returns (metrics, {metric: why it was left out}, the report's markdown, why the
    clustering is degenerate or None, the costs to log with the times: the model's size)."""
    cfg, data, clusterer, watch = prep.cfg, prep.data, prep.clusterer, prep.watch
    run.log_input(*data.train_input(), data.source, data.X_train, data.y_train)
    with watch("reduce"):
        reducer, Z_train, Z_test, mse, hit = cache.fit_reducer(cfg, data.sha256, prep.uri)
        has_spectrum = reduce.explained_variance(reducer) is not None
        evr = cache.spectrum(cfg, data.sha256, prep.uri) if has_spectrum else None
    idx = cluster.fit_rows(cfg.clusterer.get("n_fit"), len(Z_train), cfg.seed)
    with watch("cluster"):
        fit_clusters = cluster.fit(clusterer, Z_train[idx])
    with watch("assign"):
        predictor = cluster.predictor(clusterer, Z_train[idx], fit_clusters)
        test_clusters = predictor.predict(Z_test)
    group = [consensus.Member(reducer, predictor, fit_clusters, test_clusters, hit)]
    if consensus.size(cfg) > 1:  # the members' partitions combined: the run's clusters, its clusterer the rule
        with watch("consensus"):
            group = consensus.members(cfg, data, prep.uri, idx, group[0])
            clusterer, fit_clusters, test_clusters = consensus.combine(cfg, group)
            hit = all(m.cached for m in group)
    f = Fitted(reducer, clusterer, Z_train, Z_test, idx, fit_clusters, test_clusters, evr)
    with watch("metrics"):

        def space(name: str) -> np.ndarray:  # the fitted train rows in a metric space
            if name == "embedding":
                return Z_train[idx]
            if name == "patches":
                return cache.patch_space(cfg, data, prep.uri)[idx]
            return cache.common_space(cfg, data, prep.uri)[idx]

        sizes = cfg.metrics.silhouette_sample_size, cfg.metrics.modularity_sample_size, cfg.seed
        y_fit = None if data.y_train is None else data.y_train[idx]
        m, skipped = metrics.score(y_fit, fit_clusters, data.y_test, test_clusters, space(cfg.metrics.space), *sizes)
        for other in cfg.metrics.other_spaces:  # the same scores in more spaces, for `ace`
            more, why = metrics.internal(fit_clusters, space(other), *sizes)
            m.update({f"{k}.{other}": v for k, v in more.items() if k != "silhouette_n"})
            skipped.update({f"{k}.{other}": v for k, v in why.items()})
        extra = {
            "inertia": getattr(clusterer, "inertia_", None),
            "eps": getattr(clusterer, "eps_", None),
            "explained_variance": reduce.explained_variance(reducer),
            "k95": None if evr is None else reduce.k95(evr),
            "reconstruction_mse": mse,
            "n_fit": len(idx),
        }
        m.update({k: float(v) for k, v in extra.items() if v is not None})
    flawed = metrics.degenerate(fit_clusters, cfg.metrics.max_noise, cfg.metrics.max_cluster_share)
    if flawed:
        log.warning("%s is degenerate: %s", run.name, flawed)
    # The scores with their tags first, so no later failure loses them, then every file in one upload.
    clamped = clamps.of_run(cfg, *data.X_train.shape)  # internal sizes the data could not hold
    tags = {"cache.reducer": "hit" if hit else "miss", **{f"skipped.{k}": why for k, why in skipped.items()}}
    tags.update({f"clamped.{k}": why for k, why in clamped.items()})
    scored_at = run.log(metrics=m, tags={**tags, **({"degenerate": flawed} if flawed else {})})
    md = markdown.run_report(
        run.name,
        m,
        data.y_test,
        test_clusters,
        data.class_names,
        cfg.reducer.name,
        cfg.reducer.get("k"),
        flawed,
        clamped,
    )
    with run.artifacts() as out:
        (out / "report.md").write_text(md)
        (out / "config.yaml").write_text(redact(OmegaConf.to_yaml(cfg, resolve=True)))
        (out / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create([redact(o) for o in prep.overrides])))
        np.save(out / runs.PARTITION, test_clusters.astype(np.int32))  # the test rows' clusters, in order
        own_evr = getattr(reducer, "explained_variance_ratio_", None)
        if own_evr is not None:  # the sweep's summary compares the linear reducers' spectra
            (out / "spectrum.json").write_text(json.dumps({"explained_variance_ratio": [float(v) for v in own_evr]}))
        if cfg.plots.enabled:
            with watch("plots"):
                (out / "plots").mkdir()
                js = None if cfg.plots.embed_plotlyjs else assets.plotlyjs(prep.uri)
                for fname, html in pages(cfg, data, f, js).items():
                    (out / "plots" / f"{fname}.html").write_text(html, encoding="utf-8")
    costs = {}
    if cfg.model.log:
        with watch("model"):
            rows = data.X_train.shape[1], data.image_shape, data.value_range
            pipelines = [model.assemble(m.reducer, m.predictor, cfg.compute.threads, *rows) for m in group]
            pipeline = pipelines[0] if len(group) == 1 else model.ConsensusPipeline(pipelines, clusterer)
            model_id, costs["size_model_bytes"] = _log_model(run, prep, pipeline)
            run.score_model(model_id, m, scored_at, data.train_input())
    return m, skipped, md, flawed, costs


def _log_model(
    run: runs.Run, prep: Prepared, pipeline: model.ClusterPipeline | model.ConsensusPipeline
) -> tuple[str, int]:
    """The fitted pipeline as the run's MLflow model, with the run's params and what a later `predict` needs to
    read new data; returns its model id and size in bytes."""
    data = prep.data
    metadata = {
        "image_shape": None if data.image_shape is None else list(data.image_shape),
        "n_features": int(data.X_train.shape[1]),
        "data.sha256": data.sha256,
        "run_name": run.name,
    }
    requirements = model.requirements(pipeline)
    return run.log_model(pipeline, data.X_test[:2], metadata, requirements, flat_params(prep.cfg))
