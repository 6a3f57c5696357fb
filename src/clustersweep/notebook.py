"""The seed notebook end to end as tracked runs under one parent (`python run.py +experiment=seed_notebook`).

Children: the EDA run (Phase 1); a reduction run (Phase 2: spectra, k95, reconstructions and MSE-vs-k curves
for PCA and SVD, every k a prefix of one exact fit); the K-Means sweep, the final K-Means at the K the sweep's
silhouette picks, and the DBSCAN sweep (Phase 3) — ordinary clustering runs sharing the cached reducer; then the
parent's report (Phase 4). The sweeps are override lists in Hydra's grammar, expanded as a multirun would.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
from hydra import compose
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from clustersweep import cache, eda, plots, reduce, report, summary, tracking
from clustersweep.data import Dataset, load
from clustersweep.pipeline import RunResult, execute, k95, prepare

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


def child_cfg(cfg: DictConfig, *overrides: str) -> DictConfig:
    """A child run's config, the same as compose gives: the group choices (reducer=pca, clusterer=dbscan) composed
    once per notebook run, the values (clusterer.K=7, …) applied to a copy the way Hydra applies them."""
    loader = GlobalHydra.instance().config_loader()
    lines = [*user_overrides(), *cfg.notebook.clustering_space, *overrides]
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(lines)
    is_group = [loader.repository.group_exists(o.key_or_group) and not isinstance(o.value(), dict) for o in parsed]
    child = copy.deepcopy(_composed(tuple(o.input_line for o, g in zip(parsed, is_group, strict=True) if g)))
    ConfigLoaderImpl._apply_overrides_to_config([o for o, g in zip(parsed, is_group, strict=True) if not g], child)
    return child


def run(cfg: DictConfig) -> str:
    """Run every phase under one parent; returns the parent's run id."""
    nb = cfg.notebook
    _composed.cache_clear()  # the config files may have changed since an earlier run in this process
    uri = tracking.tracking_uri(cfg)
    with ThreadPoolExecutor(1) as pool:
        # A new SQLite store spends seconds in MLflow's schema migrations (Python, one core); meanwhile the stages
        # every child shares go into the cache (zlib and BLAS, which release the GIL): the data, the exact bases
        # and the clustering space.
        store = pool.submit(tracking.experiment_id, uri, cfg.tracking.experiment)
        sha256 = load(cfg.dataset, cfg.seed).sha256
        if cfg.cache.enabled:  # without the cache, each child fits its own
            cache.bases(cfg, sha256, uri)
            cache.fit_reducer(child_cfg(cfg), sha256, uri)
        exp_id = store.result()
    client = MlflowClient(uri)
    parent = client.create_run(
        exp_id,
        run_name="seed-notebook",
        tags={
            "task": "notebook",
            "sweep.overrides": "+experiment=seed_notebook " + " ".join(user_overrides()),
            "command": tracking.command_line(),
            **tracking.git_state(),
            **tracking.process_tags(),
        },
    ).info.run_id
    status = "KILLED"
    try:
        eda.run(cfg, parent)
        red = reduction_run(cfg, parent)
        sweep = [_child(cfg, parent, job) for job in expand(list(nb.kmeans_sweep))]
        best_k, _ = max(sweep, key=lambda t: t[1].metrics.get("silhouette", -np.inf))
        _, final = _child(cfg, parent, [*nb.kmeans_final, f"clusterer.K={best_k}"], "final")
        for job in expand(list(nb.dbscan_sweep)):
            _child(cfg, parent, job)
        _log_parent_report(client, parent, red, sweep, final, best_k, cfg.plots.embed_plotlyjs)
        status = "FINISHED"
    except Exception:
        status = "FAILED"
        raise
    finally:
        client.set_terminated(parent, status)
    return parent


