"""The `arrays` loader: a feature matrix from a `.npy`, `.npz`, `.csv` or `.parquet` file, one row per sample (or
an array of images, one per sample), with optional labels (a column, an array of the `.npz`, or a file of their
own), and optionally a test file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from clustersweep.data.full import Full, combined_sha256, file_sha256, read_only
from clustersweep.errors import DataError, one_line

FORMATS = (".npy", ".npz", ".csv", ".parquet")
LABEL_LIKE = {"label", "labels", "target", "targets", "class", "classes", "category", "y"}  # said when read as features
LABEL_FORMATS = (".npy", ".txt", ".csv")

log = logging.getLogger(__name__)


class ArrayFile:
    """Loader of a feature matrix. `path` (and `test_path`, else the dataset splits it): `.npy` (memory-mapped,
    so a large float32 file is not copied), `.npz` (the array `features`, by default `X` or its only array),
    `.csv` or `.parquet` (the columns `features`, by default every column but the labels; all numeric). An array
    of shape (N, H, W) or (N, H, W, C), C 1 or 3, is N images: each flattened to a row, the image shape its own
    (a test file's must be the same).
    Labels: `labels` names a column or an `.npz` array; or `labels_path` (and `test_labels_path`) names a `.npy`,
    `.txt` (one per line) or `.csv` (its first column) file. None of them: no labels."""

    def __init__(
        self,
        name: str,
        path: str,
        test_path: str | None = None,
        features: str | list[str] | None = None,
        labels: str | None = None,
        labels_path: str | None = None,
        test_labels_path: str | None = None,
    ) -> None:
        if labels is not None and labels_path is not None:
            raise DataError("dataset.labels and dataset.labels_path are both set; give the labels one way")
        if test_labels_path is not None and (labels_path is None or test_path is None):
            raise DataError("dataset.test_labels_path needs dataset.test_path and dataset.labels_path")
        self.name = name
        self.path, self.test_path = path, test_path
        self.features = list(features) if isinstance(features, list | tuple) else features
        self.labels, self.labels_path, self.test_labels_path = labels, labels_path, test_labels_path

    def load(self) -> Full:
        X_train, y_train, shape = self._read(self.path, "dataset.path", self.labels_path, "dataset.labels_path")
        X_test = y_test = None
        if self.test_path is not None:
            X_test, y_test, test_shape = self._read(
                self.test_path, "dataset.test_path", self.test_labels_path, "dataset.test_labels_path"
            )
            if test_shape != shape:
                raise DataError(
                    f"dataset.test_path={self.test_path} holds {_row(test_shape, X_test)} but dataset.path holds "
                    f"{_row(shape, X_train)}; the files must hold rows of the same shape"
                )
            if X_test.shape[1] != X_train.shape[1]:
                raise DataError(
                    f"dataset.test_path={self.test_path} has {X_test.shape[1]} features per row but dataset.path has "
                    f"{X_train.shape[1]}; the files must have the same columns"
                )
            if (y_test is None) != (y_train is None):
                raise DataError("labels for one file only: give labels for both dataset.path and dataset.test_path")
        files = [f for f in (self.path, self.test_path, self.labels_path, self.test_labels_path) if f is not None]
        settings = json.dumps({"features": self.features, "labels": self.labels}, sort_keys=True)
        sha = combined_sha256([*(file_sha256(Path(f)) for f in files), settings])
        return Full(*read_only(X_train, y_train, X_test, y_test), shape, sha)

    def _read(
        self, path: str, key: str, labels_path: str | None, labels_key: str
    ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]:
        """(rows, labels or None, the rows' image shape or None) of one file."""
        file = _existing(path, key, FORMATS)
        shape = None
        if file.suffix == ".npy":
            (X, shape), y = _npy(file, key), None
        elif file.suffix == ".npz":
            (X, shape), y = self._npz(file, key)
        else:
            X, y = self._table(file, key)
        if labels_path is not None:
            y = _labels_file(_existing(labels_path, labels_key, LABEL_FORMATS), labels_key)
            if len(y) != len(X):
                raise DataError(f"{labels_key}={labels_path} has {len(y)} labels but {key}={path} has {len(X)} rows")
        return X, y, shape

    def _npz(self, file: Path, key: str) -> tuple[tuple[np.ndarray, tuple[int, ...] | None], np.ndarray | None]:
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as e:
            raise DataError(f"{key}={file}: cannot read it as .npz ({one_line(e)})") from None
        name = self.features if isinstance(self.features, str) else None
        if name is None:
            rest = [k for k in arrays if k != self.labels]
            name = "X" if "X" in arrays else (rest[0] if len(rest) == 1 else None)
        if name not in arrays:
            raise DataError(
                f"{key}={file} has no array {name or '(features)'}: it has {', '.join(arrays)}; "
                "set dataset.features to the array of features"
            )
        y = None
        if self.labels is not None:
            if self.labels not in arrays:
                raise DataError(f"dataset.labels={self.labels!r} is not an array of {file}: it has {', '.join(arrays)}")
            y = arrays[self.labels]
        return _numeric(arrays[name], f"{key}={file} (array {name})"), y

    def _table(self, file: Path, key: str) -> tuple[np.ndarray, np.ndarray | None]:
        import pandas as pd

        try:
            df = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
        except (OSError, ValueError, ImportError) as e:
            raise DataError(f"{key}={file}: cannot read it ({one_line(e)})") from None
        except Exception as e:  # noqa: BLE001 - pandas' parsers raise their own kinds
            raise DataError(f"{key}={file}: cannot read it as {file.suffix} ({one_line(e)})") from None
        columns = [str(c) for c in df.columns]
        df.columns = columns
        y = None
        if self.labels is not None:
            if self.labels not in columns:
                raise DataError(f"dataset.labels={self.labels!r} is not a column of {file}: it has {_few(columns)}")
            y = df[self.labels].to_numpy()
        wanted = self.features if isinstance(self.features, list) else [self.features] if self.features else None
        if wanted is None:
            wanted = [c for c in columns if c != self.labels]
            for c in [c for c in wanted if c.strip().lower() in LABEL_LIKE]:
                log.warning(
                    "%s=%s: the column %r is read as a feature, as every column but the labels is; if it holds the "
                    "labels, give dataset.labels=%s",
                    key,
                    file,
                    c,
                    c,
                )
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(f"dataset.features names {_few(missing)}, not columns of {file}: it has {_few(columns)}")
        text = [c for c in wanted if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]
        if text:
            raise DataError(
                f"{key}={file}: the columns {_few(text)} are not numeric; drop them or name the numeric ones in "
                "dataset.features (and the labels column in dataset.labels)"
            )
        return _numeric(df[wanted].to_numpy(dtype=np.float32), f"{key}={file}")[0], y


def _existing(path: str, key: str, formats: tuple[str, ...]) -> Path:
    file = Path(path).expanduser()
    if file.suffix.lower() not in formats:
        raise DataError(f"{key}={path}: unknown format {file.suffix or '(no extension)'!r}; use {', '.join(formats)}")
    if not file.is_file():
        raise DataError(f"{key}={path}: no such file")
    return file


def _npy(file: Path, key: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """The matrix (and its image shape), memory-mapped (read-only) when it is float32 already, else read and
    converted."""
    try:
        X = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{key}={file}: cannot read it as .npy ({one_line(e)})") from None
    return _numeric(X, f"{key}={file}")


def _numeric(X: np.ndarray, what: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """A 2-D float32 matrix, one row per sample, and the rows' image shape: (N, H, W) and (N, H, W, C) arrays are
    images (C 1: grey, (H, W); C 3: colour), each flattened to a row (row-major: of a C-ordered memory map, a
    view, no copy). Or one line on why not."""
    shape = tuple(int(s) for s in X.shape[1:])
    if X.ndim not in (2, 3, 4) or (X.ndim == 4 and shape[2] not in (1, 3)):
        raise DataError(
            f"{what} has shape {X.shape}; expected (rows, features), (rows, height, width) images or (rows, "
            "height, width, channels) images with 1 or 3 channels"
        )
    if not (np.issubdtype(X.dtype, np.number) and not np.issubdtype(X.dtype, np.complexfloating)):
        raise DataError(f"{what} holds {X.dtype} values; expected numbers")
    image_shape = None if X.ndim == 2 else shape[:2] if X.ndim == 3 or shape[2] == 1 else shape
    X = X.reshape(len(X), -1) if X.ndim > 2 else X
    return (X if X.dtype == np.float32 else X.astype(np.float32)), image_shape


def _labels_file(file: Path, key: str) -> np.ndarray:
    try:
        if file.suffix == ".npy":
            y = np.load(file, allow_pickle=False)
        elif file.suffix == ".txt":
            y = np.array([line.strip() for line in file.read_text().splitlines() if line.strip()])
        else:
            import pandas as pd

            y = pd.read_csv(file).iloc[:, 0].to_numpy()
    except Exception as e:  # noqa: BLE001 - numpy's and pandas' readers raise their own kinds
        raise DataError(f"{key}={file}: cannot read the labels ({one_line(e)})") from None
    if y.ndim != 1:
        raise DataError(f"{key}={file} has shape {y.shape}; expected one label per row")
    return y


def _row(shape: tuple[int, ...] | None, X: np.ndarray) -> str:
    """What one row is, for a message: 'images of 28x28' or '784 features per row'."""
    return f"images of {'x'.join(map(str, shape))}" if shape else f"{X.shape[1]} features per row"


def _few(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" … ({len(names)} in all)" if len(names) > n else "")
