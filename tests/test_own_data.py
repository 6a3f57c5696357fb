"""Your own data: a feature matrix (.npz, .csv, .parquet, .npy) or a folder of images, labelled or not — single runs,
sweeps and a search, on data the tests write; and every bad input refused in one line before any run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import python, run_py, runs
from PIL import Image
from sklearn.datasets import make_blobs

from clustersweep.data.dataset import load
from clustersweep.errors import ConfigError, DataError
from clustersweep.tasks import cluster

SMALL = ["reducer.k=5", "clusterer.K=5", "clusterer.n_init=2", "metrics.silhouette_sample_size=500"]


def blobs(n: int = 5000, d: int = 64, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n, d, centers=k, cluster_std=4.0, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A labelled 5,000 × 64 .npz with 5 classes, the same without labels, and a folder of 500 PNGs (16×16 RGB) in
    5 class sub-folders: class c is a bright square in its own corner or the centre, in its own colour."""
    root = tmp_path_factory.mktemp("own")
    X, y = blobs()
    np.savez(root / "labelled.npz", X=X, y=y)
    np.savez(root / "unlabelled.npz", X=X)
    rng = np.random.default_rng(0)
    spots = [(0, 0), (0, 10), (10, 0), (10, 10), (5, 5)]
    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1)]
    for c, ((r, col), colour) in enumerate(zip(spots, colours, strict=True)):
        folder = root / "images" / f"class_{'abcde'[c]}"
        folder.mkdir(parents=True)
        for i in range(100):
            img = rng.uniform(0, 0.2, (16, 16, 3))
            dr, dc = rng.integers(0, 2, 2)
            img[r + dr : r + dr + 6, col + dc : col + dc + 6] = colour
            Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return {"labelled": root / "labelled.npz", "unlabelled": root / "unlabelled.npz", "images": root / "images"}


def _plots(client, run_id: str) -> set[str]:
    return {Path(a.path).stem for a in client.list_artifacts(run_id, "plots")}


def test_a_labelled_matrix_runs_and_sweeps(make_cfg, store, files):
    cfg = make_cfg("dataset=arrays", f"dataset.path={files['labelled']}", "dataset.labels=y", *SMALL, tiny=False)
    data = load(cfg.dataset, cfg.seed)
    assert (data.X_train.shape, data.X_test.shape, data.class_names) == ((4000, 64), (1000, 64), list("01234"))
    assert np.bincount(data.y_test).tolist() == [200] * 5  # the seeded split is stratified
    res = cluster.run(cfg)
    assert res.metrics["ari"] > 0.9 and "skipped" not in res.report
    client, found = runs(store, "arrays")
    assert {"contingency_counts", "cluster_sizes", "cluster_scatter"} <= _plots(client, res.run_id)
    assert "centroids" not in _plots(client, res.run_id)  # rows that are not images get no image plots
    assert client.get_run(res.run_id).outputs.model_outputs  # and the fitted pipeline as its model
    sweep = run_py(
        "-m",
        "dataset=arrays",
        f"dataset.path={files['labelled']}",
        "dataset.labels=y",
        "reducer.k=5,10",
        *SMALL[1:],
        "plots.enabled=false",
        store=store,
    )
    assert sweep.returncode == 0 and "2 finished, 0 failed" in sweep.stdout, sweep.stdout[-2000:] + sweep.stderr
    _, found = runs(store, "arrays")
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all("nmi" in r.data.metrics for r in children)


def test_a_folder_of_images_runs_and_sweeps_with_colour_plots(make_cfg, store, files):
    cfg = make_cfg("dataset=image_folder", f"dataset.path={files['images']}", *SMALL, tiny=False)
    data = load(cfg.dataset, cfg.seed)
    assert data.image_shape == (16, 16, 3) and data.X_train.shape == (400, 768)
    assert data.class_names == ["class_a", "class_b", "class_c", "class_d", "class_e"]
    res = cluster.run(cfg)
    assert res.metrics["nmi"] > 0.8
    client, _ = runs(store, "images")
    assert {"centroids", "reconstructions", "contingency_counts", "class_scatter_2d"} <= _plots(client, res.run_id)
    assert client.get_run(res.run_id).outputs.model_outputs
    # The model assigns a folder of images, by file (resized and converted as the run's images were).
    out = files["images"].parent / "clusters.csv"
    cmd = ["-m", "clustersweep.predict", f"runs:/{res.run_id}/model", str(files["images"])]
    done = python(*cmd, "--out", str(out), "--tracking-uri", store)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "cluster"] and len(table) == 500 and table.file[0] == "class_a/000.png"
    assert table.cluster.nunique() == 5
    sweep = run_py(
        "-m",
        "dataset=image_folder",
        f"dataset.path={files['images']}",
        "reducer=pca,svd",
        *SMALL,
        "plots.enabled=false",
        store=store,
    )
    assert sweep.returncode == 0 and "2 finished, 0 failed" in sweep.stdout, sweep.stdout[-2000:] + sweep.stderr


