"""Validate a composed config before any data is loaded or any run is created.

Hydra already refuses unknown keys and unknown choices; this module checks the values users type
(`reducer.k`, `clusterer.K`, …) against what the data allows, and lets scikit-learn check every other
estimator parameter through its own parameter constraints. Each problem is one line: key, value, what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clustersweep.errors import ConfigError
from clustersweep.stages.features import PatchCodes
from clustersweep.stages.metrics import CRITERIA, LABEL_FREE, NEIGHBOURS, SPACES


@dataclass(frozen=True)
class Limits:
    """What the data allows: known from the loaded data, or before loading from what the dataset config says
    (math.inf where it says nothing)."""

    n_features: float
    n_classes: int  # 1 without labels
    size_train: float  # full split sizes
    size_test: float
    n_train: float  # after the optional subsample
    image_side: float  # the images' shorter side


def limits(cfg: DictConfig, data: Any = None) -> Limits:
    """From `data` (a loaded `Dataset`) when given, else from the dataset config alone."""
    ds = cfg.dataset
    if data is not None:
        shape, n_classes = data.image_shape, len(data.class_names or [None])
        size_train, size_test = len(data.X_train), len(data.X_test)
        n_features: float = data.X_train.shape[1]
        n_train: float = size_train
    else:
        shape, n_classes = ds.get("image_shape"), len(ds.get("class_names") or [None])
        size_train = size_test = math.inf
        n_features = math.prod(shape) if shape else math.inf
        n_train = ds.n_train if _is_int(ds.get("n_train")) and ds.n_train > 0 else math.inf
    side = min(shape[:2]) if shape else math.inf
    return Limits(n_features, n_classes, size_train, size_test, n_train, side)


def _is_int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


Check = Callable[[Any], "str | None"]


def _int_in(lo: int, hi: float = math.inf, why: str = "") -> Check:
    def check(v: Any) -> str | None:
        if _is_int(v) and lo <= v <= hi:
            return None
        return (f"an integer in {lo}..{int(hi)}" if hi != math.inf else f"an integer ≥ {lo}") + why

    return check


def _positive(v: Any) -> str | None:
    ok = isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    return None if ok else "a number > 0"


def _positive_or_auto(v: Any) -> str | None:
    return None if v == "auto" or _positive(v) is None else "a number > 0 or 'auto'"


def _at_least_zero(v: Any) -> str | None:
    ok = isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return None if ok else "a number ≥ 0"


def _one_of(*allowed: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in allowed else "one of " + ", ".join(allowed)

    return check


def _fraction(v: Any) -> str | None:
    ok = isinstance(v, Real) and not isinstance(v, bool) and 0 < v <= 1
    return None if ok else "a fraction in (0, 1]"


def _percentile(v: Any) -> str | None:
    ok = isinstance(v, Real) and not isinstance(v, bool) and 0 < v <= 100
    return None if ok else "a percentile in (0, 100]"


def _spaces(v: Any) -> str | None:
    ok = isinstance(v, Sequence) and not isinstance(v, str) and all(s in SPACES for s in v) and len(set(v)) == len(v)
    return None if ok else "a list of distinct spaces out of " + ", ".join(SPACES)


def _objectives(v: Any) -> str | None:
    """`sweep.select_by`: a criterion, or a list of distinct ones (several objectives)."""
    several = isinstance(v, Sequence) and not isinstance(v, str) and len(v) == len(set(map(str, v))) > 0
    ok = v in CRITERIA if isinstance(v, str) else several and all(m in CRITERIA for m in v)
    return None if ok else "one of " + ", ".join(CRITERIA) + ", or a list of distinct ones (several objectives)"


def _optional(check: Check, null: str = "all") -> Check:
    def opt(v: Any) -> str | None:
        why = None if v is None else check(v)
        return None if why is None else f"null ({null}) or {why}"

    return opt


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _nonzero_int(v: Any) -> str | None:
    return None if _is_int(v) and v != 0 else "an integer other than 0 (-1: one per core)"


# The settings of a whole sweep: one value for all its jobs (its parent's objective, the store), and the settings
# of its sweeper and launcher (absent from a config that does not use them).
_SWEEP_WIDE: dict[str, Check] = {
    "sweep.select_by": _objectives,
    "sweep.ace_index": _one_of(*LABEL_FREE),
    "sweep.rerun_finished": _boolean,
    "sweep.replicates": _int_in(1, 100),
    "tracking.lock_timeout": _positive,
}
_SWEEPER: dict[str, Check] = {
    "hydra.sweeper.max_batch_size": _optional(_int_in(1)),
    "hydra.sweeper.n_trials": _int_in(1),
    "hydra.sweeper.n_jobs": _int_in(1),
    "hydra.sweeper.sampler.n_startup_trials": _int_in(0),
    "hydra.sweeper.sampler.seed": _int_in(0, 2**32 - 1),
    "hydra.sweeper.sampler.name": _one_of("tpe", "gp", "random"),
    "hydra.launcher.n_jobs": _nonzero_int,
}


def _width(lim: Limits) -> tuple[float, str]:
    """The most components a reducer can fit: the features, and the train rows it is fitted on when fewer."""
    if lim.n_train < lim.n_features:
        return lim.n_train, " (the train rows, fewer than the features)"
    return lim.n_features, " (the number of features)"


def _rules(lim: Limits) -> dict[str, Check]:
    """The user-facing keys and what each allows; a key absent from the chosen config is skipped."""
    per_class = " (at least one per class)" if lim.n_classes > 1 else ""
    return {
        "seed": _int_in(0, 2**32 - 1),
        "verbose": _boolean,
        "compute.threads": _int_in(1),
        "dataset.n_train": _optional(_int_in(lim.n_classes, lim.size_train, per_class)),
        "dataset.n_test": _optional(_int_in(lim.n_classes, lim.size_test, per_class)),
        "reducer.k": _int_in(1, *_width(lim)),
        "reducer.pca_k": _int_in(1, *_width(lim)),
        "reducer.n_neighbors": _int_in(2, lim.n_train - 1, " (fewer than the train samples)"),
        "reducer.min_dist": _at_least_zero,
        "reducer.n_filters": _int_in(2),
        "reducer.patch": _int_in(2, lim.image_side, " (the images' shorter side)"),
        "reducer.large_patch": _int_in(2, lim.image_side, " (the images' shorter side)"),
        "reducer.pool": _int_in(1),
        "clusterer.K": _int_in(2, lim.n_train, " (at most the number of train samples)"),
        "clusterer.n_init": _int_in(1),
        "clusterer.eps": _positive_or_auto,
        "clusterer.eps_percentile": _optional(_percentile),
        "clusterer.n_fit": _optional(_int_in(2, math.inf, " (at least the train size means all of it)")),
        "clusterer.min_samples": _optional(_int_in(1, lim.n_train, " (at most the number of train samples)")),
        "clusterer.min_cluster_size": _int_in(2, lim.n_train, " (at most the number of train samples)"),
        "clusterer.batch_size": _int_in(1),
        "metrics.silhouette_sample_size": _int_in(2),
        "metrics.modularity_sample_size": _int_in(NEIGHBOURS + 1, math.inf, " (more than the graph's neighbours)"),
        "metrics.space": _one_of(*SPACES),
        "metrics.other_spaces": _spaces,
        "metrics.max_noise": _fraction,
        "metrics.max_cluster_share": _fraction,
        "metrics.common_k": _int_in(1),  # narrower data keeps all its features
        "metrics.patches.n_filters": _int_in(2),
        "metrics.patches.patch": _int_in(2),  # at most the images' side: checked when the space is asked for
        "metrics.patches.pool": _int_in(1),
        "metrics.patches.seed": _int_in(0, 2**32 - 1),
        "consensus.members": _int_in(1, 100),
        "consensus.K": _optional(_int_in(2, lim.n_train, " (at most the train samples)"), "the clusterer's K"),
        "plots.scatter_points": _int_in(1),
        **_SWEEP_WIDE,
    }


def validate(cfg: DictConfig, data: Any = None) -> dict[str, Any]:
    """Raise ConfigError on the first value that cannot run; returns the estimators, built and checked by sklearn.
    Without `data` the limits are what the dataset config says; with the loaded data, the data's, and the image
    shape its files give (an image folder's, an array of images') becomes `dataset.image_shape` when that is null:
    what the run logs and its estimators (patch codes) are built with."""
    if data is not None and data.image_shape is not None and cfg.dataset.get("image_shape") is None:
        cfg.dataset.image_shape = list(data.image_shape)
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"config does not resolve: {_first_line(e)}") from None
    lim = limits(cfg, data)
    for key, check in _rules(lim).items():
        _check(cfg, key, check)
    _check_fit_size(cfg.clusterer, lim.n_train)
    _check_other_spaces(cfg.metrics)
    _check_pca_after_patches(cfg.reducer)
    _check_images_for_patches(cfg, data)
    _check_patch_space(cfg, data)
    built = {}
    for group in ("reducer", "clusterer"):
        _check_keys_used(cfg[group], group)
        if group == "reducer" and "n_filters" in cfg.reducer and cfg.dataset.get("image_shape") is None:
            continue  # patch codes of images whose shape the files give: built once they are read
        built[group] = build(cfg[group].estimator, group)
    return built


def check_sweep(config: DictConfig) -> None:
    """The settings of a whole sweep (a multirun config, with `hydra`): its label-free objective, the store, and
    what its sweeper and launcher are given; checked once, before its parent run exists."""
    for key, check in {**_SWEEP_WIDE, **_SWEEPER}.items():
        _check(config, key, check)


def _check(cfg: DictConfig, key: str, check: Check) -> None:
    """`key`'s value (when the config has the key) passes `check`, or a ConfigError says what is allowed."""
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    why = None if value is _ABSENT else check(value)
    if why is not None:
        raise ConfigError(f"{key}={value!r} is not allowed: expected {why}")


