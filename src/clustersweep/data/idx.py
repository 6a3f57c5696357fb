"""IDX datasets (Fashion-MNIST's format): the four gzip files found locally or downloaded, each checked against
its SHA-256 before it is used, so a run never quietly learns from corrupt data."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.client
import math
import os
import shutil
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from clustersweep.data.arrays import Full, read_only
from clustersweep.errors import DataError

_FILE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_TIMEOUT_S = 15
_CHUNK = 1 << 20
_REFETCH = "delete it and run `python -m clustersweep.data fetch`"


@dataclass(frozen=True)
class IdxSource:
    """Everything that decides where the IDX files come from; hashable, so it keys the per-process cache."""

    name: str
    path: str | None
    cache_dir: str
    system_path: str | None
    system_package: str | None
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (file name, SHA-256 of the decompressed content) per _FILE_KEYS

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> IdxSource:
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


def fetch(cfg: DictConfig, progress: bool = True, into: Path | None = None) -> Path:
    """Make sure the IDX files are available locally (for the set-up script); returns the folder used. With
    `into`, that folder gets the four verified files: those it lacks are copied from where they are found
    (the user cache, the system path) or downloaded into it (a shared folder for a cluster's nodes)."""
    if cfg.kind != "idx":
        raise DataError(f"dataset.kind={cfg.kind!r} has no files to fetch; only kind 'idx' does")
    src = IdxSource.from_cfg(cfg)
    if into is None:
        return _locate(src, progress)[0]
    into = Path(into)
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"--path {into}: cannot create it ({one_line(e)}); give a folder you can write") from None
    if not _check_folder(into, src.files, _REFETCH)[1]:
        return into
    cache = Path(src.cache_dir)
    found = cache if not _check_folder(cache, src.files, _REFETCH)[1] else None
    if found is None:  # the system path, else the mirrors: downloaded straight into `into`
        found, _ = _locate(dataclasses.replace(src, path=None, cache_dir=str(into)), progress)
    if found != into:
        for name, _ in src.files:
            _copy(found / name, into / name)
    return into


def _copy(source: Path, dest: Path) -> None:
    """Copy a verified file beside its destination first, then move it into place: never a partial file."""
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot copy {source} to {dest.parent} ({one_line(e)}); check its permissions") from None


@functools.lru_cache(maxsize=2)
def load_idx(src: IdxSource) -> Full:
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
    return Full(*read_only(X_train, y_train, X_test, y_test), shape, sha)


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


def _locate(src: IdxSource, progress: bool) -> tuple[Path, dict[str, bytes]]:
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
        raise DataError(f"{label}: cannot read it ({one_line(e)}); check its permissions") from None
    try:
        raw = gzip.decompress(packed)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"{label}: cannot decompress it ({one_line(e)}): the file is corrupt or truncated; {advice}"
        ) from None
    got = hashlib.sha256(raw).hexdigest()
    if got != sha:
        raise DataError(
            f"{label}: SHA-256 mismatch (got {got[:12]}…, expected {sha[:12]}…): "
            f"the file is corrupt or truncated; {advice}"
        )
    return raw


def _download(src: IdxSource, cache: Path, have: dict[str, bytes], progress: bool) -> list[str]:
    """Fetch the files `have` lacks into the cache, from the mirrors in order; returns why mirrors failed.

    A mirror that fails once is left for the next one, so a dead mirror costs one timeout, not four.
    """
    if not src.mirrors:
        return ["download (no mirrors configured)"]
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return [f"download (cannot create the cache folder: {one_line(e)})"]
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
        raise DataError(f"cannot write to the cache folder {dest.parent} ({one_line(e)})") from None
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
        raise DataError(f"{url}: {one_line(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
