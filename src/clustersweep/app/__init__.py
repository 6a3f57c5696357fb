"""The command line: one-line errors, sweeps as parent and child runs, and the label-free Optuna search."""
