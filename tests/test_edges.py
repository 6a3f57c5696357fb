"""Data at the edges: small data (fewer train rows or features than the internal sizes, one class, K close to n) runs
with every internal size clamped and said, or is refused in one line before any run; arrays of images ((N, H, W),
(N, H, W, C)) are read as images — runs, a sweep, plots and `predict` on rows of that shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import python, run_py, runs
from mlflow.artifacts import download_artifacts
from PIL import Image
from sklearn.datasets import make_blobs

from clustersweep.config.validate import validate
from clustersweep.data.arrays import ArrayFile
from clustersweep.data.dataset import load
from clustersweep.data.generated import Synthetic
from clustersweep.errors import DataError
from clustersweep.tasks import cluster, eda

FAST = ["model.log=false"]


def _plots(client, run_id: str) -> set[str]:
    return {Path(a.path).stem for a in client.list_artifacts(run_id, "plots")}


def _report(store: str, run_id: str) -> str:
    return Path(download_artifacts(run_id=run_id, artifact_path="report.md", tracking_uri=store)).read_text()


def _one_line(res, said: str) -> None:
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and said in res.stderr, res.stdout[-2000:] + res.stderr


# Small data


@pytest.fixture(scope="module")
def small_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 RGB images of 10×10 in 3 class folders (48 train rows after the split: fewer than metrics.common_k=50):
    class c is a bright square at its own place."""
    root = tmp_path_factory.mktemp("small") / "images"
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(20):
            img = rng.uniform(0, 0.3, (10, 10, 3))
            img[3 * c : 3 * c + 4, 3 * c : 3 * c + 4] = (1.0, 0.5 * c, 1 - 0.4 * c)
            Image.fromarray((img * 255).astype(np.uint8)).save(root / f"c{c}" / f"{i:02d}.png")
    return root


def test_sixty_small_rgb_images_run_with_the_common_space_clamped_to_the_train_rows(store, small_images):
    given = ["dataset=image_folder", f"dataset.path={small_images}", "dataset.image_size=[10,10]"]
    res = run_py(*given, "reducer.k=10", "clusterer.K=3", *FAST, store=store)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    client, (run,) = runs(store, "images")
    assert run.info.status == "FINISHED" and run.data.tags["clamped.metrics.common_k"] == "48: the train rows"
    assert "silhouette" in run.data.metrics and run.data.metrics["nmi"] > 0.5
    assert "- **Clamped to the data**: metrics.common_k = 48, at most the train rows" in _report(store, run.info.run_id)
    assert {"centroids", "reconstructions", "class_scatter_2d", "cluster_scatter"} <= _plots(client, run.info.run_id)
    # the default reducer.k=100 is more components than 48 rows hold: one line, exit 2, no run
    res = run_py(*given, store=store)
    _one_line(
        res, "reducer.k=100 is not allowed: expected an integer in 1..48 (the train rows, fewer than the features)"
    )
    assert len(runs(store, "images")[1]) == 1


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """30 rows of 6 features (24 train rows), with 3 classes and with a single one."""
    root = tmp_path_factory.mktemp("narrow")
    X, y = make_blobs(30, 6, centers=3, random_state=0)
    np.save(root / "X.npy", X.astype(np.float32))
    np.save(root / "y.npy", y)
    np.save(root / "one.npy", np.zeros(30, dtype=np.int64))
    return {p.stem: p for p in root.iterdir()}


def _narrow_cfg(make_cfg, narrow, *more: str, labels: str = "y"):
    given = ["dataset=arrays", f"dataset.path={narrow['X']}", f"dataset.labels_path={narrow[labels]}"]
    return make_cfg(*given, "reducer.k=3", "clusterer.K=3", *FAST, *more, tiny=False)


def test_fewer_features_than_common_k_keep_them_all_and_say_so(make_cfg, store, narrow):
    res = cluster.run(_narrow_cfg(make_cfg, narrow))
    client, (run,) = runs(store, "arrays")
    assert run.data.tags["clamped.metrics.common_k"] == "6: the features"
    assert "metrics.common_k = 6, at most the features" in res.report
    assert res.metrics["ari"] > 0.9 and not res.skipped  # every metric defined


def test_one_class_runs_with_every_metric(make_cfg, store, narrow):
    res = cluster.run(_narrow_cfg(make_cfg, narrow, labels="one"))
    assert {"ari", "nmi", "purity", "acc_hungarian", "silhouette", "modularity"} <= set(res.metrics)
    assert res.metrics["purity"] == 1.0 and res.metrics["nmi"] == 0.0 and not res.skipped
    assert "contingency_counts" in _plots(runs(store, "arrays")[0], res.run_id)


