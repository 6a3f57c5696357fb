"""Run names: the reducer's and the clusterer's `label` (`pca-k100-kmeans-K12`), then every other value that
differs from the defaults of the chosen configs — the seed, a subsample, an estimator parameter, a metric's
setting — compactly (`-seed0`, `-n_train5000`, `-svd_solver=covariance_eigh`, `-metrics.space=embedding`, a path
by its last part: `-path=pixels.npz`), so that two configurations never share a name.

The defaults are the config files themselves: `conf/config.yaml` and `conf/<group>/<name>.yaml` for the dataset,
the reducer and the clusterer (a choice's `name` is its file name). Where and how a run is logged (`tracking`,
`search`, `sweep`, `cache`) is not part of it, as it is not part of a run's identity.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from clustersweep.paths import CONF_DIR
from clustersweep.tracking.identity import NOT_IDENTITY

GROUPS = ("dataset", "reducer", "clusterer")
_LABEL_KEY = re.compile(r"\$\{\.{1,2}(\w+)\}|\$\{(?:reducer|clusterer)\.(\w+)\}")


def run_name(cfg: DictConfig) -> str:
    return "-".join([f"{cfg.reducer.label}-{cfg.clusterer.label}", *(_compact(k, v) for k, v in changed(cfg))])


def defaults(cfg: DictConfig) -> DictConfig:
    """The config of the same choices with every value at its default."""
    files = _files(cfg)
    if files is not None:
        return copy.deepcopy(_defaults(files))
    top = OmegaConf.load(CONF_DIR / "config.yaml")
    parts = {k: v for k, v in top.items() if k not in ("defaults", "hydra")}
    for group in GROUPS:
        path = CONF_DIR / group / f"{cfg[group].get('name')}.yaml"
        parts[group] = OmegaConf.load(path) if path.is_file() else cfg[group]
    return OmegaConf.create(parts)


def _files(cfg: DictConfig) -> tuple[tuple[str, int], ...] | None:
    """The config files of cfg's choices with their modification times; None when a choice has no file."""
    paths = [CONF_DIR / "config.yaml", *(CONF_DIR / g / f"{cfg[g].get('name')}.yaml" for g in GROUPS)]
    if not all(p.is_file() for p in paths):
        return None
    return tuple((str(p), p.stat().st_mtime_ns) for p in paths)


@functools.lru_cache(maxsize=16)
def _defaults(files: tuple[tuple[str, int], ...]) -> DictConfig:
    """The defaults of one set of choices, read once per process while the files do not change (a sweep names
    each of its runs from the same ones)."""
    top, *groups = (OmegaConf.load(path) for path, _ in files)
    parts = {k: v for k, v in top.items() if k not in ("defaults", "hydra")}
    return OmegaConf.create({**parts, **dict(zip(GROUPS, groups, strict=True))})


@functools.lru_cache(maxsize=16)
def _flat_defaults(files: tuple[tuple[str, int], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The defaults' leaves, resolved and as written."""
    base = _defaults(files)
    return _flat(base, resolve=True), _flat(base, resolve=False)


def changed(cfg: DictConfig) -> list[tuple[str, Any]]:
    """(dotted key, value) of each value that differs from its default and that no label shows, in key order.

    A value the default derives from another (`n_components: ${..k}`, `random_state: ${seed}`) counts only when it
    is not what that derivation gives in this config: a changed `reducer.k` is shown once, by the label."""
    files = _files(cfg)
    base = defaults(cfg) if files is None else _defaults(files)
    theirs, raw = (_flat(base, resolve=True), _flat(base, resolve=False)) if files is None else _flat_defaults(files)
    ours = _flat(cfg, resolve=True)
    shown = {f"{g}.{key}" for g in ("reducer", "clusterer") for key in _label_keys(str(raw.get(f"{g}.label", "")))}
    out: dict[str, Any] = {}
    for key in sorted(set(ours) | set(theirs)):
        top = key.split(".")[0]
        if top in NOT_IDENTITY or top not in base or key.endswith(".label") or key in shown:
            continue
        if ours.get(key) == theirs.get(key):
            continue
        whole = re.sub(r"(\.\d+)+$", "", key)  # a list's element: the list, once, as a whole
        if whole in out:
            continue
        value = ours.get(key) if whole == key else OmegaConf.to_container(OmegaConf.select(cfg, whole), resolve=True)
        derived = raw.get(whole)
        if isinstance(derived, str) and "${" in derived and value == _evaluate(cfg, whole, derived):
            continue
        out[whole] = value
    return list(out.items())


def _label_keys(label: str) -> set[str]:
    return {a or b for a, b in _LABEL_KEY.findall(label)}


def _evaluate(cfg: DictConfig, key: str, interpolation: str) -> Any:
    """What `interpolation` (a default's `${…}`) gives at `key` in this config."""
    probe = copy.deepcopy(cfg)
    OmegaConf.set_struct(probe, False)
    OmegaConf.update(probe, key, interpolation, merge=False)
    return OmegaConf.select(probe, key)


def _flat(cfg: DictConfig, resolve: bool) -> dict[str, Any]:
    """Dotted keys to leaf values, lists by position (`estimator._args_.0.n_filters`); a missing value (`???`) as
    itself."""
    out: dict[str, Any] = {}
    if resolve:  # resolved once, as plain containers: far quicker than resolving node by node

        def plain(node: Any, prefix: str) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
            if items is None:
                out[prefix[:-1]] = node
                return
            for k, v in items:
                plain(v, f"{prefix}{k}.")

        plain(OmegaConf.to_container(cfg, resolve=True), "")
        return out

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, DictConfig):
            for k in node:
                walk(node._get_node(k), f"{prefix}{k}.")
        elif isinstance(node, ListConfig):
            for i in range(len(node)):
                walk(node._get_node(i), f"{prefix}{i}.")
        else:
            out[prefix[:-1]] = node._value() if hasattr(node, "_value") else node

    walk(cfg, "")
    return out


def _compact(key: str, value: Any) -> str:
    """`seed0`, `n_train5000`, `svd_solver=covariance_eigh`, `plots.enabled=false`: a choice's own key by its last
    part, another section's by that section and its last part; then the value."""
    parts = key.split(".")
    last = parts[-1] if parts[0] in GROUPS or len(parts) == 1 else f"{parts[0]}.{parts[-1]}"
    if isinstance(value, list) and all(isinstance(v, int | float | str) for v in value):
        return f"{last}=" + "x".join(map(str, value))  # `image_size=8x8`
    if isinstance(value, bool) or value is None:
        return f"{last}={str(value).lower()}"
    if isinstance(value, int | float):
        return f"{last}{value:g}" if isinstance(value, float) else f"{last}{value}"
    if last.endswith("path") and "/" in str(value):  # a file or folder by its own name: `path=pixels.npz`
        value = PurePath(str(value)).name
    return f"{last}={value}"
