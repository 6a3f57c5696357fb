"""Datasets for the sweeps: IDX files (Fashion-MNIST) found locally or downloaded, scikit-learn's bundled
handwritten digits (a second labelled set, e.g. to choose a search objective on), and a synthetic set.

Every file is checked against its SHA-256 before it is used, so a run never quietly learns from corrupt data.
The full arrays are cached per process; each run takes its own stratified, seeded subsample of them.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import http.client
import math
import os
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_FILE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_TIMEOUT_S = 15
_CHUNK = 1 << 20
_REFETCH = "delete it and run `python -m clustersweep.data fetch`"


class DataError(Exception):
    """Bad or missing data; the message is one line: what was wrong, the value, how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for the pipelines.

    Without subsampling the arrays are the per-process cache itself, made read-only so that no run can alter
    what the next one sees: copy before changing them in place.
    """

    X_train: np.ndarray  # float32, (n, H*W), in [0, 1]
    y_train: np.ndarray  # int64, (n,)
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int]
    sha256: str  # identifies the full source data (before subsampling)


class _Full(NamedTuple):
    """The full, read-only arrays of one dataset, as cached per process."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    sha256: str


@dataclass(frozen=True)
class _IdxSource:
    """Everything that decides where the IDX files come from; hashable, so it keys the per-process cache."""

    name: str
    path: str | None
    cache_dir: str
    system_path: str | None
    system_package: str | None
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (file name, SHA-256 of the decompressed content) per _FILE_KEYS

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> _IdxSource:
        missing = [key for key in _FILE_KEYS if key not in cfg.files]
        if missing:
            raise DataError(f"dataset.files lacks {', '.join(missing)}; it needs {', '.join(_FILE_KEYS)}")
        cache_root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return cls(
            name=str(cfg.name),
            path=None if cfg.get("path") is None else str(cfg.path),
            cache_dir=str(Path(cache_root) / "clustersweep" / str(cfg.name)),
            system_path=None if cfg.get("system_path") is None else str(cfg.system_path),
            system_package=None if cfg.get("system_package") is None else str(cfg.system_package),
            mirrors=tuple(str(m) for m in cfg.get("mirrors") or ()),
            files=tuple((str(cfg.files[k].name), str(cfg.files[k].sha256).lower()) for k in _FILE_KEYS),
        )


def load(cfg: DictConfig, seed: int) -> Dataset:
    """Load the `dataset` config's data and take the run's stratified subsample (seeded, so runs repeat)."""
    class_names = [str(c) for c in cfg.class_names]
    if cfg.kind == "idx":
        full = _load_idx(_IdxSource.from_cfg(cfg))
    elif cfg.kind == "synthetic":
        if len(class_names) != cfg.n_classes:
            raise DataError(
                f"dataset.class_names has {len(class_names)} names but dataset.n_classes={cfg.n_classes}; "
                "give one name per class"
            )
        full = _synthetic(
            int(cfg.seed_data),
            int(cfg.n_classes),
            int(cfg.size_train),
            int(cfg.size_test),
            (int(cfg.image_shape[0]), int(cfg.image_shape[1])),
        )
    elif cfg.kind == "digits":
        full = _digits(int(cfg.seed_data), int(cfg.size_test))
    else:
        raise DataError(f"dataset.kind={cfg.kind!r} is unknown; use 'idx', 'digits' or 'synthetic'")
    _check_against_cfg(full, cfg, class_names)
    X_train, y_train = _subsample(full.X_train, full.y_train, cfg.n_train, seed, "dataset.n_train")
    X_test, y_test = _subsample(full.X_test, full.y_test, cfg.n_test, seed, "dataset.n_test")
    return Dataset(X_train, y_train, X_test, y_test, class_names, full.image_shape, full.sha256)


def fetch(cfg: DictConfig, progress: bool = True) -> Path:
    """Make sure the IDX files are available locally (for the set-up script); returns the folder used."""
    if cfg.kind != "idx":
        raise DataError(f"dataset.kind={cfg.kind!r} has no files to fetch; only kind 'idx' does")
    return _locate(_IdxSource.from_cfg(cfg), progress)[0]


