"""Plotly figures: arrays in, figure out; `html` writes them for MLflow's artifact viewer."""