def test_without_labels_a_run_a_sweep_and_a_search_use_label_free_metrics_only(make_cfg, store, files):
    given = ["dataset=arrays", f"dataset.path={files['unlabelled']}"]
    res = cluster.run(make_cfg(*given, *SMALL, tiny=False))
    assert "silhouette" in res.metrics and not {"ari", "nmi", "purity", "acc_hungarian"} & set(res.metrics)
    assert "**No labels**" in res.report
    client, _ = runs(store, "arrays")
    run = client.get_run(res.run_id)
    assert run.data.tags["skipped.labels"].startswith("the dataset has no labels")
    assert {"cluster_sizes", "cluster_scatter"} <= _plots(client, res.run_id)
    sweep = run_py("-m", *given, "clusterer.K=4,5", *SMALL[:1], *SMALL[2:], "plots.enabled=false", store=store)
    assert sweep.returncode == 0 and "2 finished, 0 failed" in sweep.stdout, sweep.stdout[-2000:] + sweep.stderr
    assert "The data had no labels" in sweep.stdout
    search = run_py(
        "-m",
        "search=pca_kmeans",
        "hydra.sweeper.n_trials=3",
        *given,
        "reducer.k=range(2,10)",
        "clusterer.K=range(3,7)",
        *SMALL[2:],
        "plots.enabled=false",
        store=store,
    )
    counts = re.search(r"^(\d+) finished, 0 failed(?:; (\d+) skipped)?", search.stdout, re.M)
    assert search.returncode == 0 and counts, search.stdout[-2000:] + search.stderr
    assert int(counts[1]) + int(counts[2] or 0) == 3  # a trial may be the single run's twin: skipped
    _, found = runs(store, "arrays")
    assert len(found) >= 6 and not any("nmi" in r.data.metrics for r in found)


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    X, y = blobs(60, 4, 3)
    np.save(root / "X.npy", X)
    with_nan = X.copy()
    with_nan[7, 2] = np.nan
    np.save(root / "nan.npy", with_nan)
    pd.DataFrame({"a": X[:, 0], "b": ["x"] * 60, "label": y}).to_csv(root / "text.csv", index=False)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": y}).to_parquet(root / "ok.parquet")
    (root / "notes.xlsx").write_text("not data")
    (root / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    sizes = root / "sizes"
    sizes.mkdir()
    Image.new("L", (8, 8)).save(sizes / "a.png")
    Image.new("L", (9, 8)).save(sizes / "b.png")
    return {p.stem if p.suffix else p.name: p for p in root.iterdir()} | {"root": root}


BAD = {
    "a missing file": (
        ["dataset=arrays", "dataset.path={root}/none.npy"],
        "dataset.path={root}/none.npy: no such file",
    ),
    "an unknown format": (["dataset=arrays", "dataset.path={root}/notes.xlsx"], "unknown format '.xlsx'; use .npy"),
    "an unreadable file": (["dataset=arrays", "dataset.path={root}/broken.npy"], "cannot read it as .npy"),
    "images of different sizes": (
        ["dataset=image_folder", "dataset.path={root}/sizes"],
        "differ in size; set dataset.image_size=[height,width]",
    ),
    "NaN values": (["dataset=arrays", "dataset.path={root}/nan.npy"], "hold NaN or infinite values (row "),
    "non-numeric columns": (
        ["dataset=arrays", "dataset.path={root}/text.csv", "dataset.labels=label"],
        "the columns b are not numeric",
    ),
    "a label column that does not exist": (
        ["dataset=arrays", "dataset.path={root}/ok.parquet", "dataset.labels=class"],
        "dataset.labels='class' is not a column of",
    ),
    "fewer rows than K": (
        ["dataset=arrays", "dataset.path={root}/X.npy", "clusterer.K=50"],
        "clusterer.K=50 is not allowed",
    ),
    "a patches space without images": (
        ["dataset=arrays", "dataset.path={root}/X.npy", "metrics.space=patches"],
        "metrics.space=patches is not allowed for dataset=arrays: the patches space needs grey images of a known "
        "shape, but dataset.image_shape=None; expected common or embedding",
    ),
    "an image_shape that does not match the width": (
        ["dataset=arrays", "dataset.path={root}/X.npy", "dataset.image_shape=[3,3]"],
        "dataset.image_shape=[3, 3] holds 9 values but the rows have 4",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_before_any_run(make_cfg, store, bad, case):
    overrides, expected = BAD[case]
    root = bad["root"]
    cfg = make_cfg(*(o.format(root=root) for o in overrides), "reducer.k=2", "clusterer.K=2", tiny=False)
    if case == "fewer rows than K":
        cfg.clusterer.K = 50
    with pytest.raises((DataError, ConfigError)) as info:
        cluster.prepare(cfg, [])
    assert expected.format(root=root) in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_bad_input_exits_2_with_one_line_and_no_run(store, bad):
    res = run_py("dataset=arrays", f"dataset.path={bad['root']}/nan.npy", store=store)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "NaN or infinite" in res.stderr, res.stderr
    assert runs(store, "arrays")[1] == []


def test_a_patches_space_on_rows_that_are_no_images_exits_2_with_one_line_and_no_run(store, bad):
    args = ["dataset=arrays", f"dataset.path={bad['X']}", "reducer.k=2", "clusterer.K=2"]
    res = run_py(*args, "metrics.other_spaces=[embedding,patches]", store=store)
    said = "error: metrics.other_spaces=['embedding', 'patches'] is not allowed for dataset=arrays: the patches space"
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith(said), res.stderr
    assert "expected a list out of common, embedding" in res.stderr
    assert runs(store, "arrays")[1] == []


def test_a_column_named_like_labels_read_as_a_feature_is_said_in_one_line(store, tmp_path):
    X, y = blobs(60, 3, 3)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "Label": y}).to_csv(tmp_path / "mine.csv", index=False)
    args = ["dataset=arrays", f"dataset.path={tmp_path / 'mine.csv'}", "reducer.k=2", "clusterer.K=3"]
    res = run_py(*args, "plots.enabled=false", "model.log=false", store=store)
    said = [line for line in (res.stdout + res.stderr).splitlines() if "'Label'" in line]
    assert res.returncode == 0 and len(said) == 1, res.stdout[-2000:] + res.stderr
    assert "the column 'Label' is read as a feature" in said[0] and "give dataset.labels=Label" in said[0]
    (run,) = runs(store, "arrays")[1]
    assert "nmi" not in run.data.metrics  # no labels: as the line says
