"""What `task=` runs: `cluster` (one pipeline run), `eda` (the data's plots) and `notebook` (the seed notebook)."""
