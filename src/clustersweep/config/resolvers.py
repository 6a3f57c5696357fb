"""The `cs.*` resolvers the config files use, registered by `register()` at start-up (never on import)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from clustersweep.stages import metrics


def eps_label(eps: Any, percentile: Any) -> str:
    """Run-name part of a DBSCAN config: `p90` when eps comes from a percentile, else `eps8.0` / `epsauto`."""
    if percentile is None:
        return f"eps{eps}"
    return f"p{percentile:g}" if isinstance(percentile, int | float) else f"p{percentile}"


def direction(select_by: Any) -> str | list[str]:
    """An Optuna study's direction for its objective metric; a direction per objective for several (a list)."""
    objectives = metrics.objectives(select_by)
    return metrics.direction(objectives[0]) if len(objectives) == 1 else [metrics.direction(m) for m in objectives]


def register() -> None:
    """Make `${cs.eps_label:…}` and `${cs.direction:…}` resolvable in this process (idempotent)."""
    OmegaConf.register_new_resolver("cs.eps_label", eps_label, replace=True)
    OmegaConf.register_new_resolver("cs.direction", direction, replace=True)
