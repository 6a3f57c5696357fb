"""The `idx` loader: an IDX set (the format of MNIST, Fashion-MNIST, KMNIST, EMNIST), gzip or raw, found locally or
downloaded; a file with a configured SHA-256 is checked before it is used, so a run never quietly learns from
corrupt data."""

from __future__ import annotations

import dataclasses
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clustersweep.data.full import Full, combined_sha256, read_only
from clustersweep.errors import DataError, one_line

_FILE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_TIMEOUT_S = 15
_CHUNK = 1 << 20
_REFETCH = "delete it and run `python -m clustersweep.data fetch`"


@dataclass(frozen=True)
class IdxSource:
    """Everything that decides where the IDX files come from."""

    name: str
    path: str | None
    cache_dir: str
    system_path: str | None
    system_package: str | None
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str, str | None], ...]  # (key, file name, SHA-256 of the decompressed content or None)


class IdxFiles:
    """Loader of an IDX set: `files` maps train_images (required), train_labels, test_images and test_labels (each
    optional: without test files the dataset splits train; without labels there are none) to {name, sha256}; a
    sha256 (of the decompressed content) is optional and checked when given.

    Looked for in this order: `path` (when set, the only place tried), the user cache
    (~/.cache/clustersweep/<name>), `system_path`, then downloaded from `mirrors` into the cache.
    """

    def __init__(
        self,
        name: str,
        files: Mapping[str, Mapping[str, str | None]],
        path: str | None = None,
        system_path: str | None = None,
        system_package: str | None = None,
        mirrors: list[str] | tuple[str, ...] = (),
    ) -> None:
        unknown = [key for key in files if key not in _FILE_KEYS]
        if unknown or "train_images" not in files:
            raise DataError(
                f"dataset.files has {', '.join(map(str, files)) or 'nothing'}; it takes train_images (required), "
                "train_labels, test_images and test_labels"
            )
        if files.get("test_labels") is not None and files.get("test_images") is None:
            raise DataError("dataset.files has test_labels without test_images; give both or neither")
        cache_root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        self.src = IdxSource(
            name=str(name),
            path=None if path is None else str(path),
            cache_dir=str(Path(cache_root) / "clustersweep" / str(name)),
            system_path=None if system_path is None else str(system_path),
            system_package=None if system_package is None else str(system_package),
            mirrors=tuple(str(m) for m in mirrors or ()),
            files=tuple(
                (
                    key,
                    str(files[key]["name"]),
                    None if not files[key].get("sha256") else str(files[key]["sha256"]).lower(),
                )
                for key in _FILE_KEYS
                if files.get(key) is not None
            ),
        )

    def load(self) -> Full:
        """Locate, check and parse the files (the full Fashion-MNIST takes ~220 MB)."""
        _, raw, shas = _locate(self.src, progress=True)
        names = {key: name for key, name, _ in self.src.files}
        X_train, y_train, shape = _images_and_labels(raw, names, "train")
        X_test, y_test, test_shape = _images_and_labels(raw, names, "test")
        if X_test is not None and test_shape != shape:
            raise DataError(
                f"{names['train_images']} holds {shape} images but {names['test_images']} holds {test_shape}; "
                "the files do not belong together, check dataset.files"
            )
        if (y_train is None) != (y_test is None) and X_test is not None:
            raise DataError("dataset.files gives labels for one split only; give train_labels and test_labels")
        sha = combined_sha256(shas[key] for key in _FILE_KEYS if key in shas)
        return Full(*read_only(X_train, y_train, X_test, y_test), shape, sha)

    def fetch(self, progress: bool = True, into: Path | None = None) -> Path:
        """Make sure the files are available locally (for the set-up script); returns the folder used. With
        `into`, that folder gets the verified files: those it lacks are copied from where they are found (the user
        cache, the system path) or downloaded into it (a shared folder for a cluster's nodes)."""
        src = self.src
        if into is None:
            return _locate(src, progress)[0]
        into = Path(into)
        try:
            into.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"--path {into}: cannot create it ({one_line(e)}); give a folder you can write") from None
        if not _check_folder(into, src.files, _REFETCH)[2]:
            return into
        cache = Path(src.cache_dir)
        found = cache if not _check_folder(cache, src.files, _REFETCH)[2] else None
        if found is None:  # the system path, else the mirrors: downloaded straight into `into`
            found = _locate(dataclasses.replace(src, path=None, cache_dir=str(into)), progress)[0]
        if found != into:
            for _, name, _ in src.files:
                _copy(_present(found, name), into / _present(found, name).name)
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


def _images_and_labels(
    raw: dict[str, bytes], names: dict[str, str], split: str
) -> tuple[np.ndarray | None, np.ndarray | None, tuple[int, int] | None]:
    if f"{split}_images" not in raw:
        return None, None, None
    images = _parse_idx(raw[f"{split}_images"], 3, names[f"{split}_images"])
    labels = _parse_idx(raw[f"{split}_labels"], 1, names[f"{split}_labels"]) if f"{split}_labels" in raw else None
    if labels is not None and len(images) != len(labels):
        raise DataError(
            f"{names[f'{split}_images']} has {len(images)} images but {names[f'{split}_labels']} has "
            f"{len(labels)} labels; the files do not belong together, check dataset.files"
        )
    X = np.divide(images.reshape(len(images), -1), np.float32(255), dtype=np.float32)
    y = None if labels is None else labels.astype(np.int64)
    return X, y, (images.shape[1], images.shape[2])


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


