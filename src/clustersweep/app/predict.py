"""`python -m clustersweep.predict MODEL_URI INPUT --out clusters.csv`: new data into the clusters of a logged model
(`runs:/<run id>/model` or `models:/<name>/<version|latest>`). INPUT is what the loaders read: an array file
(.npy, .npz, .csv, .parquet; an array of images, (n, H, W) or (n, H, W, C), of the model's image shape) or a folder
of images (resized and converted to what the model was fitted on)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from clustersweep.app.cli import EXIT_USER_ERROR, start_up
from clustersweep.data.arrays import ArrayFile
from clustersweep.data.dataset import check_finite
from clustersweep.data.images import ImageFolder
from clustersweep.errors import ConfigError, DataError, one_line
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import default_cfg, reader, tracking_uri


def read_input(path: str, metadata: dict, features: str | None, labels: str | None) -> tuple[np.ndarray, pd.Series]:
    """The rows of INPUT, shaped as the model's training data, and what names each (file or row number)."""
    shape = metadata.get("image_shape")
    if Path(path).is_dir():
        if not shape:
            raise DataError(f"{path} is a folder of images, but the model was fitted on rows that are not images")
        mode = "rgb" if len(shape) == 3 else "grey"
        full = ImageFolder("input", path, image_size=list(shape[:2]), mode=mode).load()
        return full.X_train, pd.Series(full.row_names, name="file")
    full = ArrayFile("input", path, features=features, labels=labels).load()
    if full.image_shape is not None and list(full.image_shape) != list(shape or []):
        fitted = f"images of {'x'.join(map(str, shape))}" if shape else "rows that are not images"
        raise DataError(
            f"{path} holds images of {'x'.join(map(str, full.image_shape))} but the model was fitted on {fitted}; "
            "give rows of the data the model was fitted on"
        )
    X = np.asarray(full.X_train)
    check_finite(X, f"the rows of {path}")
    return X, pd.Series(np.arange(len(X)), name="row")


def predict(model_uri: str, path: str, out: Path, uri: str, features: str | None, labels: str | None) -> int:
    import mlflow

    reader(uri)  # the store checked: one that does not exist or that MLflow cannot use is one line
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(model_uri)
    metadata = info.metadata or {}
    X, names = read_input(path, metadata, features, labels)
    width = metadata.get("n_features")
    if width is not None and X.shape[1] != width:
        shape = metadata.get("image_shape")
        raise DataError(
            f"{path} has {X.shape[1]} values per row but {model_uri} takes {width}"
            + (f" (images of {'x'.join(map(str, shape))})" if shape else "")
            + "; give rows of the data the model was fitted on"
        )
    clusters = mlflow.pyfunc.load_model(model_uri).predict(X)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({names.name: names, "cluster": np.asarray(clusters)}).to_csv(out, index=False)
    return len(X)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clustersweep.predict", description=__doc__.splitlines()[0])
    parser.add_argument("model_uri", help="runs:/<run id>/model or models:/<name>/<version|latest>")
    parser.add_argument("input", help="an array file (.npy, .npz, .csv, .parquet) or a folder of images")
    parser.add_argument("--out", type=Path, default=Path("clusters.csv"), help="CSV to write (default clusters.csv)")
    parser.add_argument("--tracking-uri", default=None, help="the store holding the model (default: the project's)")
    parser.add_argument("--features", default=None, help="the .npz array of the rows (default X, or the only one)")
    parser.add_argument("--labels", default=None, help="a column (or .npz array) to leave out: the labels")
    args = parser.parse_args(argv)
    start_up()
    uri = args.tracking_uri or tracking_uri(default_cfg())
    try:
        n = predict(args.model_uri, args.input, args.out, uri, args.features, args.labels)
    except Exception as e:  # noqa: BLE001 - a bad URI, input or store is the user's to fix: one line
        if not isinstance(e, ConfigError | DataError | OSError) and type(e).__module__.split(".")[0] != "mlflow":
            raise
        print(f"error: {redact(one_line(e))}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"predict: {n} rows of {args.input} → {args.out} (model {args.model_uri})")
    return 0
