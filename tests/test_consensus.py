"""Consensus clustering: one partition from several members' partitions (`consensus.members`), with a known answer
on made-up partitions, and as a run: one partition, one model that gives the logged test clusters, the members'
fits shared with the replicates through the stage cache."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from conftest import run_py, runs
from sklearn.metrics import adjusted_rand_score

from clustersweep.data.dataset import load
from clustersweep.stages.consensus import NOISE, BipartiteConsensus
from clustersweep.stages.model import ConsensusPipeline
from clustersweep.tasks import cluster


def _noisy_copies(truth: np.ndarray, m: int, flip: float, seed: int) -> np.ndarray:
    """m partitions of the rows: the truth with a share `flip` of rows moved to a random cluster, ids permuted."""
    rng = np.random.default_rng(seed)
    k = truth.max() + 1
    out = []
    for _ in range(m):
        labels = truth.copy()
        moved = rng.random(len(truth)) < flip
        labels[moved] = rng.integers(0, k, moved.sum())
        out.append(rng.permutation(k)[labels])
    return np.column_stack(out)


def test_the_consensus_of_noisy_partitions_is_nearer_the_truth_than_any_of_them():
    truth = np.random.default_rng(0).integers(0, 5, 3000)
    members = _noisy_copies(truth, 5, 0.3, seed=1)
    consensus = BipartiteConsensus(5, random_state=0).fit(members)
    each = [adjusted_rand_score(truth, col) for col in members.T]
    assert max(each) < 0.6 and adjusted_rand_score(truth, consensus.labels_) > 0.85
    assert np.array_equal(consensus.predict(members), consensus.labels_)


def test_members_that_each_split_another_cluster_agree_on_the_truth():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 4, 2000)
    split_0, split_1 = truth.copy(), truth.copy()
    split_0[(truth == 0) & (rng.random(2000) < 0.5)] = 4  # one member cuts cluster 0 in two, another cluster 1
    split_1[(truth == 1) & (rng.random(2000) < 0.5)] = 4
    consensus = BipartiteConsensus(4, random_state=0).fit(np.column_stack([split_0, split_1, truth]))
    assert adjusted_rand_score(truth, consensus.labels_) == 1.0


def test_rows_every_member_calls_noise_stay_noise_and_unknown_clusters_count_as_noise():
    truth = np.repeat([0, 1, 2], 50)
    members = np.column_stack([truth, truth, (truth + 1) % 3])
    members[:5] = NOISE
    consensus = BipartiteConsensus(3, random_state=0).fit(members)
    assert list(consensus.labels_[:5]) == [NOISE] * 5 and NOISE not in consensus.labels_[5:]
    assert adjusted_rand_score(truth[5:], consensus.labels_[5:]) == 1.0
    # a row whose first member gives a cluster it never had is placed by the other two
    row = np.array([[7, 1, 2]])
    assert consensus.predict(row)[0] == consensus.labels_[60]  # truth 1: members say 1, 1, 2
    with pytest.raises(ValueError, match="X has 2 features, but BipartiteConsensus is expecting 3 features as input"):
        consensus.predict(members[:, :2])
    with pytest.raises(ValueError, match="fewer than n_clusters=4"):
        BipartiteConsensus(4).fit(np.column_stack([np.arange(9) % 2, np.arange(9) % 1]))


def test_a_consensus_run_is_one_run_with_one_partition_and_its_members_are_the_replicates_fits(make_cfg, store):
    """The replicates of a sweep fit seeds 42–44; a consensus run of 3 members then fits no reducer of its own, and
    its model gives the test rows the clusters it logged."""
    same = ["reducer=pca", "reducer.k=8", "clusterer=kmeans", "clusterer.K=4", "clusterer.n_init=1"]
    done = run_py("-m", "dataset=synthetic", *same, "sweep.replicates=3", "plots.enabled=false", store=store)
    assert done.returncode == 0, done.stderr[-2000:]
    cfg = make_cfg(*same, "consensus.members=3", "plots.enabled=false")
    res = cluster.run(cfg)
    client, found = runs(store, "synthetic")
    run = client.get_run(res.run_id)
    assert run.data.tags["cache.reducer"] == "hit" and "time_consensus_s" in run.data.metrics
    assert "-consensus.members3-" in run.data.tags["mlflow.runName"]
    model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    loaded = mlflow.sklearn.load_model(mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location))
    assert isinstance(loaded, ConsensusPipeline) and len(loaded.members) == 3
    logged = np.load(client.download_artifacts(res.run_id, "test_clusters.npy"))
    assert np.array_equal(loaded.predict(load(cfg.dataset, cfg.seed).X_test), logged)
    assert len(found) == 1 + 3 + 1  # the sweep's parent and replicates, the consensus run
