"""Datasets: where the images come from, checked, and split into the run's train and test subsamples."""
