"""Internal sizes that small data cannot hold, clamped to what the data allow. A run says each clamp: the tag
`clamped.<key>` ("48: the train rows") and a line of its report. What a user sets (reducer.k, clusterer.K, …) is
never clamped: a value the data cannot hold is refused before any run (config.validate)."""

from __future__ import annotations

from omegaconf import DictConfig


def clamp(value: int, bounds: dict[str, int]) -> tuple[int, str]:
    """`value`, or the smallest of `bounds` (what bounds it → its size) when it is smaller; and why ("48: the
    train rows"), "" when `value` fits."""
    why, bound = min(bounds.items(), key=lambda item: item[1])
    return (value, "") if value <= bound else (bound, f"{bound}: {why}")


def common_k(cfg: DictConfig, space: str, n_rows: int, n_features: int) -> tuple[int, str]:
    """Components of a common metric space (`common`: PCA of the features; `patches`: PCA of the patch codes),
    fitted on `n_rows` train rows: `metrics.common_k`, at most the rows and the features the PCA is given."""
    if space == "patches":
        p = cfg.metrics.patches
        width = {"the patch features (metrics.patches: n_filters·pool²)": p.n_filters * p.pool**2}
    else:
        width = {"the features": n_features}
    return clamp(cfg.metrics.common_k, {"the train rows": n_rows, **width})


def of_run(cfg: DictConfig, n_rows: int, n_features: int) -> dict[str, str]:
    """Every clamp of a run on `n_rows` × `n_features` train rows: tag key (without `clamped.`) → why. The common
    spaces it is scored in (`metrics.space`, `metrics.other_spaces`); the patches space's under
    `metrics.common_k.patches`."""
    out = {}
    for space in dict.fromkeys([cfg.metrics.space, *cfg.metrics.get("other_spaces", [])]):
        if space != "embedding":
            _, why = common_k(cfg, space, n_rows, n_features)
            if why:
                out["metrics.common_k" + (".patches" if space == "patches" else "")] = why
    return out