def _check_against_cfg(full: _Full, cfg: DictConfig, class_names: list[str]) -> None:
    """Catch a config that does not describe the data, before it mislabels plots or metrics."""
    if full.image_shape != tuple(cfg.image_shape):
        raise DataError(
            f"the {cfg.name} images are {full.image_shape[0]}x{full.image_shape[1]} but "
            f"dataset.image_shape={list(cfg.image_shape)}; fix dataset.image_shape"
        )
    for split, y in (("train", full.y_train), ("test", full.y_test)):
        expected = cfg.get(f"size_{split}")
        if expected is not None and len(y) != expected:
            raise DataError(
                f"the {cfg.name} {split} split has {len(y)} samples but dataset.size_{split}={expected}; "
                f"fix dataset.size_{split}"
            )
        if len(y) and not 0 <= y.min() <= y.max() < len(class_names):
            raise DataError(
                f"the {cfg.name} {split} labels span {y.min()}..{y.max()} but dataset.class_names has "
                f"{len(class_names)} names; give one name per label"
            )


def _subsample(X: np.ndarray, y: np.ndarray, n: int | None, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Exactly n rows, drawn per class in proportion to the class sizes, so subsampling keeps the class mix.

    Largest-remainder allocation instead of train_test_split, which refuses n when fewer than one row per
    class would be left out.
    """
    if n is None or n == len(y):
        return X, y
    classes, counts = np.unique(y, return_counts=True)
    if not len(classes) <= n <= len(y):
        raise DataError(
            f"{what}={n} is out of range: use {len(classes)}..{len(y)} (at least one per class, at most all) "
            "or null for all"
        )
    share = n * counts / len(y)
    quota = np.floor(share).astype(np.int64)
    quota[np.argsort(quota - share, kind="stable")[: n - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)]
    idx = np.sort(np.concatenate(picks))
    return X[idx], y[idx]


@functools.lru_cache(maxsize=2)
def _load_idx(src: _IdxSource) -> _Full:
    """Locate, verify and parse the four files once per process (the full Fashion-MNIST takes ~220 MB)."""
    _, raw = _locate(src, progress=True)
    names = dict(zip(_FILE_KEYS, (name for name, _ in src.files), strict=True))
    X_train, y_train, shape = _images_and_labels(raw, names, "train")
    X_test, y_test, test_shape = _images_and_labels(raw, names, "test")
    if test_shape != shape:
        raise DataError(
            f"{names['train_images']} holds {shape} images but {names['test_images']} holds {test_shape}; "
            "the files do not belong together, check dataset.files"
        )
    sha = hashlib.sha256("\n".join(s for _, s in src.files).encode()).hexdigest()
    return _Full(*_read_only(X_train, y_train, X_test, y_test), shape, sha)


def _images_and_labels(
    raw: dict[str, bytes], names: dict[str, str], split: str
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    images = _parse_idx(raw[f"{split}_images"], 3, names[f"{split}_images"])
    labels = _parse_idx(raw[f"{split}_labels"], 1, names[f"{split}_labels"])
    if len(images) != len(labels):
        raise DataError(
            f"{names[f'{split}_images']} has {len(images)} images but {names[f'{split}_labels']} has "
            f"{len(labels)} labels; the files do not belong together, check dataset.files"
        )
    X = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=np.float32)
    return X, labels.astype(np.int64), (images.shape[1], images.shape[2])


def _parse_idx(raw: bytes, ndim: int, origin: str) -> np.ndarray:
    """Parse an unsigned-byte IDX file of `ndim` dimensions; anything unexpected is an error, not a guess."""
    magic = 0x800 + ndim
    header = 4 + 4 * ndim
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(
            f"{origin}: not an IDX file of {ndim} dimension(s) (magic 0x{raw[:4].hex()}, expected "
            f"0x{magic:08x}); check dataset.files"
        )
    if len(raw) < header:
        raise DataError(f"{origin}: the IDX header is cut short ({len(raw)} of {header} bytes); replace it")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - header != math.prod(dims):
        raise DataError(
            f"{origin}: {len(raw) - header} bytes of data but the header {dims} needs {math.prod(dims)}: "
            "the file is truncated or has trailing bytes; replace it"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _locate(src: _IdxSource, progress: bool) -> tuple[Path, dict[str, bytes]]:
    """Find a folder whose four files all verify, in the documented order; returns it and their IDX bytes."""
    if src.path is not None:
        raw, problems = _check_folder(Path(src.path), src.files, "replace it or unset dataset.path")
        if problems:
            raise DataError(f"dataset.path={src.path} is unusable: {'; '.join(problems)}")
        return Path(src.path), raw
    tried = ["dataset.path (not set)"]
    cache = Path(src.cache_dir)
    raw, problems = _check_folder(cache, src.files, _REFETCH)
    if not problems:
        return cache, raw
    tried.append(f"cache {cache} ({'; '.join(problems)})")
    if src.system_path is not None:
        system_raw, system_problems = _check_folder(Path(src.system_path), src.files, _REFETCH)
        if not system_problems:
            return Path(src.system_path), system_raw
        tried.append(f"system path {src.system_path} ({'; '.join(system_problems)})")
    tried += _download(src, cache, raw, progress)
    if len(raw) == len(_FILE_KEYS):
        return cache, raw
    fix = "set dataset.path=/folder/with/the/gz/files"
    if src.system_package is not None:
        fix += f", or: apt-get install {src.system_package}"
    raise DataError(f"no usable {src.name} data; tried: {'; '.join(tried)}. To fix: {fix}")


def _check_folder(folder: Path, files: tuple[tuple[str, str], ...], advice: str) -> tuple[dict[str, bytes], list[str]]:
    """The verified IDX bytes of the files present in `folder`, and what is wrong with the others."""
    raw: dict[str, bytes] = {}
    problems: list[str] = []
    for key, (name, sha) in zip(_FILE_KEYS, files, strict=True):
        file = folder / name
        if not file.is_file():
            problems.append(f"missing {name}")
            continue
        try:
            raw[key] = _verified(file, sha, str(file), advice)
        except DataError as e:
            problems.append(str(e))
    if not raw and all(p.startswith("missing ") for p in problems):
        problems = ["no files"]
    return raw, problems


def _verified(file: Path, sha: str, label: str, advice: str) -> bytes:
    """The decompressed content of `file`, if its SHA-256 is `sha` (content, not .gz bytes: see the YAML)."""
    try:
        packed = file.read_bytes()
    except OSError as e:
        raise DataError(f"{label}: cannot read it ({_one_line(e)}); check its permissions") from None
    try:
        raw = gzip.decompress(packed)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"{label}: cannot decompress it ({_one_line(e)}): the file is corrupt or truncated; {advice}"
        ) from None
    got = hashlib.sha256(raw).hexdigest()
    if got != sha:
        raise DataError(
            f"{label}: SHA-256 mismatch (got {got[:12]}…, expected {sha[:12]}…): "
            f"the file is corrupt or truncated; {advice}"
        )
    return raw


def _download(src: _IdxSource, cache: Path, have: dict[str, bytes], progress: bool) -> list[str]:
    """Fetch the files `have` lacks into the cache, from the mirrors in order; returns why mirrors failed.

    A mirror that fails once is left for the next one, so a dead mirror costs one timeout, not four.
    """
    if not src.mirrors:
        return ["download (no mirrors configured)"]
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return [f"download (cannot create the cache folder: {_one_line(e)})"]
    failures: list[str] = []
    for mirror in src.mirrors:
        for key, (name, sha) in zip(_FILE_KEYS, src.files, strict=True):
            if key in have:
                continue
            try:
                have[key] = _download_file(mirror.rstrip("/") + "/" + name, cache / name, sha, progress)
            except DataError as e:
                failures.append(f"mirror {e}")
                break
        else:
            break
    return failures


def _download_file(url: str, dest: Path, sha: str, progress: bool) -> bytes:
    """Download to a temp file beside `dest` and move it into place only once verified, so the cache never
    holds a partial or corrupt file; returns the IDX bytes."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write to the cache folder {dest.parent} ({_one_line(e)})") from None
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "clustersweep"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
            with tqdm(
                total=int(size) if size else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        raw = _verified(tmp, sha, url, "not kept")
        os.replace(tmp, dest)
        return raw
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"{url}: {_one_line(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=4)
def _synthetic(seed_data: int, n_classes: int, size_train: int, size_test: int, image_shape: tuple[int, int]) -> _Full:
    """Blurred spots at class-specific places on a circle, each sample jittered, dimmed and noisy.

    Fixed by seed_data alone, not the run seed, so the data and its sha256 are the same in every run; the
    classes are far apart, so a working pipeline must recover them (tests, demos).
    """
    rng = np.random.default_rng(seed_data)
    h, w = image_shape
    angles = np.pi / 2 - 2 * np.pi * np.arange(n_classes) / n_classes  # class 0 at the top, then clockwise
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    spots = centre + 0.3 * min(h, w) * np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # (row, col)
    X_train, y_train = _spots(rng, spots, size_train, image_shape)
    X_test, y_test = _spots(rng, spots, size_test, image_shape)
    return _in_memory(X_train, y_train, X_test, y_test, image_shape)


@functools.lru_cache(maxsize=2)
def _digits(seed_data: int, size_test: int) -> _Full:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI; shipped with scikit-learn, so no download), split into
    train and test by a stratified split fixed by seed_data, so the data and its sha256 are the same in every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    if not 10 <= size_test <= len(y) - 10:
        raise DataError(f"dataset.size_test={size_test} is out of range for the digits: use 10..{len(y) - 10}")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=size_test, stratify=y, random_state=seed_data)
    return _in_memory(X_train, y_train, X_test, y_test, digits.images.shape[1:])


