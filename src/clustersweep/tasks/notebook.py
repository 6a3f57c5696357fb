"""The seed notebook end to end as tracked runs under one parent (`python run.py +experiment=seed_notebook`).

Children: the EDA run (Phase 1); a reduction run (Phase 2: spectra, k95, reconstructions and MSE-vs-k curves
for PCA and SVD, every k a prefix of one exact fit); the K-Means sweep, the final K-Means at the K the sweep's
silhouette picks, and the DBSCAN sweep (Phase 3) — ordinary clustering runs sharing the cached reducer; then the
parent's report (Phase 4). The sweeps are override lists in Hydra's grammar, expanded as a multirun would.
"""

from __future__ import annotations

import copy
import functools
from concurrent.futures import ThreadPoolExecutor
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
from hydra import compose
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from clustersweep.config.validate import validate
from clustersweep.data.dataset import Dataset, load
from clustersweep.errors import ConfigError, DataError
from clustersweep.report import markdown, tables
from clustersweep.report.figures import charts, images, scatter
from clustersweep.report.figures.html import write_html
from clustersweep.report.summary import artifact_text
from clustersweep.stages import cache, reduce
from clustersweep.tasks import eda
from clustersweep.tasks.cluster import RunResult, execute, prepare
from clustersweep.tracking import assets, runs
from clustersweep.tracking.identity import identity
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import open_experiment, tracking_uri

OWN_KEYS = ("+experiment", "experiment", "task", "notebook")


def expand(overrides: list[str]) -> list[list[str]]:
    """A sweep in Hydra's override grammar → the override list of each job, in the multirun's order."""
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    return [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(overrides), None) for job in batch]


def user_overrides() -> list[str]:
    """The command line's overrides that are not the notebook's own (dataset, tracking, seed, …)."""
    return [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(OWN_KEYS)]


@functools.cache
def _composed(groups: tuple[str, ...]) -> DictConfig:
    """The config of a set of group choices: reading and merging their YAML files is the slow part of compose."""
    return compose(config_name="config", overrides=list(groups))


def child_overrides(cfg: DictConfig, *job: str) -> list[str]:
    """The overrides that make a clustering child's config: `python run.py` with them runs it on its own."""
    return [*user_overrides(), *cfg.notebook.clustering_space, *job]


def child_cfg(cfg: DictConfig, *overrides: str) -> DictConfig:
    """A child run's config, the same as compose gives: the group choices (reducer=pca, clusterer=dbscan) composed
    once per notebook run, the values (clusterer.K=7, …) applied to a copy the way Hydra applies them."""
    loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(child_overrides(cfg, *overrides))
    is_group = [loader.repository.group_exists(o.key_or_group) and not isinstance(o.value(), dict) for o in parsed]
    child = copy.deepcopy(_composed(tuple(o.input_line for o, g in zip(parsed, is_group, strict=True) if g)))
    ConfigLoaderImpl._apply_overrides_to_config([o for o, g in zip(parsed, is_group, strict=True) if not g], child)
    return child


def run(cfg: DictConfig) -> str:
    """Run every phase under one parent, on `compute.threads` threads; returns the parent's run id."""
    with threadpool_limits(limits=cfg.compute.threads):
        return _run(cfg)


def _run(cfg: DictConfig) -> str:
    nb = cfg.notebook
    _composed.cache_clear()  # the config files may have changed since an earlier run in this process
    uri = tracking_uri(cfg)
    with ThreadPoolExecutor(1) as pool:
        # A new SQLite store spends seconds in MLflow's schema migrations (Python, one core); meanwhile the stages
        # every child shares go into the cache (zlib and BLAS, which release the GIL): the data, the exact bases
        # and the clustering space.
        store = pool.submit(open_experiment, cfg)
        data = load(cfg.dataset, cfg.seed)
        if not data.has_labels or data.image_shape is None:
            raise DataError(
                f"task=notebook needs labelled images, and dataset={cfg.dataset.name} has "
                f"{'no labels' if not data.has_labels else 'no image_shape'}: the seed notebook compares clusters "
                "with classes; use task=cluster (and sweeps) for this data"
            )
        for job in [*expand(list(nb.kmeans_sweep)), *expand(list(nb.dbscan_sweep))]:  # each child, before any run
            try:
                validate(child_cfg(cfg, *job), data)
            except ConfigError as e:
                raise ConfigError(
                    f"{e} (in the notebook's run {' '.join(job)}; see notebook.clustering_space)"
                ) from None
        sha256 = data.sha256
        if cfg.cache.enabled:  # without the cache, each child fits its own
            cache.bases(cfg, sha256, uri)
            cache.fit_reducer(child_cfg(cfg), sha256, uri)
        _, exp_id = store.result()
    command = "+experiment=seed_notebook " + " ".join(user_overrides())
    with runs.tracked(uri, exp_id, "seed-notebook", tags={"task": "notebook", "sweep.overrides": command}) as parent:
        where = f"experiment {cfg.tracking.experiment!r} of {redact(uri)}"
        print(f"notebook: parent run {parent.run_id} in {where}", flush=True)
        eda.run(cfg, parent.run_id, ["task=eda", *user_overrides()])
        red = reduction_run(cfg, parent.run_id)
        sweep = [_child(cfg, parent.run_id, job) for job in expand(list(nb.kmeans_sweep))]
        scores = pd.DataFrame([{"K": k, "silhouette": r.metrics.get("silhouette")} for k, r in sweep])
        top = tables.best(scores, "silhouette")
        if top is None:
            raise RuntimeError("no run of the K-Means sweep has a silhouette to choose K by")
        best_k = int(top["K"])
        _, final = _child(cfg, parent.run_id, [*nb.kmeans_final, f"clusterer.K={best_k}"], "final")
        for job in expand(list(nb.dbscan_sweep)):
            _child(cfg, parent.run_id, job)
        js = None if cfg.plots.embed_plotlyjs else assets.plotlyjs(uri)
        _log_parent_report(parent, red, sweep, final, best_k, cfg.plots.embed_plotlyjs, js)
    print(f"notebook: parent run {parent.name} ({parent.run_id}) logged to {redact(uri)}", flush=True)
    return parent.run_id


