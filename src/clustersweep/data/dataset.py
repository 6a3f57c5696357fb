"""A run's data: the dataset its config names (`_target_`: a loader, `load()` → `Full`), checked, split when the
loader gives one set, its labels encoded; then the run's seeded subsample of each split. The full arrays are
cached per process; each run takes its own subsample of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from clustersweep.data.full import Full, combined_sha256, read_only
from clustersweep.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# The keys of a dataset config that are the dataset's, not its loader's (every other key is the loader's argument).
COMMON = ("experiment", "n_train", "n_test", "test_size", "split_seed", "class_names", "image_shape")
_ROWS = 65_536  # rows checked for NaN at a time: a memory-mapped file is never read whole


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for the pipelines.

    Without subsampling the arrays are the per-process cache itself, made read-only so that no run can alter
    what the next one sees: copy before changing them in place.
    """

    X_train: np.ndarray  # float32, (n, d)
    y_train: np.ndarray | None  # int64 codes of class_names, or None: no labels
    X_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str] | None
    image_shape: tuple[int, ...] | None  # (H, W) or (H, W, C) when rows are images, else None
    sha256: str  # identifies the full data (before subsampling): every source and every setting that shapes it
    name: str = ""
    source: str = ""  # where it was read from, for the run's dataset input
    subsample: str = ""  # "n_train=…, seed=…" when train is a subsample of the full train, else ""
    value_range: tuple[float, float] | None = None  # (min, max) of the full train's values

    @property
    def has_labels(self) -> bool:
        return self.y_train is not None

    def train_input(self) -> tuple[str, str]:
        """(name, digest) of the rows a run fits on, its dataset input: the data's own for all of train; a
        subsample is a dataset of its own, named and hashed by its size and seed (which fix its rows)."""
        if not self.subsample:
            return self.name, self.sha256
        digest = hashlib.sha256(f"{self.sha256} {self.subsample}".encode()).hexdigest()
        return f"{self.name} ({self.subsample})", digest


def build_loader(cfg: DictConfig | dict) -> Any:
    """The dataset config's loader, built (nothing is read yet); a bad argument is one line."""
    spec = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    args = {k: v for k, v in spec.items() if k not in COMMON}
    if "_target_" not in args:
        raise ConfigError(f"dataset={spec.get('name')} has no _target_: name its loader (docs/reference.md, Datasets)")
    try:
        return instantiate(args, _convert_="all")
    except InstantiationException as e:
        if isinstance(e.__cause__, DataError):
            raise e.__cause__ from None
        cause = " ".join(str(e.__cause__ or e).split()).split(" full_key:")[0]
        raise ConfigError(f"dataset ({args['_target_']}) cannot be built: {cause}") from None


def load(cfg: DictConfig, seed: int) -> Dataset:
    """Load the `dataset` config's data and take the run's seeded subsample (stratified with labels)."""
    spec = OmegaConf.to_container(cfg, resolve=True)
    full = _prepared(json.dumps({k: v for k, v in spec.items() if k not in ("n_train", "n_test", "experiment")}))
    X_train, y_train = _subsample(full.X_train, full.y_train, spec.get("n_train"), seed, "dataset.n_train")
    X_test, y_test = _subsample(full.X_test, full.y_test, spec.get("n_test"), seed, "dataset.n_test")
    source = str(spec.get("path") or spec.get("_target_", ""))
    subsample = f"n_train={len(X_train)}, seed={seed}" if len(X_train) < len(full.X_train) else ""
    shape, names = full.image_shape, full.class_names
    return Dataset(
        X_train, y_train, X_test, y_test, names, shape, full.sha256, spec["name"], source, subsample, full.value_range
    )


@functools.lru_cache(maxsize=2)
def _prepared(spec_json: str) -> Full:
    """The loader's arrays checked, split and labelled, once per process per dataset config."""
    spec = json.loads(spec_json)
    raw = build_loader(spec).load()
    check_finite(raw.X_train, "the train rows")
    if raw.X_test is not None:
        check_finite(raw.X_test, "the test rows")
    shape = _image_shape(raw, spec.get("image_shape"))
    full = raw if raw.X_test is not None else _split(raw, spec.get("test_size", 0.2), spec.get("split_seed", 0))
    y_train, y_test, names = _labels(full, spec.get("class_names"))
    value_range = (float(full.X_train.min()), float(full.X_train.max())) if full.X_train.size else None
    return Full(*read_only(full.X_train, y_train, full.X_test, y_test), shape, full.sha256, names, None, value_range)


def check_finite(X: np.ndarray, what: str) -> None:
    for start in range(0, len(X), _ROWS):
        block = X[start : start + _ROWS]
        if not np.isfinite(block).all():
            row, col = np.argwhere(~np.isfinite(block))[0]
            raise DataError(
                f"{what} hold NaN or infinite values (row {start + row}, column {col}: {block[row, col]}); "
                "remove or impute them first"
            )


