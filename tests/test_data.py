"""Tests for clustersweep.data: tiny IDX files written here, file:// mirrors, never the network."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from clustersweep.data.__main__ import CONF_DIR, main
from clustersweep.data.dataset import _prepared, build_loader, load
from clustersweep.errors import DataError
from clustersweep.stages.metrics import is_cost

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_SHA = "697249e9d1e87d6b2c6a738e828c890264cffecccb13840d472e3585751a5582"
KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _idx(data: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000080<ndim>, big-endian uint32 dims, then the bytes."""
    dims = b"".join(d.to_bytes(4, "big") for d in data.shape)
    return (0x800 + data.ndim).to_bytes(4, "big") + dims + data.astype(np.uint8).tobytes()


def _tiny() -> dict[str, bytes]:
    """30 train images of 2x3 pixels in unbalanced classes (15/10/5) and 12 test images (4/4/4)."""
    rng = np.random.default_rng(0)
    return {
        "train_images": _idx(rng.integers(0, 256, (30, 2, 3))),
        "train_labels": _idx(rng.permutation(np.repeat([0, 1, 2], [15, 10, 5]))),
        "test_images": _idx(rng.integers(0, 256, (12, 2, 3))),
        "test_labels": _idx(np.repeat([0, 1, 2], 4)),
    }


RAW = _tiny()
NAMES = {key: str(OmegaConf.load(CONF_DIR / "dataset" / "fashion_mnist.yaml").files[key].name) for key in KEYS}


@pytest.fixture(autouse=True)
def _fresh_process_cache() -> None:
    _prepared.cache_clear()  # each test's files are its own


def fetch(cfg: DictConfig, progress: bool = False, into: Path | None = None) -> Path:
    return build_loader(cfg).fetch(progress, into)


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _write(folder: Path, **replace: bytes) -> Path:
    """The four tiny files gzipped into `folder`, with any of them swapped for other IDX content."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in KEYS:
        (folder / NAMES[key]).write_bytes(gzip.compress(replace.get(key, RAW[key])))
    return folder


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DictConfig:
    """The Fashion-MNIST config pointed at the tiny files, a tmp cache, system path and (empty) mirror."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "fashion_mnist.yaml")
    for key in KEYS:
        cfg.files[key].sha256 = _sha(RAW[key])
    cfg.merge_with(
        {
            "image_shape": [2, 3],
            "class_names": ["a", "b", "c"],
            "system_path": str(tmp_path / "system"),
            "mirrors": [(tmp_path / "mirror").as_uri() + "/"],
        }
    )
    return cfg


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "clustersweep" / "fashion_mnist"


def test_load_parses_idx(cfg: DictConfig, tmp_path: Path) -> None:
    cfg.path = str(_write(tmp_path / "given"))
    ds = load(cfg, seed=0)
    images = np.frombuffer(RAW["train_images"], np.uint8, offset=16).reshape(30, 6)
    assert ds.X_train.dtype == np.float32 and ds.X_train.shape == (30, 6) and ds.X_test.shape == (12, 6)
    np.testing.assert_array_equal(ds.X_train, images.astype(np.float32) / 255)
    assert 0 <= ds.X_train.min() and ds.X_train.max() <= 1
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, np.frombuffer(RAW["train_labels"], np.uint8, offset=8))
    np.testing.assert_array_equal(ds.y_test, np.repeat([0, 1, 2], 4))
    assert ds.image_shape == (2, 3) and ds.class_names == ["a", "b", "c"]
    assert ds.sha256 == _sha("\n".join(_sha(RAW[key]) for key in KEYS).encode())
    again = load(cfg, seed=1)
    assert again.X_train is ds.X_train and not ds.X_train.flags.writeable  # the per-process cache, protected