def _child(cfg: DictConfig, parent: str, job: list[str], role: str = "sweep") -> tuple[int | None, RunResult]:
    """One clustering run under the parent; returns (its K, if any; its result)."""
    child = child_cfg(cfg, *job)
    prep = prepare(child, child_overrides(cfg, *job))
    result = execute(prep, tags={"notebook.role": role, "notebook.job": " ".join(job)}, parent=parent)
    m = result.metrics
    print(
        f"notebook: {result.run_name} ({role}) nmi {m['nmi']:.3f}"
        + (f", silhouette {m['silhouette']:.3f}" if "silhouette" in m else ""),
        flush=True,
    )
    return child.clusterer.get("K"), result


def reduction_curves(data: Dataset, bases: dict, ks: list[int], mse_ks: list[int], sample: int, seed: int) -> dict:
    """PCA and SVD spectra, k95, MSE-vs-k and reconstructions of one test image per class, from one exact fit each
    (`bases`: reduce.exact_bases of train)."""
    rows = np.random.RandomState(seed).permutation(len(data.X_test))[:sample]
    X_mse = data.X_test[rows].astype(np.float64)
    mse = {
        name: [float(np.mean((X_mse - reduce.prefix_reconstruct(X_mse, mean, axes, k)) ** 2)) for k in mse_ks]
        for name, (mean, axes, _) in bases.items()
    }
    first = [int(np.flatnonzero(data.y_test == c)[0]) for c in np.unique(data.y_test)]
    originals = data.X_test[first].astype(np.float64)
    mean, axes, _ = bases["pca"]
    recon = {k: np.clip(reduce.prefix_reconstruct(originals, mean, axes, k), 0, 1) for k in ks}
    return {
        "evr": {name: b[2] for name, b in bases.items()},
        "mse": mse,
        "first": first,
        "recon": recon,
        "pca_basis": (mean, axes),
    }