def _image_shape(raw: Full, configured: list[int] | None) -> tuple[int, ...] | None:
    """The rows' image shape: the loader's (read from the files), else `dataset.image_shape`; the two must agree,
    and the shape must hold exactly one row."""
    shape = None if configured is None else tuple(int(s) for s in configured)
    if shape is not None and (
        len(shape) not in (2, 3) or min(shape) < 1 or (len(shape) == 3 and shape[2] not in (1, 3))
    ):
        raise DataError(
            f"dataset.image_shape={list(shape)} is not allowed: expected [height, width] or [height, width, 3]"
        )
    if raw.image_shape is not None and shape is not None and tuple(raw.image_shape) != shape:
        raise DataError(
            f"the data's rows are images of {'x'.join(map(str, raw.image_shape))}, as the loader reads them, but "
            f"dataset.image_shape={list(shape)}; fix dataset.image_shape or leave it null (the data gives it)"
        )
    shape = shape or (None if raw.image_shape is None else tuple(raw.image_shape))
    width = raw.X_train.shape[1]
    if shape is not None and math.prod(shape) != width:
        raise DataError(
            f"dataset.image_shape={list(shape)} holds {math.prod(shape)} values but the rows have {width}; "
            "give the shape of one row's image, or null when the rows are not images"
        )
    return shape


def _split(raw: Full, test_size: float | int, seed: int) -> Full:
    """One set split into train and test, seeded (`dataset.split_seed`), stratified when there are labels."""
    from sklearn.model_selection import train_test_split

    n = len(raw.X_train)
    ok = (isinstance(test_size, int) and 1 <= test_size <= n - 2) or (
        isinstance(test_size, float) and 0 < test_size < 1 and 1 <= round(n * test_size) <= n - 2
    )
    if not ok:
        raise DataError(
            f"dataset.test_size={test_size!r} is not allowed for {n} rows: expected a fraction in (0, 1) or a count "
            f"in 1..{n - 2}, leaving at least 2 rows to train on"
        )
    rows = np.arange(n)
    stratify = raw.y_train
    if stratify is not None and np.unique(stratify, return_counts=True)[1].min() < 2:
        log.warning("a class has a single sample: the test split is not stratified")
        stratify = None
    try:
        train, test = train_test_split(rows, test_size=test_size, stratify=stratify, random_state=seed)
    except ValueError:  # too few test rows for one per class
        log.warning(
            "dataset.test_size=%s is too small to hold every class: the test split is not stratified", test_size
        )
        train, test = train_test_split(rows, test_size=test_size, random_state=seed)
    y = raw.y_train
    split = json.dumps({"test_size": test_size, "split_seed": seed})
    return raw._replace(
        X_train=raw.X_train[train],
        X_test=raw.X_train[test],
        y_train=None if y is None else y[train],
        y_test=None if y is None else y[test],
        sha256=combined_sha256([raw.sha256, split]),
    )


def _labels(full: Full, configured: list[str] | None) -> tuple[np.ndarray | None, np.ndarray | None, list[str] | None]:
    """Labels as int64 codes of the class names: `dataset.class_names` (labels must be 0..n-1), else the loader's,
    else the sorted distinct label values."""
    if full.y_train is None:
        return None, None, None
    y_train, y_test = np.asarray(full.y_train), np.asarray(full.y_test)
    if configured is not None or full.class_names is not None:
        names = [str(c) for c in (configured if configured is not None else full.class_names)]
        for split, y in (("train", y_train), ("test", y_test)):
            if not np.issubdtype(y.dtype, np.integer) or (len(y) and not 0 <= y.min() <= y.max() < len(names)):
                span = f"{y.min()}..{y.max()}" if np.issubdtype(y.dtype, np.integer) else f"{y.dtype} values"
                raise DataError(
                    f"the {split} labels are {span} but dataset.class_names has {len(names)} names; give one name "
                    "per label 0..n-1, or leave dataset.class_names null"
                )
        return y_train.astype(np.int64), y_test.astype(np.int64), names
    values, codes = np.unique(
        np.concatenate(
            [
                y_train.astype(str) if y_train.dtype.kind in "OUS" else y_train,
                y_test.astype(str) if y_test.dtype.kind in "OUS" else y_test,
            ]
        ),
        return_inverse=True,
    )
    codes = codes.astype(np.int64)
    return codes[: len(y_train)], codes[len(y_train) :], [str(v) for v in values]


def _subsample(
    X: np.ndarray, y: np.ndarray | None, n: int | None, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Exactly n rows, seeded: with labels drawn per class in proportion to the class sizes, so subsampling keeps
    the class mix (largest-remainder allocation instead of train_test_split, which refuses n when fewer than one
    row per class would be left out); without labels a random n."""
    if n is None or n == len(X):
        return X, y
    rng = np.random.default_rng(seed)
    if y is None:
        if not 1 <= n <= len(X):
            raise DataError(f"{what}={n} is out of range: use 1..{len(X)} or null for all")
        idx = np.sort(rng.permutation(len(X))[:n])
        return X[idx], None
    classes, counts = np.unique(y, return_counts=True)
    if not len(classes) <= n <= len(y):
        raise DataError(
            f"{what}={n} is out of range: use {len(classes)}..{len(y)} (at least one per class, at most all) "
            "or null for all"
        )
    share = n * counts / len(y)
    quota = np.floor(share).astype(np.int64)
    quota[np.argsort(quota - share, kind="stable")[: n - quota.sum()]] += 1
    picks = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)]
    idx = np.sort(np.concatenate(picks))
    return X[idx], y[idx]