def _one_line_error(cfg: DictConfig, *patterns: str) -> str:
    with pytest.raises(DataError) as info:
        fetch(cfg, progress=False)
    message = str(info.value)
    assert "\n" not in message
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_checksum_mismatch_refused(cfg: DictConfig, tmp_path: Path) -> None:
    folder = _write(tmp_path / "given", train_labels=_idx(np.zeros(30)))
    cfg.path = str(folder)
    _one_line_error(
        cfg,
        f"dataset.path={folder} is unusable",
        f"{folder / NAMES['train_labels']}: SHA-256 mismatch (got ",
        f"expected {_sha(RAW['train_labels'])[:12]}",
        "the file is corrupt or truncated",
    )


def test_truncated_gzip_refused(cfg: DictConfig, tmp_path: Path) -> None:
    folder = _write(tmp_path / "given")
    file = folder / NAMES["train_images"]
    file.write_bytes(file.read_bytes()[:-20])
    cfg.path = str(folder)
    _one_line_error(cfg, f"{file}: cannot decompress it", "the file is corrupt or truncated")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"\x00\x00\x08\x01" + RAW["train_images"][4:],
            "not an IDX file of 3 dimension(s) (magic 0x00000801",
        ),
        (RAW["train_images"] + b"\x00", "181 bytes of data but the header (30, 2, 3) needs 180"),
        (RAW["train_images"][:-1], "179 bytes of data but the header (30, 2, 3) needs 180"),
        (RAW["train_images"][:10], "the IDX header is cut short (10 of 16 bytes)"),
    ],
)
def test_malformed_idx_refused(cfg: DictConfig, tmp_path: Path, raw: bytes, expected: str) -> None:
    cfg.path = str(_write(tmp_path / "given", train_images=raw))
    cfg.files.train_images.sha256 = _sha(raw)  # the checksum passes: only the parser can catch it
    with pytest.raises(DataError, match=rf"^{re.escape(NAMES['train_images'])}: .*{re.escape(expected)}"):
        load(cfg, seed=0)


def test_image_and_label_counts_must_agree(cfg: DictConfig, tmp_path: Path) -> None:
    labels = _idx(np.zeros(29))
    cfg.path = str(_write(tmp_path / "given", train_labels=labels))
    cfg.files.train_labels.sha256 = _sha(labels)
    with pytest.raises(DataError, match="has 30 images but train-labels-idx1-ubyte.gz has 29 labels"):
        load(cfg, seed=0)


def test_sources_in_order(cfg: DictConfig, tmp_path: Path) -> None:
    given, cache, system = _write(tmp_path / "given"), _write(_cache(tmp_path)), _write(tmp_path / "system")
    _write(tmp_path / "mirror")
    cfg.path = str(given)
    assert fetch(cfg, progress=False) == given
    cfg.path = None
    assert fetch(cfg, progress=False) == cache
    shutil.rmtree(cache)
    assert fetch(cfg, progress=False) == system
    shutil.rmtree(system)
    assert fetch(cfg, progress=False) == cache  # downloaded from the mirror
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES.values())
    for key in KEYS:
        assert gzip.decompress((cache / NAMES[key]).read_bytes()) == RAW[key]


def test_given_path_does_not_fall_through(cfg: DictConfig, tmp_path: Path) -> None:
    _write(_cache(tmp_path))
    (tmp_path / "empty").mkdir()
    cfg.path = str(tmp_path / "empty")
    _one_line_error(cfg, f"dataset.path={tmp_path / 'empty'}: no IDX files there (expected {NAMES['train_images']}")
    cfg.path = str(tmp_path / "nowhere")
    _one_line_error(cfg, f"dataset.path={tmp_path / 'nowhere'}: no such folder")


def test_corrupt_download_not_kept_and_next_mirror_used(cfg: DictConfig, tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad", train_images=_idx(np.zeros((30, 2, 3))))
    good = _write(tmp_path / "good")
    cache = _cache(tmp_path)
    cfg.mirrors = [bad.as_uri() + "/"]
    _one_line_error(cfg, f"mirror {bad.as_uri()}/{NAMES['train_images']}: SHA-256 mismatch", "not kept")
    assert list(cache.iterdir()) == []  # neither the bad file nor a temp file is left behind
    cfg.mirrors = [bad.as_uri() + "/", good.as_uri() + "/"]
    assert fetch(cfg, progress=False) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES.values())
    assert gzip.decompress((cache / NAMES["train_images"]).read_bytes()) == RAW["train_images"]


