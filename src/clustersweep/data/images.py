"""The `image_folder` loader: a folder of PNG/JPEG images read with Pillow; class sub-folders give labels."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clustersweep.data.full import Full, combined_sha256, read_only
from clustersweep.errors import DataError, one_line

SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {"grey": "L", "rgb": "RGB"}


class ImageFolder:
    """Loader of image files. `path` (and `test_path`, else the dataset splits it) holds the images, or one
    sub-folder of images per class (then the sub-folders' names are the labels). Grey or RGB (`mode`: auto, grey
    or rgb; auto is RGB when any image has colour); every image is resized to `image_size` [H, W] when given, else
    all must have the same size. Pixels are scaled to [0, 1], rows are the flattened H×W (×3) images."""

    def __init__(
        self,
        name: str,
        path: str,
        test_path: str | None = None,
        image_size: list[int] | None = None,
        mode: str = "auto",
    ) -> None:
        if mode not in ("auto", *MODES):
            raise DataError(f"dataset.mode={mode!r} is not allowed: expected auto, grey or rgb")
        if image_size is not None and (
            not isinstance(image_size, list | tuple)
            or len(image_size) != 2
            or not all(isinstance(s, int) and s > 0 for s in image_size)
        ):
            given = list(image_size) if isinstance(image_size, list | tuple) else image_size
            raise DataError(
                f"dataset.image_size={given!r} is not allowed: expected [height, width], two integers > 0 "
                "(e.g. dataset.image_size=[64,64])"
            )
        self.name, self.path, self.test_path, self.mode = name, path, test_path, mode
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))

    def load(self) -> Full:
        train, train_classes = _listing(self.path, "dataset.path")
        test, test_classes = _listing(self.test_path, "dataset.test_path") if self.test_path else ([], None)
        classes = train_classes
        if self.test_path and (train_classes is None) != (test_classes is None):
            raise DataError("class sub-folders in one of dataset.path and dataset.test_path only; use them in both")
        if test_classes is not None and set(test_classes) - set(train_classes or []):
            extra = sorted(set(test_classes) - set(train_classes or []))
            raise DataError(f"dataset.test_path has classes {', '.join(extra)} that dataset.path does not")
        files = [f for f, _ in train + test]
        mode = MODES.get(self.mode) or _auto_mode(files)
        X = _read(files, mode, self.image_size, self.path)
        n = len(train)
        y = None if classes is None else np.array([classes.index(c) for _, c in train + test], dtype=np.int64)
        h, w = self.image_size or _size_of(files[0])
        shape = (h, w) if mode == "L" else (h, w, 3)
        roots = [Path(self.path)] + ([Path(self.test_path)] if self.test_path else [])
        sha = _files_sha256(files, roots, {"image_size": self.image_size, "mode": mode})
        X_test = X[n:] if self.test_path else None
        y_train = None if y is None else y[:n]
        y_test = None if y is None or not self.test_path else y[n:]
        full = Full(*read_only(X[:n], y_train, X_test, y_test), shape, sha, classes)
        return full._replace(row_names=[f.relative_to(Path(self.path).expanduser()).as_posix() for f, _ in train])


def _listing(path: str, key: str) -> tuple[list[tuple[Path, str | None]], list[str] | None]:
    """The image files under `path` with their class (sub-folder) or None, in a fixed order, and the classes."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{key}={path}: no such folder")
    top = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    nested = {d.name: sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES) for d in subs}
    nested = {c: files for c, files in nested.items() if files}
    if top and nested:
        raise DataError(
            f"{key}={path} has images both at its top and in sub-folders ({', '.join(nested)}); put every image in "
            "a class sub-folder, or all at the top (no labels)"
        )
    if not top and not nested:
        raise DataError(f"{key}={path} has no {', '.join(SUFFIXES)} images, at its top or in sub-folders")
    if top:
        return [(f, None) for f in top], None
    return [(f, c) for c, files in nested.items() for f in files], list(nested)


def _open(file: Path):  # noqa: ANN202 - a PIL image
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(file)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{file}: cannot read it as an image ({one_line(e)})") from None


def _auto_mode(files: list[Path]) -> str:
    """RGB when any image has colour channels, else grey (reads headers only)."""
    for file in files:
        with _open(file) as im:
            if im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                return "RGB"
    return "L"


def _size_of(file: Path) -> tuple[int, int]:
    with _open(file) as im:
        return im.height, im.width


def _read(files: list[Path], mode: str, image_size: tuple[int, int] | None, where: str) -> np.ndarray:
    from PIL import Image

    first = image_size or _size_of(files[0])
    channels = 1 if mode == "L" else 3
    X = np.empty((len(files), first[0] * first[1] * channels), dtype=np.float32)
    for i, file in enumerate(tqdm(files, desc="images", unit="img", file=sys.stderr, disable=len(files) < 1000)):
        with _open(file) as im:
            try:
                im = im.convert(mode)
                if image_size is not None and (im.height, im.width) != image_size:
                    im = im.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(im, dtype=np.float32)
            except OSError as e:
                raise DataError(f"{file}: cannot read it as an image ({one_line(e)})") from None
        if pixels.shape[:2] != first:
            raise DataError(
                f"{file} is {pixels.shape[1]}x{pixels.shape[0]} but {files[0].name} is {first[1]}x{first[0]}: the "
                f"images under {where} differ in size; set dataset.image_size=[height,width] to resize them all"
            )
        X[i] = pixels.reshape(-1) / 255.0
    return X


def _files_sha256(files: list[Path], roots: list[Path], settings: dict) -> str:
    """Over every file's place (relative to its root: the class sub-folder counts) and bytes, and the settings."""
    parts = []
    for file in files:
        which, root = next((i, r) for i, r in enumerate(roots) if file.is_relative_to(r.expanduser()))
        rel = file.relative_to(root.expanduser()).as_posix()
        parts.append(f"{which}:{rel}:{hashlib.sha256(file.read_bytes()).hexdigest()}")
    return combined_sha256([*parts, json.dumps(settings, sort_keys=True)])
