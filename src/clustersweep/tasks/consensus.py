"""A consensus run (`consensus.members` = m ≥ 2): the run's pipeline fitted with seeds seed … seed+m-1 — the very
fits its replicates make, so the stage cache has them after a sweep with `sweep.replicates` — and their partitions
combined into one (`stages.consensus.BipartiteConsensus`). The run's own fit (its seed) is the first member."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

import numpy as np
from omegaconf import DictConfig, OmegaConf

from clustersweep.config.validate import build
from clustersweep.data.dataset import Dataset
from clustersweep.stages import cache, cluster
from clustersweep.stages.consensus import NOISE, BipartiteConsensus


@dataclass
class Member:
    """One member's fit: its reducer and what assigns its clusters, and its clusters of the run's rows."""

    reducer: object
    predictor: object
    fit_labels: np.ndarray  # of the run's fitted train rows
    test_labels: np.ndarray
    cached: bool  # whether its reducer came from the stage cache


def members(cfg: DictConfig, data: Dataset, uri: str, idx: np.ndarray, own: Member) -> list[Member]:
    """The run's own member, then one per further seed, each fitted as a replicate with that seed would be."""
    more = range(1, size(cfg))
    return [own, *(_member(OmegaConf.merge(cfg, {"seed": cfg.seed + i}), data, uri, idx) for i in more)]


def size(cfg: DictConfig) -> int:
    """`consensus.members`; 1 (no consensus) for a config logged before the key existed (`reproduce.py`)."""
    return int(OmegaConf.select(cfg, "consensus.members", default=1))


def _member(cfg: DictConfig, data: Dataset, uri: str, idx: np.ndarray) -> Member:
    """The reducer (from the stage cache when a replicate fitted it) and the clusterer with `cfg`'s seed. A member
    fitted on other rows (a subsample drawn with its own seed) places the run's rows by transforming them."""
    reducer, Z_train, Z_test, _, hit = cache.fit_reducer(cfg, data.sha256, uri)
    if data.subsample:
        Z_train, Z_test = reducer.transform(data.X_train), reducer.transform(data.X_test)
    own_idx = cluster.fit_rows(cfg.clusterer.get("n_fit"), len(Z_train), cfg.seed)
    clusterer = build(cfg.clusterer.estimator, "clusterer")
    fitted = cluster.fit(clusterer, Z_train[own_idx])
    predictor = cluster.predictor(clusterer, Z_train[own_idx], fitted)
    same = not data.subsample and np.array_equal(own_idx, idx)
    fit_labels = fitted if same else predictor.predict(Z_train[idx])
    return Member(reducer, predictor, np.asarray(fit_labels), np.asarray(predictor.predict(Z_test)), hit)


def combine(cfg: DictConfig, group: list[Member]) -> tuple[BipartiteConsensus, np.ndarray, np.ndarray]:
    """The consensus of the members' partitions: (the fitted rule, the fitted rows' clusters, the test rows')."""
    combiner = BipartiteConsensus(n_clusters(cfg, group), random_state=cfg.seed)
    combiner.fit(np.column_stack([m.fit_labels for m in group]))
    return combiner, combiner.labels_, combiner.predict(np.column_stack([m.test_labels for m in group]))


def n_clusters(cfg: DictConfig, group: list[Member]) -> int:
    """`consensus.K`, else the clusterer's K, else the members' median number of clusters (at least 2)."""
    given = cfg.consensus.get("K") or cfg.clusterer.get("K")
    if given:
        return int(given)
    counts = [len(np.unique(m.fit_labels[m.fit_labels != NOISE])) for m in group]
    return max(2, round(median(counts)))