def test_corrupt_cache_refused_reported_then_replaced(cfg: DictConfig, tmp_path: Path) -> None:
    cache = _write(_cache(tmp_path), test_labels=_idx(np.zeros(12)))
    message = _one_line_error(
        cfg,
        "no usable fashion_mnist data; tried: dataset.path (not set)",
        f"cache {cache} ({cache / NAMES['test_labels']}: SHA-256 mismatch",
        f"system path {tmp_path / 'system'} (no files)",
        f"mirror {(tmp_path / 'mirror').as_uri()}/{NAMES['test_labels']}: ",
        "set dataset.path=/folder/with/the/idx/files, or: apt-get install dataset-fashion-mnist",
    )
    assert NAMES["train_images"] not in message  # only the bad file was refused, and only it downloaded
    _write(tmp_path / "mirror")
    assert fetch(cfg, progress=False) == cache
    assert gzip.decompress((cache / NAMES["test_labels"]).read_bytes()) == RAW["test_labels"]


def test_subsample_stratified_exact_and_seeded(cfg: DictConfig, tmp_path: Path) -> None:
    cfg.path = str(_write(tmp_path / "given"))
    full = load(cfg, seed=0)
    cfg.n_train, cfg.n_test = 12, 6
    ds = load(cfg, seed=0)
    assert np.bincount(ds.y_train).tolist() == [6, 4, 2] and np.bincount(ds.y_test).tolist() == [2, 2, 2]
    rows = {row.tobytes(): label for row, label in zip(full.X_train, full.y_train, strict=True)}
    assert all(rows[row.tobytes()] == label for row, label in zip(ds.X_train, ds.y_train, strict=True))
    np.testing.assert_array_equal(load(cfg, seed=0).X_train, ds.X_train)
    assert not np.array_equal(load(cfg, seed=1).X_train, ds.X_train)
    cfg.n_train = 30
    assert load(cfg, seed=0).X_train is full.X_train


@pytest.mark.parametrize("n", [31, 2])
def test_subsample_out_of_range(cfg: DictConfig, tmp_path: Path, n: int) -> None:
    cfg.path = str(_write(tmp_path / "given"))
    cfg.n_train = n
    with pytest.raises(DataError, match=rf"^dataset\.n_train={n} is out of range: use 3\.\.30"):
        load(cfg, seed=0)


def test_synthetic_is_fixed_by_seed_data_and_separable() -> None:
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "synthetic.yaml")
    ds = load(cfg, seed=0)
    assert ds.X_train.shape == (600, 784) and ds.X_test.shape == (200, 784) and ds.X_train.dtype == np.float32
    assert 0 <= ds.X_train.min() and ds.X_train.max() <= 1 and ds.image_shape == (28, 28)
    assert np.bincount(ds.y_train).tolist() == [150] * 4 and np.bincount(ds.y_test).tolist() == [50] * 4
    _prepared.cache_clear()
    again = load(cfg, seed=7)
    np.testing.assert_array_equal(again.X_train, ds.X_train)
    assert again.sha256 == ds.sha256
    cfg.seed_data = 1
    assert load(cfg, seed=0).sha256 != ds.sha256
    reduced = PCA(10, random_state=0).fit_transform(ds.X_train)
    clusters = KMeans(4, n_init=10, random_state=0).fit_predict(reduced)
    assert adjusted_rand_score(ds.y_train, clusters) > 0.5


def test_synthetic_names_must_match_classes() -> None:
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "synthetic.yaml")
    cfg.class_names = ["only", "three", "names"]
    with pytest.raises(DataError, match="the train labels are 0..3 but dataset.class_names has 3 names"):
        load(cfg, seed=0)