def _check_fit_size(node: DictConfig, n_train: int) -> None:
    """A clusterer whose memory grows with n² (`max_n_fit`) must be fitted on a subsample small enough; K clusters
    need K rows."""
    cap = node.get("max_n_fit")
    rows = min(node.get("n_fit") or n_train, n_train)
    if cap is not None and rows > cap:
        raise ConfigError(
            f"clusterer.n_fit={node.get('n_fit')!r} is not allowed for clusterer={node.name}: it would fit "
            f"{'every train row' if rows == math.inf else f'{rows} rows'},"
            f" expected at most {cap} (its memory grows with n²; set clusterer.n_fit)"
        )
    K = node.get("K")
    if _is_int(K) and K > rows:
        raise ConfigError(
            f"clusterer.K={K} is not allowed: expected at most {rows}, the rows the clusterer is fitted on "
            "(clusterer.n_fit, dataset.n_train)"
        )


def _check_other_spaces(node: DictConfig) -> None:
    """The other spaces are others than metrics.space, whose scores have the plain names."""
    if node.space in node.get("other_spaces", []):
        raise ConfigError(
            f"metrics.other_spaces={list(node.other_spaces)} is not allowed: it holds metrics.space={node.space}, "
            "whose scores are logged under their plain names; expected other spaces"
        )