@pytest.mark.parametrize("clusterer", ["kmeans", "gmm", "agglomerative"])
def test_K_close_to_the_train_rows(make_cfg, store, narrow, clusterer):
    """K = n_train - 1 runs with every metric; K = n_train (one row per cluster) runs and says why each label-free
    metric is undefined; K = n_train + 1 is refused in one line."""
    res = cluster.run(_narrow_cfg(make_cfg, narrow, f"clusterer={clusterer}", "clusterer.K=23"))
    assert res.metrics["n_clusters"] >= 2 and "ari" in res.metrics
    res = cluster.run(_narrow_cfg(make_cfg, narrow, f"clusterer={clusterer}", "clusterer.K=24"))
    assert res.metrics["n_clusters"] == 24 and res.degenerate is None
    assert set(res.skipped) == {"silhouette", "modularity", "davies_bouldin", "calinski_harabasz"}
    assert res.skipped["silhouette"] == "silhouette needs 2..n-1 clusters, got 24 in 24 points"
    tags = runs(store, "arrays")[1][0].data.tags
    assert tags["skipped.modularity"] == "modularity needs 2..n-1 clusters, got 24 in 24 points"
    with pytest.raises(Exception, match=r"^clusterer.K=25 is not allowed: expected an integer in 2..24") as info:
        cluster.prepare(_narrow_cfg(make_cfg, narrow, f"clusterer={clusterer}", "clusterer.K=25"), [])
    assert "\n" not in str(info.value)


def test_fewer_fitted_points_than_modularity_needs_say_why(make_cfg, narrow):
    res = cluster.run(_narrow_cfg(make_cfg, narrow, "clusterer.n_fit=12"))
    assert res.skipped == {"modularity": "modularity needs more than 15 points, got 12"}
    assert "silhouette" in res.metrics


# Arrays of images


