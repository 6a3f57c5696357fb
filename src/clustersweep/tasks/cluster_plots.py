"""The figures of one clustering run, as HTML pages: the clusters against the true classes, the clusters in the
embedding, the centroids as images, and the reducer's own plots (class scatters, reconstructions, spectrum)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from clustersweep.data.dataset import Dataset
from clustersweep.report.figures import charts, classes, images, scatter
from clustersweep.report.figures.html import ServedPlotlyJs, to_html
from clustersweep.stages import reduce
from clustersweep.stages.memo import keep_last
from clustersweep.stages.metrics import NOISE, contingency


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


def figures(cfg: DictConfig, data: Dataset, f: Fitted) -> dict[str, object]:
    """The clustering plots of one run, those the data allows (classes need labels, images an image shape);
    `reduction_figures` has the reducer's."""
    Z_fit = f.Z_train[f.fit_idx]
    n, seed = cfg.plots.scatter_points, cfg.seed
    figs: dict[str, object] = {
        "cluster_sizes": classes.cluster_sizes(f.test_clusters, "Points per cluster (test)"),
        "cluster_scatter": scatter.cluster_scatter(
            Z_fit, f.fit_clusters, n, seed, f"Clusters on the first two components of {cfg.reducer.name} (train)"
        ),
    }
    if data.has_labels:
        names = list(data.class_names)
        counts, frac = classes.contingency_heatmaps(data.y_test, f.test_clusters, names)
        figs["contingency_counts"], figs["contingency_fraction"] = counts, frac
        figs["cluster_purity"] = classes.cluster_purity(data.y_test, f.test_clusters, names)
        figs["best_cluster_recall"] = classes.best_cluster_recall(data.y_test, f.test_clusters, names)
    kdist = getattr(f.clusterer, "kdist_", None)
    if kdist is not None:
        figs["k_distance"] = charts.k_distance(kdist, f.clusterer.eps_, f.clusterer.min_samples)
    centroids = _centroids(data, f) if data.image_shape is not None else None
    if centroids is not None:
        what = "majority train class and its share" if data.has_labels else "cluster and its fitted points"
        figs["centroids"] = images.image_grid(
            centroids[0].reshape(-1, *data.image_shape), centroids[1], f"Cluster centroids as images (title: {what})"
        )
    return figs


def reduction_figures(cfg: DictConfig, data: Dataset, f: Fitted) -> dict[str, object]:
    """The plots of the reducer stage: class scatters (with labels), reconstructions (of images), spectrum."""
    n, seed = cfg.plots.scatter_points, cfg.seed
    figs: dict[str, object] = {}
    if cfg.reducer.name != "none" and data.has_labels:
        names = list(data.class_names)
        space = f"{cfg.reducer.name} k={f.Z_train.shape[1]}"
        figs["class_scatter_2d"] = scatter.class_scatter_2d(
            f.Z_train, data.y_train, names, n, seed, f"{space}: first two components by true class (train)"
        )
        figs["class_scatter_3d"] = scatter.class_scatter_3d(
            f.Z_train, data.y_train, names, n, seed, f"{space}: first three components by true class (train)"
        )
    if cfg.reducer.name != "none" and data.image_shape is not None:
        if data.has_labels:  # the first test image of each class
            first = [int(np.flatnonzero(data.y_test == c)[0]) for c in np.unique(data.y_test)]
            titles = [data.class_names[data.y_test[i]] for i in first]
        else:
            first = list(range(min(10, len(data.X_test))))
            titles = [f"#{i}" for i in first]
        rec = reduce.reconstruct(f.reducer, f.Z_test[first])
        if rec is not None:
            figs["reconstructions"] = images.reconstructions(
                data.X_test[first], {f.Z_train.shape[1]: np.clip(rec, 0, 1)}, titles, data.image_shape
            )
    if f.evr is not None:
        figs["explained_variance"] = charts.explained_variance(
            f.evr, reduce.k95(f.evr), f"PCA spectrum of train: 95% of the variance at k={reduce.k95(f.evr)}"
        )
    return figs


_pages: dict[bytes, dict[str, str]] = {}  # the sweep's memo (stages.memo): the last reducer output's pages


def pages(cfg: DictConfig, data: Dataset, f: Fitted, plotlyjs: ServedPlotlyJs | None = None) -> dict[str, str]:
    """Every plot of one run as an HTML page, by file name (without `.html`); `plotlyjs`: the store's copy."""
    own = {name: to_html(fig, cfg.plots.embed_plotlyjs, plotlyjs) for name, fig in figures(cfg, data, f).items()}
    return {**own, **reduction_pages(cfg, data, f, plotlyjs)}


def reduction_pages(
    cfg: DictConfig, data: Dataset, f: Fitted, plotlyjs: ServedPlotlyJs | None = None
) -> dict[str, str]:
    """`reduction_figures` as HTML, rendered once for the runs that share the reducer's output (a sweep over the
    clusterer) and reused: the same embeddings, data and plot settings give the same pages."""
    settings = [data.sha256, data.class_names, data.image_shape, cfg.reducer.name, cfg.seed]
    settings += [OmegaConf.to_container(cfg.plots), plotlyjs and plotlyjs.run_id]

    def render() -> dict[str, str]:
        figs = reduction_figures(cfg, data, f)
        return {name: to_html(fig, cfg.plots.embed_plotlyjs, plotlyjs) for name, fig in figs.items()}

    return keep_last(_pages, (f.Z_train, f.Z_test), [*settings, f.evr is None], render)


def _centroids(data: Dataset, f: Fitted) -> tuple[np.ndarray, list[str]] | None:
    """K-Means centers mapped back to pixels; without centers, each cluster's mean image. Titled by majority class
    (with labels) or by size."""
    centers = getattr(f.clusterer, "cluster_centers_", None)
    pixels = reduce.reconstruct(f.reducer, centers) if centers is not None else None
    found = np.unique(f.fit_clusters[f.fit_clusters != NOISE])
    ks = np.arange(len(pixels)) if pixels is not None else found
    if pixels is None:
        if not len(ks):
            return None
        X_fit = data.X_train[f.fit_idx]
        pixels = np.stack([X_fit[f.fit_clusters == k].mean(axis=0) for k in ks])
    if not data.has_labels:
        return np.clip(pixels, 0, 1), [f"C{k}: {np.count_nonzero(f.fit_clusters == k)}" for k in ks]
    table, classes_, labels = contingency(data.y_train[f.fit_idx], f.fit_clusters)
    titles = []
    for k in ks:
        col = table[:, labels == k][:, 0] if (labels == k).any() else np.zeros(len(classes_), dtype=int)
        top = int(col.argmax())
        titles.append(f"C{k}: {data.class_names[classes_[top]]} {col[top] / max(col.sum(), 1):.0%}")
    return np.clip(pixels, 0, 1), titles