def _check_pca_after_patches(node: DictConfig) -> None:
    """PCA after patch codes has n_filters·pool² features (per scale) to reduce, not the pixels."""
    if "n_filters" not in node or "pca_k" not in node:
        return
    n = node.n_filters * node.pool**2 * (2 if "large_patch" in node else 1)
    if node.pca_k > n:
        raise ConfigError(
            f"reducer.pca_k={node.pca_k!r} is not allowed: expected an integer in 1..{n} (the patch features,"
            f" n_filters·pool² per scale)"
        )


def _check_images_for_patches(cfg: DictConfig, data: Any) -> None:
    """Patch codes cut grey images into patches: the rows must be images of a known (H, W) shape; a shape the files
    may give (dataset.image_shape=null before loading) is checked once they are read."""
    if "n_filters" not in cfg.reducer:
        return
    shape = data.image_shape if data is not None else cfg.dataset.get("image_shape")
    if shape is None and data is None:
        return
    if shape is None or len(shape) != 2:
        raise ConfigError(
            f"reducer={cfg.reducer.name} needs grey images of a known shape, but dataset.image_shape="
            f"{None if shape is None else list(shape)}: set dataset.image_shape=[height,width] (rows that are images)"
        )


def _check_patch_space(cfg: DictConfig, data: Any) -> None:
    """The `patches` metric space codes grey images of a known (H, W) shape with `metrics.patches`; a shape the
    files may give (dataset.image_shape=null before loading) is checked once they are read."""
    node = cfg.metrics
    key = "metrics.space" if node.space == "patches" else "metrics.other_spaces"
    if key == "metrics.other_spaces" and "patches" not in node.get("other_spaces", []):
        return
    value = node.space if key == "metrics.space" else list(node.other_spaces)
    shape = data.image_shape if data is not None else cfg.dataset.get("image_shape")
    if shape is None and data is None:
        return
    if shape is None or len(shape) != 2:
        others = [s for s in SPACES if s != "patches"]
        raise ConfigError(
            f"{key}={value} is not allowed for dataset={cfg.dataset.name}: the patches space needs grey images of a "
            f"known shape, but dataset.image_shape={None if shape is None else list(shape)}; expected "
            f"{' or '.join(others) if key == 'metrics.space' else 'a list out of ' + ', '.join(others)}"
        )
    p = node.patches
    codes = PatchCodes(list(shape), p.n_filters, p.patch, p.pool, random_state=p.seed)
    try:
        codes._validate_params()
    except ValueError as e:
        raise ConfigError(f"metrics.patches ({key}={value}): {_first_line(e)}") from None


