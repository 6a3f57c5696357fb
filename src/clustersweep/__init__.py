"""clustersweep: configured, tracked sweeps of unsupervised image pipelines."""
