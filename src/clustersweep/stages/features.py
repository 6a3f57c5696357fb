"""Image features learned without labels, as a reducer step: Coates & Ng's single-layer network (2011).

Pixels compare images point by point, so a shirt and a T-shirt differ little more than two shirts a few pixels
apart. Patch codes describe an image by which local shapes (edges, corners, collars, sleeve ends) occur in
which region of it: k-means learns `n_filters` shapes from normalized, whitened `patch`×`patch` patches of the
training images; each patch of an image is coded by how much closer it is to each shape than on average (the
"triangle" code); the codes are summed over a `pool`×`pool` grid of regions. One layer, no labels, no gradient
descent; then PCA and UMAP as for pixels (`reducer=patches_umap`).

Coates, Lee & Ng, "An Analysis of Single-Layer Networks in Unsupervised Feature Learning", AISTATS 2011.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import MiniBatchKMeans
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm import tqdm

CONTRAST_EPS = 0.01  # added to a patch's variance before dividing by its root: flat patches stay near zero
WHITEN_EPS = 0.1  # added to the eigenvalues before ZCA whitening: the faintest directions are not blown up


class PatchCodes(TransformerMixin, BaseEstimator):
    """Flattened images (n, H·W), dense → `n_filters`·`pool`² features per image; fitted on the train images only.
    After fit: `mean_`, `whitening_`, `filters_`, `n_features_in_` (H·W)."""

    _parameter_constraints: dict = {
        "image_shape": [list, tuple],
        "n_filters": [Interval(Integral, 2, None, closed="left")],
        "patch": [Interval(Integral, 2, None, closed="left")],  # a 1-pixel patch has no shape: normalized, it is 0
        "pool": [Interval(Integral, 1, None, closed="left")],
        "n_patches": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        image_shape: tuple[int, int] = (28, 28),
        n_filters: int = 64,
        patch: int = 5,
        pool: int = 3,
        n_patches: int = 200_000,
        batch_size: int = 1000,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.image_shape = image_shape
        self.n_filters = n_filters
        self.patch = patch
        self.pool = pool
        self.n_patches = n_patches
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        """scikit-learn's checks, then the geometry: a patch fits in an image, a pooling region holds a patch."""
        super()._validate_params()
        h, w = (int(s) for s in self.image_shape)
        if self.patch > min(h, w):
            raise ValueError(
                f"The 'patch' parameter of PatchCodes must be at most {min(h, w)} for {h}×{w} images."
                f" Got {self.patch} instead."
            )
        if self.n_patches < self.n_filters:
            raise ValueError(
                f"The 'n_patches' parameter of PatchCodes must be at least n_filters={self.n_filters}"
                f" (k-means needs a patch per filter). Got {self.n_patches} instead."
            )
        side = min(h, w) - self.patch + 1
        if self.pool > side:
            raise ValueError(
                f"The 'pool' parameter of PatchCodes must be at most {side} for {h}×{w} images and"
                f" {self.patch}×{self.patch} patches. Got {self.pool} instead."
            )

    def fit(self, X: np.ndarray, y: None = None) -> PatchCodes:
        """Learn the whitening and the filters from `n_patches` patches drawn at random positions of X."""
        self._validate_params()
        images = self._images(validate_data(self, X, dtype=np.float32))
        rng = check_random_state(self.random_state)
        p = self.patch
        n, h, w = images.shape
        which, top, left = (rng.randint(m, size=self.n_patches) for m in (n, h - p + 1, w - p + 1))
        patches = np.stack([images[which, top + i, left + j] for i in range(p) for j in range(p)], axis=1)
        patches = _contrast_normalized(patches)
        self.mean_ = patches.mean(axis=0)
        centred = patches - self.mean_
        eigval, eigvec = np.linalg.eigh(np.cov(centred, rowvar=False))
        self.whitening_ = ((eigvec / np.sqrt(eigval + WHITEN_EPS)) @ eigvec.T).astype(np.float32)
        kmeans = MiniBatchKMeans(self.n_filters, n_init=3, batch_size=4096, random_state=rng)
        self.filters_ = kmeans.fit(centred @ self.whitening_).cluster_centers_.astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        images = self._images(validate_data(self, X, dtype=np.float32, reset=False))
        out = np.empty((len(images), self.n_filters * self.pool**2), dtype=np.float32)
        starts = range(0, len(images), self.batch_size)
        for start in tqdm(starts, desc="patch codes", unit="batch", disable=not self.verbose, mininterval=5):
            out[start : start + self.batch_size] = self._codes(images[start : start + self.batch_size])
        return out

    def _codes(self, images: np.ndarray) -> np.ndarray:
        p = self.patch
        windows = sliding_window_view(images, (p, p), axis=(1, 2))  # (n, rows, cols, p, p)
        n, rows, cols = windows.shape[:3]
        z = (_contrast_normalized(windows.reshape(-1, p * p)) - self.mean_) @ self.whitening_
        # distances to every filter, through |z|² − 2 z·f + |f|² (one matrix product)
        sq = (z**2).sum(1, keepdims=True) - 2 * z @ self.filters_.T + (self.filters_**2).sum(1)
        dist = np.sqrt(np.maximum(sq, 0))
        codes = np.maximum(dist.mean(axis=1, keepdims=True) - dist, 0).reshape(n, rows, cols, self.n_filters)
        r_edges = np.linspace(0, rows, self.pool + 1).astype(int)[:-1]
        c_edges = np.linspace(0, cols, self.pool + 1).astype(int)[:-1]
        pooled = np.add.reduceat(np.add.reduceat(codes, r_edges, axis=1), c_edges, axis=2)
        return pooled.reshape(n, -1)

    def _images(self, X: np.ndarray) -> np.ndarray:
        """Validated rows (dense float32) as images: one of image_shape's h·w pixels per value."""
        h, w = (int(s) for s in self.image_shape)
        if X.shape[1] != h * w:
            raise ValueError(f"PatchCodes expects {h}×{w} = {h * w} pixels per row (image_shape), got {X.shape[1]}")
        return X.reshape(-1, h, w)


def _contrast_normalized(patches: np.ndarray) -> np.ndarray:
    """Each patch minus its mean, over its standard deviation: codes see shape, not brightness."""
    centred = patches - patches.mean(axis=1, keepdims=True)
    return (centred / np.sqrt(centred.var(axis=1, keepdims=True) + CONTRAST_EPS)).astype(np.float32)