def test_digits_are_scikit_learns_split_by_split_seed() -> None:
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "digits.yaml")
    ds = load(cfg, seed=0)
    assert ds.X_train.shape == (1437, 64) and ds.X_test.shape == (360, 64) and ds.image_shape == (8, 8)
    assert ds.X_train.dtype == np.float32 and 0 == ds.X_train.min() and ds.X_train.max() == 1
    assert np.bincount(ds.y_test).min() >= 35 and len(ds.class_names) == 10  # stratified: ~36 per digit
    assert load(cfg, seed=7).sha256 == ds.sha256  # the run seed subsamples; it does not re-split
    cfg.split_seed = 1
    assert load(cfg, seed=0).sha256 != ds.sha256
    cfg.test_size = 1797
    with pytest.raises(DataError, match=r"^dataset\.test_size=1797 is not allowed for 1797 rows: expected a fraction"):
        load(cfg, seed=0)


def test_main_reports_error_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "--path", "/proc/no-such-folder/data"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --path /proc/no-such-folder/data: cannot create it") and err.count("\n") == 1


def test_fetch_into_a_folder_copies_or_downloads_the_files_there(cfg: DictConfig, tmp_path: Path) -> None:
    _write(tmp_path / "system")
    first = fetch(cfg, progress=False, into=tmp_path / "shared")  # copied from the system path
    assert first == tmp_path / "shared" and sorted(p.name for p in first.iterdir()) == sorted(NAMES.values())
    _write(tmp_path / "mirror")
    for name in NAMES.values():
        (tmp_path / "system" / name).unlink()
    second = fetch(cfg, progress=False, into=tmp_path / "other")  # downloaded from the mirror, straight there
    assert sorted(p.name for p in second.iterdir()) == sorted(NAMES.values())
    cfg.path = str(second)
    assert load(cfg, seed=0).X_train.shape == (30, 6)  # a folder dataset.path can read
    assert not _cache(tmp_path).exists()  # nothing went to the user's cache


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the dataset-fashion-mnist package")
def test_real_fashion_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # empty cache: the system path must be used
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "fashion_mnist.yaml")
    cfg.mirrors = []  # never download
    full = load(cfg, seed=0)
    assert full.X_train.shape == (60000, 784) and full.X_test.shape == (10000, 784)
    assert np.bincount(full.y_train).tolist() == [6000] * 10 and np.bincount(full.y_test).tolist() == [1000] * 10
    assert full.sha256 == FASHION_SHA
    cfg.n_train, cfg.n_test = 2000, 500
    ds = load(cfg, seed=0)
    assert ds.X_train.shape == (2000, 784) and ds.X_test.shape == (500, 784)
    assert np.bincount(ds.y_train).tolist() == [200] * 10 and len(ds.class_names) == 10
    assert ds.sha256 == FASHION_SHA and ds.image_shape == (28, 28)
    assert main(["fetch"]) == 0
    assert str(FASHION_DIR) in capsys.readouterr().out


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the dataset-fashion-mnist package")
def test_the_idx_loader_on_the_fashion_folder_is_fashion_mnist(make_cfg) -> None:
    """`dataset=idx dataset.path=<the folder>`: the same data SHA-256 and the same metrics as dataset=fashion_mnist."""
    from clustersweep.tasks import cluster

    small = ["dataset.n_train=2000", "dataset.n_test=500", "plots.enabled=false", "reducer.k=20", "clusterer.n_init=2"]
    fashion = make_cfg(*small, tiny=False)
    idx = make_cfg("dataset=idx", f"dataset.path={FASHION_DIR}", "dataset.class_names=null", *small, tiny=False)
    assert load(idx.dataset, 0).sha256 == load(fashion.dataset, 0).sha256 == FASHION_SHA
    a, b = cluster.run(fashion), cluster.run(idx)
    scores = {k: v for k, v in a.metrics.items() if not is_cost(k)}
    assert scores == {k: v for k, v in b.metrics.items() if not is_cost(k)} and "nmi" in scores
