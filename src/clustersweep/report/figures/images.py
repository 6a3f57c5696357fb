"""Images as mosaics: samples, class prototypes, reconstructions, cluster centroids.

Images are flat rows in [0, 1], reshaped to `image_shape`: (H, W) grey, drawn by one heatmap trace, or (H, W, 3)
colour, drawn by one image trace.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go


def image_grid(
    images: np.ndarray, titles: list[str], title: str, cols: int = 5, row_labels: list[str] | None = None
) -> go.Figure:
    """Images (n, H, W) grey or (n, H, W, 3) colour as one mosaic, each tile titled (and each row labelled, if
    given).

    One trace instead of a subplot per image: a tenth of the time to build and of the HTML to load.
    """
    images = np.asarray(images, dtype=float)
    n, h, w = images.shape[:3]
    colour = images.shape[3:]
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    top, gap = max(h // 3, 6), 2  # room for a tile's title above it; space between tiles
    pitch_y, pitch_x = h + top, w + gap
    mosaic = np.full((rows * pitch_y, cols * pitch_x - gap, *colour), 1.0 if colour else np.nan)
    notes = []
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * pitch_y + top : (r + 1) * pitch_y, c * pitch_x : c * pitch_x + w] = img
        if titles[i]:
            notes.append({"x": c * pitch_x + (w - 1) / 2, "y": r * pitch_y + top - 1.5, "text": titles[i]})
    for r, label in enumerate(row_labels or []):
        notes.append({"x": -1.5, "y": r * pitch_y + top + h / 2, "text": label, "xanchor": "right"})
    if colour:
        trace = go.Image(z=np.clip(mosaic, 0, 1) * 255, colormodel="rgb", name=title)
    else:
        trace = go.Heatmap(z=mosaic, colorscale="gray", zmin=0, zmax=1, showscale=False, hoverongaps=False, name=title)
    fig = go.Figure(trace)
    for note in notes:
        fig.add_annotation(
            showarrow=False, yanchor="bottom" if "xanchor" not in note else "middle", font={"size": 11}, **note
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    tile_px = min(180, max(90, 1000 // cols))
    fig.update_layout(  # no fixed width: the mosaic shrinks to fit the frame (MLflow's artifact viewer is narrow)
        title=title,
        height=int(tile_px * rows * pitch_y / h) + 100,
        plot_bgcolor="white",
        margin={"l": 120 if row_labels else 40},
    )
    return fig


def samples_per_class(X: np.ndarray, y: np.ndarray, class_names: list[str], image_shape: tuple[int, ...]) -> go.Figure:
    """The first image of each class, to see what each class name looks like."""
    classes, first = np.unique(y, return_index=True)
    images = X[first].reshape(-1, *image_shape)
    return image_grid(images, [class_names[c] for c in classes], "One sample per class")


def first_images(X: np.ndarray, image_shape: tuple[int, ...], n: int = 10) -> go.Figure:
    """The first images: what the data looks like, when there are no classes to show one of each."""
    images = X[:n].reshape(-1, *image_shape)
    return image_grid(images, [f"#{i}" for i in range(len(images))], f"The first {len(images)} images")


def average_image(X: np.ndarray, image_shape: tuple[int, ...]) -> go.Figure:
    """The mean of all images: where the pixels that carry shape sit."""
    return image_grid(X.mean(axis=0).reshape(1, *image_shape), ["all images"], "Overall average image", cols=1)


def class_prototypes(X: np.ndarray, y: np.ndarray, class_names: list[str], image_shape: tuple[int, ...]) -> go.Figure:
    """Each class's average image: the prototype a centroid-based clusterer could find."""
    classes = np.unique(y)
    images = np.stack([X[y == c].mean(axis=0) for c in classes]).reshape(-1, *image_shape)
    return image_grid(images, [class_names[c] for c in classes], "Class-average images (prototypes)")


def reconstructions(
    originals: np.ndarray,
    reconstructed: dict[int, np.ndarray],
    class_names_per_image: list[str],
    image_shape: tuple[int, ...],
) -> go.Figure:
    """Originals on top, then one row per k of their reconstructions: what detail each k keeps."""
    ks, n = sorted(reconstructed), len(originals)
    images = np.concatenate([originals, *(reconstructed[k] for k in ks)]).reshape(-1, *image_shape)
    titles = list(class_names_per_image) + [""] * (n * len(ks))  # columns named once, rows labelled
    labels = ["original", *(f"k={k}" for k in ks)]
    return image_grid(images, titles, "Reconstructions at each k (top row: originals)", cols=n, row_labels=labels)
