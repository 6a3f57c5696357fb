"""Patch codes: what they are (one vector of pooled shape codes per image), what they ignore (brightness), what they
find (the same shape wherever it sits), and the input they refuse."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from clustersweep.stages.features import PatchCodes

SHAPE = (12, 12)


def _bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images holding one 5-pixel bar, horizontal (class 0) or vertical (class 1), anywhere off the border (every
    patch over a bar then lies inside the image)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(2, size=n)
    X = np.zeros((n, *SHAPE), np.float32)
    for img, horizontal in zip(X, y == 0, strict=True):
        r, c = rng.integers(1, 7, size=2)
        if horizontal:
            img[r, c : c + 5] = 1
        else:
            img[r : r + 5, c] = 1
    return X.reshape(n, -1), y


def _codes(**kw) -> PatchCodes:
    return PatchCodes(image_shape=SHAPE, n_filters=8, patch=3, n_patches=5000, random_state=0, **kw)


def test_one_row_of_pooled_codes_per_image_seeded():
    X, _ = _bars(60, 0)
    codes = _codes(pool=2).fit(X)
    F = codes.transform(X)
    assert F.shape == (60, 8 * 2 * 2) and F.dtype == np.float32 and (F >= 0).all()
    np.testing.assert_array_equal(F, _codes(pool=2).fit(X).transform(X))  # random_state fixes the filters
    np.testing.assert_array_equal(codes.transform(X[:7]), F[:7])  # batches do not change a row
    np.testing.assert_allclose(_codes(pool=2, batch_size=7).fit(X).transform(X), F, rtol=1e-5, atol=1e-5)


def test_codes_see_shape_not_brightness():
    X, _ = _bars(40, 1)
    codes = _codes(pool=3).fit(X)
    np.testing.assert_allclose(codes.transform(X + 0.25), codes.transform(X), rtol=1e-4, atol=1e-4)


def test_the_same_shape_anywhere_gets_the_same_cluster():
    """Bars at random places: pixels barely overlap between two images of a class, the codes (pooled over the
    whole image) tell the orientations apart."""
    X, y = _bars(300, 2)
    F = StandardScaler().fit_transform(_codes(pool=1).fit(X).transform(X))
    assert adjusted_rand_score(y, KMeans(2, n_init=10, random_state=0).fit_predict(F)) > 0.95
    assert adjusted_rand_score(y, KMeans(2, n_init=10, random_state=0).fit_predict(X)) < 0.5  # pixels cannot


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"patch": 13}, "The 'patch' parameter of PatchCodes must be at most 12 for 12×12 images. Got 13"),
        ({"patch": 5, "pool": 9}, "must be at most 8 for 12×12 images and 5×5 patches. Got 9"),
        ({"n_filters": 1}, "The 'n_filters' parameter of PatchCodes must be an int in the range [2, inf)"),
        ({"patch": 1}, "The 'patch' parameter of PatchCodes must be an int in the range [2, inf)"),
        ({"n_filters": 8, "n_patches": 7}, "must be at least n_filters=8 (k-means needs a patch per filter). Got 7"),
    ],
)
def test_impossible_geometry_is_refused_at_fit(kw, message):
    X, _ = _bars(10, 3)
    params = {"n_filters": 8, "patch": 3, "pool": 1} | kw
    with pytest.raises(ValueError) as err:
        PatchCodes(image_shape=SHAPE, **params).fit(X)
    assert message in str(err.value)


def test_rows_of_another_image_size_are_refused():
    X, _ = _bars(20, 4)
    codes = _codes(pool=1).fit(X)
    with pytest.raises(ValueError, match="X has 100 features, but PatchCodes is expecting 144 features as input"):
        codes.transform(np.zeros((2, 100), np.float32))  # scikit-learn's check of n_features_in_
    with pytest.raises(ValueError, match="expects 12×12 = 144 pixels per row"):
        _codes(pool=1).fit(np.zeros((20, 100), np.float32))