Files = tuple[tuple[str, str, "str | None"], ...]


def _locate(src: IdxSource, progress: bool) -> tuple[Path, dict[str, bytes], dict[str, str]]:
    """Find a folder whose files all verify, in the documented order; returns it, their IDX bytes by key and the
    SHA-256 of each file's content."""
    if src.path is not None:
        if not Path(src.path).expanduser().is_dir():
            raise DataError(f"dataset.path={src.path}: no such folder")
        raw, shas, problems = _check_folder(Path(src.path), src.files, "replace it or unset dataset.path")
        if problems == ["no files"]:
            expected = ", ".join(name for _, name, _ in src.files)
            raise DataError(f"dataset.path={src.path}: no IDX files there (expected {expected})")
        if problems:
            raise DataError(f"dataset.path={src.path} is unusable: {'; '.join(problems)}")
        return Path(src.path), raw, shas
    tried = ["dataset.path (not set)"]
    cache = Path(src.cache_dir)
    raw, shas, problems = _check_folder(cache, src.files, _REFETCH)
    if not problems:
        return cache, raw, shas
    tried.append(f"cache {cache} ({'; '.join(problems)})")
    if src.system_path is not None:
        system_raw, system_shas, system_problems = _check_folder(Path(src.system_path), src.files, _REFETCH)
        if not system_problems:
            return Path(src.system_path), system_raw, system_shas
        tried.append(f"system path {src.system_path} ({'; '.join(system_problems)})")
    tried += _download(src, cache, raw, shas, progress)
    if len(raw) == len(src.files):
        return cache, raw, shas
    fix = "set dataset.path=/folder/with/the/idx/files"
    if src.system_package is not None:
        fix += f", or: apt-get install {src.system_package}"
    raise DataError(f"no usable {src.name} data; tried: {'; '.join(tried)}. To fix: {fix}")


def _present(folder: Path, name: str) -> Path:
    """The file `name` in `folder`, or its gzip or raw twin (`x.gz` for `x`, `x` for `x.gz`) when only that is."""
    file = folder / name
    twin = folder / (name.removesuffix(".gz") if name.endswith(".gz") else f"{name}.gz")
    return twin if not file.is_file() and twin.is_file() else file


def _check_folder(folder: Path, files: Files, advice: str) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """The verified IDX bytes and content SHA-256s of the files present in `folder` (by key), and what is wrong
    with the others."""
    raw: dict[str, bytes] = {}
    shas: dict[str, str] = {}
    problems: list[str] = []
    for key, name, sha in files:
        file = _present(folder, name)
        if not file.is_file():
            problems.append(f"missing {name}")
            continue
        try:
            raw[key], shas[key] = _verified(file, sha, str(file), advice)
        except DataError as e:
            problems.append(str(e))
    if not raw and all(p.startswith("missing ") for p in problems):
        problems = ["no files"]
    return raw, shas, problems


def _verified(file: Path, sha: str | None, label: str, advice: str) -> tuple[bytes, str]:
    """The content of `file` (decompressed when it is gzip) and its SHA-256, which must be `sha` when that is
    given (content, not .gz bytes: Debian recompressed Fashion-MNIST's files, other bytes, the same content)."""
    try:
        packed = file.read_bytes()
    except OSError as e:
        raise DataError(f"{label}: cannot read it ({one_line(e)}); check its permissions") from None
    try:
        raw = gzip.decompress(packed) if packed[:2] == b"\x1f\x8b" else packed
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"{label}: cannot decompress it ({one_line(e)}): the file is corrupt or truncated; {advice}"
        ) from None
    got = hashlib.sha256(raw).hexdigest()
    if sha is not None and got != sha:
        raise DataError(
            f"{label}: SHA-256 mismatch (got {got[:12]}…, expected {sha[:12]}…): "
            f"the file is corrupt or truncated; {advice}"
        )
    return raw, got


def _download(src: IdxSource, cache: Path, have: dict[str, bytes], shas: dict[str, str], progress: bool) -> list[str]:
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
        for key, name, sha in src.files:
            if key in have:
                continue
            try:
                have[key], shas[key] = _download_file(mirror.rstrip("/") + "/" + name, cache / name, sha, progress)
            except DataError as e:
                failures.append(f"mirror {e}")
                break
        else:
            break
    return failures


def _download_file(url: str, dest: Path, sha: str | None, progress: bool) -> tuple[bytes, str]:
    """Download to a temp file beside `dest` and move it into place only once verified, so the cache never
    holds a partial or corrupt file; returns the IDX bytes and their SHA-256."""
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