# Keys that describe or steer the stage, not the estimator.
_DESCRIPTIVE = {"name", "label", "estimator", "n_fit", "max_n_fit"}


def _check_keys_used(node: DictConfig, group: str) -> None:
    """A short key (`k`, `K`, `eps`) must feed the estimator (as `${..k}`, or `${reducer.k}` inside a pipeline's
    steps); one that does not is a typo or belongs elsewhere."""
    raw = OmegaConf.to_container(node, resolve=False)
    used = str(raw.get("estimator"))
    if "${" not in used:  # a resolved snapshot (a logged config.yaml): it was checked when it was composed
        return
    known = [k for k in raw if k not in _DESCRIPTIVE and (f"${{..{k}}}" in used or f"${{{group}.{k}}}" in used)]
    for key in raw:
        if key not in _DESCRIPTIVE and key not in known:
            raise ConfigError(
                f"{group}.{key}={raw[key]!r} is not a parameter of {group}={raw.get('name')}: "
                f"expected one of {', '.join(known) or '(none)'}, or {group}.estimator.<sklearn parameter>"
            )


_ABSENT = object()


def build(node: DictConfig, group: str) -> Any:
    """Instantiate an estimator from its `_target_` and let scikit-learn validate its parameters now."""
    try:
        est = instantiate(node)
    except Exception as e:  # noqa: BLE001 - any construction failure is a config problem
        cause = e.__cause__ or e
        raise ConfigError(f"{group}.estimator ({node.get('_target_')}) cannot be built: {_first_line(cause)}") from None
    try:
        _check_params(est)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{group}: {_first_line(e)}") from None
    return est


def _check_params(est: Any) -> None:
    """scikit-learn's own parameter constraints, for the estimator and each step of a Pipeline or FeatureUnion.
    (umap-learn checks its parameters only with the data in hand; its short keys are checked by the rules above.)"""
    for _, step in [*getattr(est, "steps", []), *getattr(est, "transformer_list", [])]:  # Pipeline, FeatureUnion
        _check_params(step)
    if hasattr(est, "_parameter_constraints"):
        est._validate_params()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