def reduction_run(cfg: DictConfig, parent: str) -> dict:
    """The reduction phase as one child run: spectra with k95, scatters, reconstructions, MSE and EVR
    comparisons."""
    nb = cfg.notebook
    data = load(cfg.dataset, cfg.seed)
    uri = tracking_uri(cfg)
    bases = cache.bases(cfg, data.sha256, uri)  # cached: every clustering run's spectrum is the same fit
    c = reduction_curves(data, bases, list(nb.reconstruction_ks), list(nb.mse_ks), nb.mse_sample, cfg.seed)
    evr_pca, evr_svd = c["evr"]["pca"], c["evr"]["svd"]
    k_95 = reduce.k95(evr_pca)
    names, shape, top = list(data.class_names), tuple(data.image_shape), nb.spectrum_k
    mean, axes = c["pca_basis"]
    top3 = axes[:3].T
    Z = data.X_train @ top3.astype(data.X_train.dtype) - mean @ top3  # no centred float64 copy of train (376 MB)
    figs = {
        "explained_variance": charts.explained_variance(evr_pca[:top], k_95, f"PCA explained variance (k={top} shown)"),
        "class_scatter_2d": scatter.class_scatter_2d(Z, data.y_train, names, 10_000, cfg.seed, "PCA 2D by true class"),
        "class_scatter_3d": scatter.class_scatter_3d(Z, data.y_train, names, 10_000, cfg.seed, "PCA 3D by true class"),
        "reconstructions": images.reconstructions(
            data.X_test[c["first"]], c["recon"], [names[data.y_test[i]] for i in c["first"]], shape
        ),
        "mse_vs_k": charts.curves(
            {"PCA": list(nb.mse_ks), "TruncatedSVD": list(nb.mse_ks)},
            {"PCA": c["mse"]["pca"], "TruncatedSVD": c["mse"]["svd"]},
            "Reconstruction MSE vs k: PCA vs TruncatedSVD",
            "# components (k)",
            "MSE",
        ),
        "evr_pca_vs_svd": charts.curves(
            None,
            {"PCA EVR": evr_pca[:top], "TruncatedSVD EVR": evr_svd[:top]},
            "Per-component explained variance: PCA vs TruncatedSVD",
            "component",
            "EVR",
        ),
    }
    metrics = {"k95": float(k_95)}
    metrics.update({f"mse_pca_k{k}": v for k, v in zip(nb.mse_ks, c["mse"]["pca"], strict=True)})
    metrics.update({f"mse_svd_k{k}": v for k, v in zip(nb.mse_ks, c["mse"]["svd"], strict=True)})
    metrics.update({f"explained_variance_k{k}": float(evr_pca[:k].sum()) for k in nb.reconstruction_ks})
    steps = {k: nb[k] for k in ("spectrum_k", "reconstruction_ks", "mse_ks", "mse_sample")}
    own = OmegaConf.create(
        {"task": "reduction", "dataset": cfg.dataset, "seed": cfg.seed, "notebook": steps, "plots": cfg.plots}
    )
    tags = runs.computation_tags(identity(own, data.sha256), data.sha256, runs.command_overrides())
    _, exp_id = open_experiment(cfg)
    with runs.tracked(
        uri, exp_id, "reduction-pca-svd", tags={**tags, "task": "reduction"}, params=own, parent=parent
    ) as run:
        run.log(metrics=metrics)
        js = None if cfg.plots.embed_plotlyjs else assets.plotlyjs(uri)
        with run.artifacts("plots") as out:
            for name, fig in figs.items():
                write_html(fig, out / f"{name}.html", cfg.plots.embed_plotlyjs, js)
    print(f"notebook: reduction-pca-svd k95 {k_95}", flush=True)
    return metrics


def _log_parent_report(
    parent: runs.Run,
    red: dict,
    sweep: list[tuple[int, RunResult]],
    final: RunResult,
    best_k: int,
    embed_plotlyjs: bool,
    plotlyjs: assets.PlotlyJs | None = None,
) -> None:
    df = tables.sweep_table(parent.client, parent.run_id)
    df = df[df["clusterer.name"].notna()] if "clusterer.name" in df else df  # the clustering runs
    chart = charts.two_axis(
        [k for k, _ in sweep],
        [r.metrics.get("inertia") for _, r in sweep],
        [r.metrics.get("silhouette") for _, r in sweep],
        "inertia (≤ better)",
        "silhouette (≥ better)",
        "K-Means sweep: inertia and silhouette vs K",
        "K",
    )
    db = df[(df.get("clusterer.name") == "dbscan") & (df.status == "FINISHED")] if "clusterer.name" in df else df[:0]
    eps_chart = charts.eps_sweep(
        db["eps"],
        db["n_clusters"],
        db["noise_fraction"].fillna(0.0),
        db["silhouette"] if "silhouette" in db else np.full(len(db), np.nan),
    )
    fm = final.metrics
    head = (
        f"# The seed notebook\n\n- **Reduction**: 95% of the variance needs k95 = {int(red['k95'])} principal "
        f"components; reconstruction MSE at k=100: PCA {red.get('mse_pca_k100', float('nan')):.5f}, "
        f"TruncatedSVD {red.get('mse_svd_k100', float('nan')):.5f}.\n"
        f"- **Clustering**: best K by silhouette on the K-Means sweep: K = {best_k}. The final K-Means "
        f"({final.run_name}, all of train) scores on test ARI {fm['ari']:.3f}, NMI {fm['nmi']:.3f}, "
        f"purity {fm['purity']:.3f} (the notebook printed 0.308 / 0.502 / 0.557).\n"
    )
    with parent.artifacts() as out, TemporaryDirectory() as tmp:
        final_md = artifact_text(parent.client, final.run_id, "report.md", tmp)
        swept = df[df.run_id != final.run_id]  # the K and eps sweeps; the final run is described above
        sweeps = markdown.sweep_report("The sweeps", swept, "silhouette", tables.swept(swept), final_md)
        text = head + "\n" + sweeps.replace("# ", "## ", 1)
        (out / "report.md").write_text(text)
        (out / "summary").mkdir()
        df.to_csv(out / "summary" / "summary.csv", index=False)  # the two sweep charts below say the rest
        write_html(chart, out / "summary" / "kmeans_sweep.html", embed_plotlyjs, plotlyjs)
        write_html(eps_chart, out / "summary" / "dbscan_eps_sweep.html", embed_plotlyjs, plotlyjs)
    parent.log(
        metrics={"k95": red["k95"], "best_K": best_k, **{f"final_{m}": fm[m] for m in tables.LABELLED}},
    )
    print(text, flush=True)