def _child(cfg: DictConfig, parent: str, job: list[str], role: str = "sweep") -> tuple[int | None, RunResult]:
    """One clustering run under the parent; returns (its K, if any; its result)."""
    child = child_cfg(cfg, *job)
    result = execute(
        prepare(child), tags={"mlflow.parentRunId": parent, "notebook.role": role, "notebook.job": " ".join(job)}
    )
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
    """Phase 2 as one child run: spectra with k95, scatters, reconstructions, MSE and EVR comparisons."""
    nb = cfg.notebook
    data = load(cfg.dataset, cfg.seed)
    uri = tracking.tracking_uri(cfg)
    bases = cache.bases(cfg, data.sha256, uri)  # cached: every clustering run's spectrum is the same fit
    c = reduction_curves(data, bases, list(nb.reconstruction_ks), list(nb.mse_ks), nb.mse_sample, cfg.seed)
    evr_pca, evr_svd = c["evr"]["pca"], c["evr"]["svd"]
    k_95 = k95(evr_pca)
    names, shape, top = list(data.class_names), tuple(data.image_shape), nb.spectrum_k
    mean, axes = c["pca_basis"]
    top3 = axes[:3].T
    Z = data.X_train @ top3.astype(data.X_train.dtype) - mean @ top3  # no centred float64 copy of train (376 MB)
    figs = {
        "explained_variance": plots.explained_variance(evr_pca[:top], k_95, f"PCA explained variance (k={top} shown)"),
        "class_scatter_2d": plots.class_scatter_2d(Z, data.y_train, names, 10_000, cfg.seed, "PCA 2D by true class"),
        "class_scatter_3d": plots.class_scatter_3d(Z, data.y_train, names, 10_000, cfg.seed, "PCA 3D by true class"),
        "reconstructions": plots.reconstructions(
            data.X_test[c["first"]], c["recon"], [names[data.y_test[i]] for i in c["first"]], shape
        ),
        "mse_vs_k": plots.curves(
            {"PCA": list(nb.mse_ks), "TruncatedSVD": list(nb.mse_ks)},
            {"PCA": c["mse"]["pca"], "TruncatedSVD": c["mse"]["svd"]},
            "Reconstruction MSE vs k: PCA vs TruncatedSVD",
            "# components (k)",
            "MSE",
        ),
        "evr_pca_vs_svd": plots.curves(
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
    exp_id = tracking.experiment_id(uri, cfg.tracking.experiment)
    with mlflow.start_run(
        experiment_id=exp_id,
        run_name="reduction-pca-svd",
        tags={"mlflow.parentRunId": parent, "task": "reduction", "data.sha256": data.sha256},
    ):
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            for name, fig in figs.items():
                plots.write_html(fig, Path(tmp) / f"{name}.html", cfg.plots.embed_plotlyjs)
            mlflow.log_artifacts(tmp, "plots")
    print(f"notebook: reduction-pca-svd k95 {k_95}", flush=True)
    return metrics


def _log_parent_report(
    client: MlflowClient,
    parent: str,
    red: dict,
    sweep: list[tuple[int, RunResult]],
    final: RunResult,
    best_k: int,
    embed_plotlyjs: bool,
) -> None:
    df = summary.sweep_table(client, parent)
    df = df[df["clusterer.name"].notna()] if "clusterer.name" in df else df  # the clustering runs
    chart = plots.two_axis(
        [k for k, _ in sweep],
        [r.metrics.get("inertia") for _, r in sweep],
        [r.metrics.get("silhouette") for _, r in sweep],
        "inertia (≤ better)",
        "silhouette (≥ better)",
        "K-Means sweep: inertia and silhouette vs K",
        "K",
    )
    db = df[(df.get("clusterer.name") == "dbscan") & (df.status == "FINISHED")] if "clusterer.name" in df else df[:0]
    eps_chart = plots.eps_sweep(
        db["eps"],
        db["n_clusters"],
        db["noise_fraction"].fillna(0.0),
        db["silhouette"] if "silhouette" in db else np.full(len(db), np.nan),
    )
    fm = final.metrics
    head = (
        f"# The seed notebook\n\n- **Phase 2**: 95% of the variance needs k95 = {int(red['k95'])} principal "
        f"components; reconstruction MSE at k=100: PCA {red.get('mse_pca_k100', float('nan')):.5f}, "
        f"TruncatedSVD {red.get('mse_svd_k100', float('nan')):.5f}.\n"
        f"- **Phase 3**: best K by silhouette on the K-Means sweep: K = {best_k}. The final K-Means "
        f"({final.run_name}, all of train) scores on test ARI {fm['ari']:.3f}, NMI {fm['nmi']:.3f}, "
        f"purity {fm['purity']:.3f} (the notebook printed 0.308 / 0.502 / 0.557).\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        final_md = summary.artifact_text(client, final.run_id, "report.md", tmp)
        swept = df[df.run_id != final.run_id]  # the K and eps sweeps; the final run is described above
        text = (
            head
            + "\n"
            + report.sweep_report("The sweeps", swept, "silhouette", summary.swept(swept), final_md).replace(
                "# ", "## ", 1
            )
        )
        (Path(tmp) / "summary").mkdir()
        df.to_csv(Path(tmp) / "summary" / "summary.csv", index=False)  # the two sweep charts below say the rest
        plots.write_html(chart, Path(tmp) / "summary" / "kmeans_sweep.html", embed_plotlyjs)
        plots.write_html(eps_chart, Path(tmp) / "summary" / "dbscan_eps_sweep.html", embed_plotlyjs)
        client.log_artifacts(parent, str(Path(tmp) / "summary"), "summary")
    client.log_text(parent, text, "report.md")
    client.log_metric(parent, "k95", red["k95"])
    client.log_metric(parent, "best_K", best_k)
    for m in ("ari", "nmi", "purity", "acc_hungarian"):
        client.log_metric(parent, f"final_{m}", fm[m])
    print(text, flush=True)
