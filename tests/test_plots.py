"""Every notebook figure from synthetic arrays: a figure, the right traces and sizes, names instead of ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from clustersweep.report.figures import charts, classes, html, images, scatter

SHAPE = (28, 28)
NAMES = ["Top", "Trouser", "Bag", "Boot"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4 classes × 30 random images, and clusters 0..2 with some noise (-1)."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(4), 30))
    X = rng.random((120, SHAPE[0] * SHAPE[1])) * (1 + y[:, None]) / 4  # class c is brighter than c - 1
    clusters = np.where(rng.random(120) < 0.1, -1, y % 3)
    return X, y, clusters


def titles(fig: go.Figure) -> tuple[str | None, str | None, str | None]:
    return fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_cluster_names_say_noise():
    assert classes.cluster_names(np.array([-1, 0, 3])) == ["noise", "C0", "C3"]


def test_contingency_heatmaps_name_classes_and_clusters(data):
    _, y, clusters = data
    counts, frac = classes.contingency_heatmaps(y, clusters, NAMES)
    for fig in (counts, frac):
        assert list(fig.data[0].y) == NAMES and list(fig.data[0].x) == ["noise", "C0", "C1", "C2"]
        assert np.shape(fig.data[0].z) == (4, 4) and all(titles(fig))
    assert np.allclose(np.sum(frac.data[0].z, axis=1), 1)


def test_cluster_scatter_one_trace_per_cluster(data):
    X, _, clusters = data
    fig = scatter.cluster_scatter(X, clusters, n_points=100, seed=0, title="t")
    assert [t.name for t in fig.data] == ["noise", "C0", "C1", "C2"]
    assert all(isinstance(t, go.Scattergl) for t in fig.data) and sum(len(t.x) for t in fig.data) == 100
    assert all(titles(fig))


def tile(fig: go.Figure, i: int, cols: int = 5) -> np.ndarray:
    """Image i of an image_grid mosaic (28×28 tiles)."""
    z = np.asarray(fig.data[0].z, dtype=float)
    r, c = divmod(i, cols)
    return z[r * 37 + 9 : (r + 1) * 37, c * 30 : c * 30 + 28]


def test_image_grid_one_grey_mosaic_titled_tiles_top_row_first(data):
    X, _, _ = data
    fig = images.image_grid(X[:7].reshape(-1, *SHAPE), [f"i{i}" for i in range(7)], "grid")
    assert len(fig.data) == 1 and [a.text for a in fig.layout.annotations] == [f"i{i}" for i in range(7)]
    assert np.allclose(tile(fig, 6), X[6].reshape(SHAPE)) and np.isnan(np.asarray(fig.data[0].z, float)[0, 0])
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.title.text == "grid"


def test_class_counts_a_bar_per_class(data):
    _, y, _ = data
    fig = classes.class_counts(y[y != 3], NAMES)
    assert list(fig.data[0].x) == NAMES and list(fig.data[0].y) == [30, 30, 30, 0]
    assert all(titles(fig))


def test_samples_per_class_first_image_titled_by_class(data):
    X, y, _ = data
    fig = images.samples_per_class(X, y, NAMES, SHAPE)
    assert [a.text for a in fig.layout.annotations] == NAMES
    assert np.allclose(tile(fig, 2), X[np.flatnonzero(y == 2)[0]].reshape(SHAPE))


def test_intensity_histogram_50_bins_of_a_seeded_sample(data):
    X, _, _ = data
    fig = classes.intensity_histogram(X, n_sample=5000, seed=1)
    assert len(fig.data[0].y) == 50 and fig.data[0].y.sum() == 5000 and all(titles(fig))
    assert np.array_equal(fig.data[0].y, classes.intensity_histogram(X, 5000, seed=1).data[0].y)
    assert classes.intensity_histogram(X, 10**9, seed=1).data[0].y.sum() == X.size


def test_brightness_per_class_sorted_ascending(data):
    X, y, _ = data
    fig = classes.brightness_per_class(X, y, NAMES)
    assert list(fig.data[0].x) == NAMES  # the synthetic classes get brighter with their id
    assert np.all(np.diff(fig.data[0].y) > 0) and all(titles(fig))


def test_average_image_and_class_prototypes(data):
    X, y, _ = data
    avg = images.average_image(X, SHAPE)
    assert len(avg.data) == 1 and np.allclose(tile(avg, 0, cols=1), X.mean(axis=0).reshape(SHAPE))
    protos = images.class_prototypes(X, y, NAMES, SHAPE)
    assert [a.text for a in protos.layout.annotations] == NAMES
    assert np.allclose(tile(protos, 1), X[y == 1].mean(axis=0).reshape(SHAPE))


def test_explained_variance_marks_k95_on_all_784_components():
    evr = np.full(784, 1 / 784)
    fig = charts.explained_variance(evr, k95=745, title="PCA")
    assert len(fig.data) == 2 and len(fig.data[0].x) == 784 and fig.data[1].yaxis == "y2"
    assert list(fig.layout.yaxis2.range) == [0, 1] and all(titles(fig))
    (line,) = fig.layout.shapes
    assert line.x0 == 745 and line.line.dash == "dash"
    assert [a.text for a in fig.layout.annotations] == ["95% @ 745"]
    assert not charts.explained_variance(evr, None, "PCA").layout.shapes


def test_class_scatters_one_named_trace_per_class(data):
    X, y, _ = data
    flat = scatter.class_scatter_2d(X, y, NAMES, n_points=80, seed=0, title="2d")
    assert sorted(t.name for t in flat.data) == sorted(NAMES) and all(isinstance(t, go.Scattergl) for t in flat.data)
    assert sum(len(t.x) for t in flat.data) == 80 and all(titles(flat))
    cube = scatter.class_scatter_3d(X, y, NAMES, n_points=80, seed=0, title="3d")
    assert sorted(t.name for t in cube.data) == sorted(NAMES) and all(isinstance(t, go.Scatter3d) for t in cube.data)
    assert cube.layout.scene.zaxis.title.text == "component 3" and cube.layout.title.text == "3d"
    padded = scatter.class_scatter_3d(X[:, :2], y, NAMES, 80, 0, "k=2")  # fewer components than axes
    assert all(np.all(t.z == 0) for t in padded.data)


def test_reconstructions_originals_then_a_row_per_k(data):
    X, y, _ = data
    orig = X[:4]
    fig = images.reconstructions(orig, {50: orig * 0.9, 10: orig * 0.5}, NAMES, SHAPE)
    assert len(fig.data) == 1
    assert [a.text for a in fig.layout.annotations] == [*NAMES, "original", "k=10", "k=50"]
    assert np.allclose(tile(fig, 5, cols=4), orig[1].reshape(SHAPE) * 0.5)


def test_curves_one_trace_per_name_and_index_when_x_missing():
    fig = charts.curves(
        {"PCA": [5, 10, 20], "TruncatedSVD": None}, {"PCA": [3, 2, 1], "TruncatedSVD": [4, 3, 2]}, "mse", "k", "MSE"
    )
    assert [t.name for t in fig.data] == ["PCA", "TruncatedSVD"] and fig.data[0].mode == "lines+markers"
    assert list(fig.data[0].x) == [5, 10, 20] and list(fig.data[1].x) == [1, 2, 3] and all(titles(fig))
    assert list(charts.curves(None, {"PCA": [0.5, 0.2]}, "evr", "component", "EVR").data[0].x) == [1, 2]


def test_cluster_purity_a_bar_per_cluster_with_top_class(data):
    _, y, clusters = data
    fig = classes.cluster_purity(y, clusters, NAMES)
    bar = fig.data[0]
    assert list(bar.x) == ["noise", "C0", "C1", "C2"] and all(titles(fig))
    assert list(bar.text[2:]) == ["Trouser", "Bag"] and bar.text[1] in {"Top", "Boot"} and set(bar.text) <= set(NAMES)
    assert bar.y[2] == 1.0  # C1 holds only Trouser
    assert list(fig.layout.xaxis.ticktext[2:]) == ["C1<br>Trouser", "C2<br>Bag"]  # the class on the axis too


def test_best_cluster_recall_a_bar_per_class_named_cluster(data):
    _, y, clusters = data
    bar = classes.best_cluster_recall(y, clusters, NAMES).data[0]
    assert list(bar.x) == NAMES and list(bar.text) == ["C0", "C1", "C2", "C0"]
    assert np.all((bar.y > 0.5) & (bar.y <= 1))
    none = classes.best_cluster_recall(y, np.full(len(y), -1), NAMES).data[0]
    assert list(none.text) == ["none"] * 4 and not np.any(none.y)


def test_k_distance_draws_eps():
    fig = charts.k_distance(np.sort(np.random.default_rng(0).random(50)), eps=0.42, min_samples=5)
    assert len(fig.data[0].y) == 50 and all(titles(fig))
    (line,) = fig.layout.shapes
    assert line.y0 == 0.42 and line.line.dash == "dash"
    assert [a.text for a in fig.layout.annotations] == ["eps = 0.42"]
    assert not charts.k_distance(np.arange(5.0), None, 5).layout.shapes


def test_eps_sweep_sorted_with_undefined_silhouette():
    fig = charts.eps_sweep([0.3, 0.1, 0.2], [2, 0, 5], [0.1, 1.0, 0.4], [0.3, np.nan, -0.2])
    assert [t.name for t in fig.data] == ["clusters", "noise fraction", "silhouette (noise left out)"]
    assert list(fig.data[0].x) == [0.1, 0.2, 0.3] and list(fig.data[0].y) == [0, 5, 2]
    assert np.isnan(fig.data[2].y[0]) and fig.data[1].yaxis == fig.data[2].yaxis == "y2"
    assert list(fig.layout.yaxis2.range) == [-0.2, 1] and all(titles(fig))


def test_metric_vs_param_a_line_per_color_numeric_x():
    df = pd.DataFrame(
        {"K": ["10", "8", "12", "8", "10", "12"], "reducer": ["pca"] * 3 + ["svd"] * 3, "silhouette": range(6)}
    )
    fig = charts.metric_vs_param(df, "K", "silhouette", "reducer", "silhouette vs K")
    assert [t.name for t in fig.data] == ["pca", "svd"] and all(titles(fig))
    assert list(fig.data[0].x) == [8, 10, 12] and list(fig.data[0].y) == [1, 0, 2]
    assert len(charts.metric_vs_param(df, "K", "silhouette", None, "all").data) == 1


def test_two_axis_inertia_and_silhouette():
    fig = charts.two_axis([8, 6, 7], [80, 100, 90], [0.2, 0.1, 0.15], "inertia", "silhouette", "K-Means sweep", "K")
    assert [t.name for t in fig.data] == ["inertia", "silhouette"] and fig.data[1].yaxis == "y2"
    assert list(fig.data[0].x) == [6, 7, 8] and list(fig.data[1].y) == [0.1, 0.15, 0.2]
    assert all(titles(fig)) and fig.layout.yaxis2.title.text == "silhouette"


def test_heatmap_pivots_two_params():
    df = pd.DataFrame({"k": ["10", "50", "10", "50", "100", "10"], "K": [6, 6, 8, 8, 8, 6], "ari": range(6)})
    fig = charts.heatmap(df, "k", "K", "ari", "ARI over k × K")
    hm = fig.data[0]
    assert np.shape(hm.z) == (2, 3) and list(hm.x) == ["10", "50", "100"] and list(hm.y) == ["6", "8"]
    assert hm.z[0][0] == 2.5 and hm.text[0][2] == "" and fig.layout.xaxis.type == "category"
    assert all(titles(fig))


def test_write_html_uses_the_cdn(data, tmp_path):
    _, y, _ = data
    page = html.write_html(classes.class_counts(y, NAMES), tmp_path / "counts.html", embed_plotlyjs=False)
    text = page.read_text()
    assert "cdn.plot.ly" in text and "Trouser" in text


def test_search_trials_puts_the_objective_beside_the_label_scores():
    df = pd.DataFrame(
        {
            "run_name": ["a", "b", "c"],
            "clusterer.K": ["10", "8", "9"],
            "silhouette": [0.1, 0.3, 0.2],
            "nmi": [0.6, 0.5, 0.55],
            "ari": [0.4, 0.3, 0.35],
        }
    )
    fig = charts.search_trials(df, "clusterer.K", "silhouette")
    assert [t.name for t in fig.data] == ["silhouette", "nmi", "ari"]
    assert list(fig.data[0].x) == [8, 9, 10] and list(fig.data[0].y) == [0.3, 0.2, 0.1]  # numeric order
    assert fig.data[0].xaxis == "x" and fig.data[1].xaxis == "x2"  # objective left, labels beside it


def test_reduction_pages_rendered_once_per_reducer_output(make_cfg):
    from dataclasses import replace

    from sklearn.decomposition import PCA

    from clustersweep.data.dataset import load
    from clustersweep.tasks import cluster_plots

    cfg = make_cfg()
    d = load(cfg.dataset, cfg.seed)
    pca = PCA(3, random_state=0).fit(d.X_train)
    labels = np.zeros(len(d.X_train), dtype=int)
    f = cluster_plots.Fitted(
        pca, None, pca.transform(d.X_train), pca.transform(d.X_test), np.arange(len(labels)), labels, labels, None
    )
    first = cluster_plots.reduction_pages(cfg, d, f)
    assert set(first) == {"class_scatter_2d", "class_scatter_3d", "reconstructions"}
    assert cluster_plots.reduction_pages(cfg, d, f) is first  # the next run of the sweep reuses them
    other = cluster_plots.reduction_pages(cfg, d, replace(f, Z_train=f.Z_train + 1))  # other embeddings: rendered anew
    assert other is not first and other["class_scatter_2d"] != first["class_scatter_2d"]