@pytest.fixture(scope="module")
def image_arrays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic's 28×28 spots as (N, 28, 28) arrays (train 600, test 200) with their labels, the same flat, as
    (N, 14, 14, 3) colour, and of other shapes."""
    root = tmp_path_factory.mktemp("image_arrays")
    full = Synthetic("synthetic", 0, 4, 600, 200, [28, 28]).load()
    np.save(root / "grey.npy", full.X_train.reshape(-1, 28, 28))
    np.save(root / "labels.npy", full.y_train)
    np.save(root / "flat.npy", full.X_test)
    np.save(root / "test_grey.npy", full.X_test.reshape(-1, 28, 28))
    np.save(root / "test_channel.npy", full.X_test.reshape(-1, 28, 28, 1))
    np.save(root / "test_other.npy", full.X_test.reshape(-1, 28, 28)[:, :, :27])
    np.save(root / "test_wide.npy", full.X_test.reshape(-1, 4, 7, 28))
    small = Synthetic("synthetic", 0, 4, 600, 200, [14, 14]).load()
    colour = np.repeat(small.X_train.reshape(-1, 14, 14, 1), 3, axis=3) * np.array([1.0, 0.6, 0.3], np.float32)
    np.savez(root / "colour.npz", X=colour, y=full.y_train)
    return {p.stem: p for p in root.iterdir()}


def test_an_array_of_images_is_read_as_images_a_memory_mapped_view(image_arrays):
    full = ArrayFile("arrays", str(image_arrays["grey"]), test_path=str(image_arrays["test_grey"])).load()
    assert full.image_shape == (28, 28) and full.X_train.shape == (600, 784) and full.X_test.shape == (200, 784)
    one_channel = ArrayFile("arrays", str(image_arrays["grey"]), test_path=str(image_arrays["test_channel"])).load()
    assert one_channel.image_shape == (28, 28) and np.array_equal(one_channel.X_test, full.X_test)  # (N, H, W, 1): grey
    assert isinstance(full.X_train, np.memmap) and not full.X_train.flags.owndata  # the file mapped, not copied
    on_disk = np.load(image_arrays["grey"])
    assert np.array_equal(full.X_train, on_disk.reshape(600, -1))  # row-major: row i is image i
    colour = ArrayFile("arrays", str(image_arrays["colour"]), labels="y").load()
    assert colour.image_shape == (14, 14, 3) and colour.X_train.shape == (600, 588)
    for test, said in (
        ("test_other", "holds images of 28x27 but dataset.path holds images of 28x28"),
        ("flat", "holds 784 features per row but dataset.path holds images of 28x28"),
        ("test_wide", "has shape (200, 4, 7, 28); expected (rows, features), (rows, height, width) images or"),
    ):
        with pytest.raises(DataError) as info:
            ArrayFile("arrays", str(image_arrays["grey"]), test_path=str(image_arrays[test])).load()
        assert said in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_an_array_of_images_with_labels_runs_sweeps_and_predicts_rows_of_its_shape(store, image_arrays, tmp_path):
    given = ["dataset=arrays", f"dataset.path={image_arrays['grey']}", f"dataset.labels_path={image_arrays['labels']}"]
    small = ["reducer.k=8", "clusterer.n_init=2", "metrics.silhouette_sample_size=300"]
    res = run_py(*given, *small, "clusterer.K=4", store=store)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    client, (run,) = runs(store, "arrays")
    assert run.data.metrics["nmi"] > 0.8 and run.data.params["dataset.image_shape"] == "[28, 28]"
    assert {"centroids", "reconstructions", "contingency_counts"} <= _plots(client, run.info.run_id)
    sweep = run_py("-m", *given, *small, "clusterer.K=3,4", "plots.enabled=false", "model.log=false", store=store)
    assert sweep.returncode == 0 and "2 finished, 0 failed" in sweep.stdout, sweep.stdout[-2000:] + sweep.stderr
    # predict: (n, 28, 28) rows give the clusters the flat rows give; another shape is one line, exit 2
    model = f"runs:/{run.info.run_id}/model"
    out = {}
    for name in ("test_grey", "flat"):
        done = python(
            "-m",
            "clustersweep.predict",
            model,
            str(image_arrays[name]),
            "--out",
            str(tmp_path / name),
            "--tracking-uri",
            store,
        )
        assert done.returncode == 0, done.stderr
        out[name] = pd.read_csv(tmp_path / name).cluster.to_numpy()
    assert len(out["flat"]) == 200 and np.array_equal(out["test_grey"], out["flat"])
    bad = python("-m", "clustersweep.predict", model, str(image_arrays["test_other"]), "--tracking-uri", store)
    said = "holds images of 28x27 but the model was fitted on images of 28x28"
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and said in bad.stderr, bad.stderr


def test_an_array_of_images_without_labels_and_in_colour_run_with_image_plots(make_cfg, store, image_arrays):
    small = ["reducer.k=8", "clusterer.K=4", "metrics.silhouette_sample_size=300", *FAST]
    grey = make_cfg("dataset=arrays", f"dataset.path={image_arrays['grey']}", *small, tiny=False)
    res = cluster.run(grey)
    client, _ = runs(store, "arrays")
    assert "nmi" not in res.metrics and "silhouette" in res.metrics
    assert {"centroids", "reconstructions", "cluster_scatter"} <= _plots(client, res.run_id)
    assert {"average_image", "first_images"} <= _plots(client, eda.run(grey, overrides=[]))  # task=eda's images
    cfg = make_cfg("dataset=arrays", f"dataset.path={image_arrays['colour']}", "dataset.labels=y", *small, tiny=False)
    assert load(cfg.dataset, cfg.seed).image_shape == (14, 14, 3)
    res = cluster.run(cfg)
    assert res.metrics["nmi"] > 0.8 and {"centroids", "reconstructions"} <= _plots(client, res.run_id)


def test_an_image_shape_the_array_disagrees_with_is_one_line_and_no_run(store, image_arrays):
    res = run_py("dataset=arrays", f"dataset.path={image_arrays['grey']}", "dataset.image_shape=[14,56]", store=store)
    _one_line(res, "the data's rows are images of 28x28, as the loader reads them, but dataset.image_shape=[14, 56]")
    assert runs(store, "arrays")[1] == []


def test_the_patches_space_of_few_images_is_clamped_and_patch_codes_take_the_arrays_image_shape(
    make_cfg, store, image_arrays
):
    """The patches space of 32 train rows of 28×28 images: fewer rows than metrics.common_k, said. A patch-code
    reducer is built with the image shape the array gives (dataset.image_shape=null)."""
    given = ["dataset=arrays", f"dataset.path={image_arrays['grey']}", "dataset.n_train=32", "clusterer.K=3"]
    res = cluster.run(make_cfg(*given, "reducer.k=5", "metrics.other_spaces=[patches]", *FAST, tiny=False))
    tags = runs(store, "arrays")[1][0].data.tags
    assert tags["clamped.metrics.common_k.patches"] == "32: the train rows" and "silhouette.patches" in res.metrics
    assert tags["clamped.metrics.common_k"] == "32: the train rows"
    assert "metrics.common_k.patches = 32, at most the train rows" in res.report
    cfg = make_cfg(*given, "reducer=patches_umap", "reducer.pca_k=20", "reducer.n_neighbors=5", tiny=False)
    validate(cfg)  # the shape unknown until the array is read: not refused
    data = load(cfg.dataset, cfg.seed)
    codes = validate(cfg, data)["reducer"].steps[0][1]
    assert cfg.dataset.image_shape == [28, 28] and list(codes.image_shape) == [28, 28]


def test_the_notebook_on_small_images_is_one_line_before_any_run(store, small_images):
    """Its clustering runs' reducer.k=100 (notebook.clustering_space) is more than 48 train rows hold."""
    given = ["+experiment=seed_notebook", "dataset=image_folder", f"dataset.path={small_images}"]
    res = run_py(*given, "dataset.image_size=[10,10]", store=store)
    _one_line(res, "reducer.k=100 is not allowed: expected an integer in 1..48 (the train rows, fewer than the")
    assert "see notebook.clustering_space" in res.stderr and runs(store, "images")[1] == []
