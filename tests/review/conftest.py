"""A synthetic ``cellseg predict`` run to review: images, masks, probabilities, ``predictions.csv``, ground truth.

``prediction_run`` is shared with the page's browser test. Its images (``EXPECTED_FLAGS`` says what each must be
flagged for):

- ``cell_a``, ``cell_b``, ``cell_c``, ``cell_d``: the mask is the truth; ``cell_b``'s row says every object touches
  the border, ``cell_c``'s that 2 were cut between blocks, ``cell_d``'s confidence is low;
- ``empty``: no object (and no ground truth);
- ``HOSTILE_NAME`` (``<img src=x onerror=alert(1)>``): a PNG image whose name is HTML; nothing wrong otherwise;
- ``poor``: one 40 x 40 square in a corner: far too few objects, far too large, low Dice;
- ``failed``: predict failed on it (an unreadable file), no mask.

``cell_a``, ``cell_b`` and ``HOSTILE_NAME`` have probability maps.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from cellseg.data.synthetic import SyntheticConfig, SyntheticSample, generate_sample
from cellseg.io.writers import write_labels, write_probability

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
EXPECTED_FLAGS: dict[str, list[str]] = {
    "cell_a": [],
    "cell_b": ["border"],
    "cell_c": ["cut"],
    "cell_d": ["low_confidence"],
    "empty": ["empty"],
    "failed": ["failed"],
    "poor": ["count", "area", "low_dice"],
    HOSTILE_NAME: [],
}
WITH_PROBABILITY = ("cell_a", "cell_b", HOSTILE_NAME)
CSV_COLUMNS = (
    "image", "name", "status", "objects", "mean_area", "median_area", "mean_confidence", "border_objects",
    "cut_objects", "seconds", "error",
)  # fmt: skip
SHAPE = (96, 96)


@functools.cache
def _sample(seed: int) -> SyntheticSample:
    """The synthetic image and labels of ``seed`` (made once per session; the arrays are only read)."""
    return generate_sample(SyntheticConfig(shape=SHAPE), seed)


def write_prediction_run(root: Path) -> tuple[Path, Path, Path]:
    """Write the run described in the module docstring under ``root``; return ``(pred_dir, images_dir, gt_dir)``."""
    pred_dir, images_dir, gt_dir = root / "predictions", root / "images", root / "truth"
    for folder in (pred_dir, images_dir, gt_dir):
        folder.mkdir(parents=True)
    confidence = {"cell_a": 0.93, "cell_b": 0.9, "cell_c": 0.91, "cell_d": 0.6, HOSTILE_NAME: 0.95, "poor": 0.8}
    rows = []
    for seed, name in enumerate(["cell_a", "cell_b", "cell_c", "cell_d", "empty", HOSTILE_NAME, "poor"]):
        sample = _sample(seed)
        image_path = images_dir / (f"{name}.png" if name == HOSTILE_NAME else f"{name}.tif")
        if name == HOSTILE_NAME:
            iio.imwrite(image_path, sample.image)  # 16-bit grey PNG
        else:
            tifffile.imwrite(image_path, sample.image)
        labels = sample.labels.copy()
        if name == "empty":
            labels[:] = 0
        elif name == "poor":
            labels[:] = 0
            labels[:40, :40] = 1
        else:
            write_labels(gt_dir / f"{name}.tif", sample.labels, "tif")
        if name == "poor":
            write_labels(gt_dir / f"{name}.tif", sample.labels, "tif")
        write_labels(pred_dir / f"{name}_masks.tif", labels, "tif")
        if name in WITH_PROBABILITY:
            smooth = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.5)
            write_probability(pred_dir / f"{name}_probabilities.tif", smooth)
        areas = np.bincount(labels.ravel())[1:]
        areas = areas[areas > 0]
        objects = int(areas.size)
        rows.append(
            {
                "image": str(image_path), "name": name, "status": "ok", "objects": objects,
                "mean_area": float(areas.mean()) if objects else 0.0,
                "median_area": float(np.median(areas)) if objects else 0.0,
                "mean_confidence": confidence.get(name, float("nan")),
                "border_objects": objects if name == "cell_b" else min(objects, 1),
                "cut_objects": 2 if name == "cell_c" else 0, "seconds": 0.1, "error": "",
            }
        )  # fmt: skip
    broken = images_dir / "failed.tif"
    broken.write_bytes(b"this is not a TIFF")
    rows.append(
        {
            "image": str(broken), "name": "failed", "status": "failed", "objects": 0, "mean_area": "nan",
            "median_area": "nan", "mean_confidence": "nan", "border_objects": 0, "cut_objects": 0, "seconds": 0.0,
            "error": f"{broken}: not a readable TIFF file; fix or remove the file",
        }
    )  # fmt: skip
    with (pred_dir / "predictions.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return pred_dir, images_dir, gt_dir


@pytest.fixture
def prediction_run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``(pred_dir, images_dir, gt_dir)`` of the synthetic run of the module docstring, under ``tmp_path``."""
    return write_prediction_run(tmp_path / "run")