def _in_memory(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, image_shape: tuple[int, int]
) -> _Full:
    """A dataset made in memory (not read from files): read-only, identified by the sha256 of its arrays."""
    sha = hashlib.sha256()
    for array in (X_train, y_train, X_test, y_test):
        sha.update(np.ascontiguousarray(array).tobytes())
    return _Full(*_read_only(X_train, y_train, X_test, y_test), tuple(image_shape), sha.hexdigest())


def _spots(
    rng: np.random.Generator, spots: np.ndarray, n: int, image_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    h, w = image_shape
    y = rng.permutation(np.arange(n) % len(spots))
    where = spots[y] + rng.uniform(-2, 2, (n, 2))
    rows = np.arange(h)[None, :, None] - where[:, 0, None, None]
    cols = np.arange(w)[None, None, :] - where[:, 1, None, None]
    sigma = 0.08 * min(h, w)
    X = rng.uniform(0.6, 1, (n, 1, 1)) * np.exp(-(rows**2 + cols**2) / (2 * sigma**2))
    X += rng.normal(0, 0.05, (n, h, w))
    return np.clip(X, 0, 1).reshape(n, h * w).astype(np.float32), y.astype(np.int64)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """`python -m clustersweep.data fetch [--path DIR]`: get Fashion-MNIST in place before the first sweep."""
    parser = argparse.ArgumentParser(prog="python -m clustersweep.data", description=main.__doc__)
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("--path", help="check this folder of .gz files instead (the dataset.path setting)")
    args = parser.parse_args(argv)
    try:
        cfg = OmegaConf.load(CONF_DIR / "dataset" / "fashion_mnist.yaml")
        if args.path is not None:
            cfg.path = args.path
        folder = fetch(cfg)
    except (DataError, OSError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    print(f"{cfg.name} data is ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
