"""The pipeline's stages — reduce, cluster, score — and what they share: the stage cache and a sweep's memo."""
