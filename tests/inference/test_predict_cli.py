"""``cellseg predict`` end to end, in-process: real files in, real files out, read back."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest
import roifile
import tifffile
from skimage.draw import disk

from cellseg.cli import main
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.data.targets import normalised_distance_map
from cellseg.evaluation.matching import match_instances
from cellseg.inference.instances import InstanceConfig
from cellseg.inference.model import file_sha256, load_model
from cellseg.io import read_mask
from tests.io.test_geojson import _filled as filled

AFFINE = np.array([[0.5, 0, 0, 10.0], [0, 0.5, 0, -4.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])


def nuclei(seed: int, shape: tuple[int, int] = (96, 128)) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 16-bit nuclei image ``(H, W)`` and its labels."""
    sample = generate_sample(SyntheticConfig(shape=shape), seed)
    assert sample.image.dtype == np.uint16
    return sample.image, sample.labels


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """One image per input format: 16-bit TIFF, 8-bit PNG, 2-channel TIFF, 2D NIfTI."""
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a_tiff16.tif", nuclei(0)[0])
    iio.imwrite(images / "b_png8.png", (nuclei(1)[0] // 32).astype(np.uint8))
    tifffile.imwrite(images / "c_two_channels.tif", np.stack([nuclei(2)[0], nuclei(3)[0]]), metadata={"axes": "CYX"})
    nib.save(nib.Nifti1Image(nuclei(4)[0].T.astype(np.float32), AFFINE), images / "d_nifti.nii.gz")
    return images


def predict(checkpoint: Path, *arguments: str) -> int:
    return main(["predict", "--model", str(checkpoint), "--no-progress", "--workers", "0", *arguments])


def rows(output: Path) -> dict[str, dict[str, Any]]:
    with (output / "predictions.csv").open() as stream:
        return {row["name"]: row for row in csv.DictReader(stream)}


def test_every_input_format_is_predicted_and_documented(checkpoint: Path, folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    assert predict(checkpoint, str(folder), "--output", str(output)) == 0
    table = rows(output)
    assert set(table) == {"a_tiff16", "b_png8", "c_two_channels", "d_nifti"}
    for name, row in table.items():
        assert row["status"] == "ok"
        labels = read_mask(output / f"{name}_masks.tif")
        assert labels.shape == (96, 128)
        assert labels.dtype == np.uint16
        assert int(row["objects"]) == labels.max() > 0
        assert float(row["seconds"]) > 0
        assert 0 < float(row["mean_confidence"]) <= 1
    provenance = json.loads((output / "provenance.json").read_text())
    assert provenance["checkpoint_sha256"] == file_sha256(checkpoint)
    assert provenance["predicted"] == 4
    assert provenance["options"]["tiles"]["overlap"] == 0.25
    in_force = provenance["instances_in_force"]  # the model's defaults filled in: what made the masks
    assert in_force["foreground_threshold"] == 0.5
    model = load_model(checkpoint)
    assert in_force["object_diameter"] == model.object_diameter
    expected = InstanceConfig().for_model(model.object_diameter).object_pixels(2)
    assert in_force["min_object_pixels"] == expected


def test_predicted_cells_match_the_truth(checkpoint: Path, tmp_path: Path) -> None:
    image, truth = nuclei(7, (128, 128))
    tifffile.imwrite(tmp_path / "cells.tif", image)
    assert predict(checkpoint, str(tmp_path / "cells.tif"), "--output", str(tmp_path / "out")) == 0
    scores = match_instances(truth, read_mask(tmp_path / "out" / "cells_masks.tif"))
    assert scores.dice > 0.85
    assert scores.at(0.5).f1 > 0.6


def test_fitted_tiles_from_the_command_line_find_the_same_cells(checkpoint: Path, tmp_path: Path) -> None:
    image, _ = nuclei(7, (200, 200))
    tifffile.imwrite(tmp_path / "cells.tif", image)
    for name, options in (("patch", []), ("fitted", ["--max-tile", "512"])):
        assert predict(checkpoint, str(tmp_path / "cells.tif"), "--output", str(tmp_path / name), *options) == 0
    patch, fitted = (read_mask(tmp_path / name / "cells_masks.tif") for name in ("patch", "fitted"))
    assert not np.array_equal(patch, fitted)  # one 200 px pass instead of overlapping 64 px tiles
    assert match_instances(patch, fitted).at(0.5).f1 > 0.9


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_tile_batch_below_one_is_refused_in_one_line(
    checkpoint: Path, tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        predict(checkpoint, str(tmp_path), "--output", str(tmp_path / "out"), "--tile-batch", value)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--tile-batch" in error
    assert "give 1 or more" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seeds", ["boundary", "distance"])
def test_two_touching_discs_come_out_as_two_cells(distance_checkpoint: Path, tmp_path: Path, seeds: str) -> None:
    truth = np.zeros((64, 64), np.int32)
    truth[disk((32, 24), 8)] = 1
    truth[disk((32, 39), 8)] = 2  # 15 px apart: they share a border
    noise = np.random.default_rng(0).normal(0, 30, truth.shape)
    image = 100 + (300 + 1200 * normalised_distance_map(truth)) * (truth > 0) + noise  # nuclei dim at their rims
    tifffile.imwrite(tmp_path / "two.tif", image.clip(0).astype(np.uint16))
    output = tmp_path / "out"
    # The seed threshold suits the model: 0.4 was best on DSB2018, this 150-step test model needs 0.5.
    threshold = {"boundary": "0.5", "distance": "0.6"}[seeds]
    arguments = ["--output", str(output), "--seeds", seeds, "--seed-threshold", threshold]
    assert predict(distance_checkpoint, str(tmp_path / "two.tif"), *arguments) == 0
    labels = read_mask(output / "two_masks.tif")
    assert labels.max() == 2
    assert match_instances(truth, labels).at(0.5).tp == 2


def test_the_model_s_foreground_threshold_is_the_default_and_the_option_wins(
    checkpoint: Path, folder: Path, tmp_path: Path
) -> None:
    import torch

    saved = torch.load(checkpoint, weights_only=True, map_location="cpu")
    saved["hyper_parameters"]["foreground_threshold"] = 0.9  # what a config's model.foreground_threshold stores
    strict = tmp_path / "strict.ckpt"
    torch.save(saved, strict)
    image = str(folder / "a_tiff16.tif")
    runs: dict[str, tuple[Path, list[str]]] = {
        "default": (checkpoint, []), "model": (strict, []), "option": (checkpoint, ["--foreground-threshold", "0.9"]),
        "override": (strict, ["--foreground-threshold", "0.5"]),
    }  # fmt: skip
    labels = {}
    for name, (model, options) in runs.items():
        assert predict(model, image, "--output", str(tmp_path / name), *options) == 0
        labels[name] = read_mask(tmp_path / name / "a_tiff16_masks.tif")
    assert np.array_equal(labels["model"], labels["option"])
    assert np.array_equal(labels["override"], labels["default"])
    assert 0 < np.count_nonzero(labels["model"]) < np.count_nonzero(labels["default"])


def test_every_export_is_written_and_reads_back(checkpoint: Path, folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    flags = ["--save-probabilities", "--save-outlines", "--save-rois", "--save-geojson"]
    assert predict(checkpoint, str(folder / "a_tiff16.tif"), "--output", str(output), *flags) == 0
    labels = read_mask(output / "a_tiff16_masks.tif")
    probability = tifffile.imread(output / "a_tiff16_probabilities.tif")
    assert probability.dtype == np.float16
    assert probability.shape == labels.shape
    assert probability[labels > 0].mean() > probability[labels == 0].mean()
    outlines = iio.imread(output / "a_tiff16_outlines.png")
    assert outlines.shape == (*labels.shape, 3)
    rois = roifile.roiread(output / "a_tiff16_rois.zip")
    assert isinstance(rois, list)
    assert len(rois) == labels.max()
    geojson = json.loads((output / "a_tiff16.geojson").read_text())
    assert len(geojson["features"]) == labels.max()
    assert np.array_equal(filled(geojson, labels.shape), labels)  # the polygons are the masks, pixel for pixel
    for feature in geojson["features"]:
        label = int(feature["properties"]["name"].split("_")[1])
        assert feature["properties"]["measurements"]["area"] == (labels == label).sum()


@pytest.mark.parametrize("fmt", ["png", "nii"])
def test_other_mask_formats(checkpoint: Path, folder: Path, tmp_path: Path, fmt: str) -> None:
    output = tmp_path / "out"
    assert predict(checkpoint, str(folder / "d_nifti.nii.gz"), "--output", str(output), "--format", fmt) == 0
    written = output / f"d_nifti_masks{'.png' if fmt == 'png' else '.nii.gz'}"
    assert read_mask(written).max() > 0
    if fmt == "nii":
        image: Any = nib.load(written)
        np.testing.assert_allclose(image.affine, AFFINE)  # overlays the input in a medical viewer


def test_a_rerun_skips_what_is_done_unless_told_to_overwrite(checkpoint: Path, folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    image = str(folder / "a_tiff16.tif")
    assert predict(checkpoint, image, "--output", str(output)) == 0
    mask = output / "a_tiff16_masks.tif"
    os.utime(mask, (0, 0))
    objects = rows(output)["a_tiff16"]["objects"]
    assert predict(checkpoint, image, str(folder / "b_png8.png"), "--output", str(output)) == 0
    table = rows(output)
    assert table["a_tiff16"]["status"] == "skipped"
    assert table["a_tiff16"]["objects"] == objects  # the earlier run's numbers are kept
    assert table["b_png8"]["status"] == "ok"
    assert mask.stat().st_mtime == 0
    assert predict(checkpoint, image, "--output", str(output), "--overwrite") == 0
    assert mask.stat().st_mtime > 0
    assert rows(output)["a_tiff16"]["status"] == "ok"
    assert "b_png8" in rows(output)  # rows of images not in this run stay in the table


def test_a_corrupt_file_fails_alone_and_the_exit_code_says_so(
    checkpoint: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "broken.tif").write_bytes(b"II*\x00 truncated")
    tifffile.imwrite(folder / "volume.tif", np.zeros((4, 32, 32), np.uint16), metadata={"axes": "ZYX"})
    output = tmp_path / "out"
    assert predict(checkpoint, str(folder), str(tmp_path / "absent.tif"), "--output", str(output)) == 1
    table = rows(output)
    assert table["broken"]["status"] == "failed"
    assert "broken.tif" in table["broken"]["error"]
    assert "3D image for a 2D model" in table["volume"]["error"]
    assert sum(row["status"] == "ok" for row in table.values()) == 4
    assert not (output / "broken_masks.tif").exists()
    errors = capsys.readouterr().err
    assert "absent.tif: no such file" in errors
    assert "broken.tif" in errors


def test_nothing_is_written_outside_the_output_folder(
    checkpoint: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(folder.rglob("*"))
    assert predict(checkpoint, str(folder / "b_png8.png"), "--output", "out") == 0
    assert sorted(path.name for path in work.iterdir()) == ["out"]
    assert sorted(folder.rglob("*")) == before
    assert not [path for path in (work / "out").iterdir() if ".tmp" in path.name]


def test_two_processes_share_the_files_and_predict_each_once(checkpoint: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(5):
        tifffile.imwrite(images / f"image_{index}.tif", nuclei(index, (64, 64))[0])
    output = tmp_path / "out"
    code = predict(
        checkpoint, str(images), "--output", str(output), "--accelerator", "cpu", "--devices", "2",
        "--strategy", "ddp_spawn",
    )  # fmt: skip
    assert code == 0
    with (output / "predictions.csv").open() as stream:
        table = list(csv.DictReader(stream))
    assert sorted(row["name"] for row in table) == [f"image_{index}" for index in range(5)]
    assert all(row["status"] == "ok" for row in table)
    assert len(list(output.glob("*_masks.tif"))) == 5


@pytest.mark.gpu
def test_predict_on_every_visible_gpu_shares_the_files(checkpoint: Path, tmp_path: Path) -> None:
    """``--devices`` over all visible GPUs (1 on a one-GPU machine: the single-device path) with bf16."""
    import torch

    images = tmp_path / "images"
    images.mkdir()
    for index in range(5):
        tifffile.imwrite(images / f"image_{index}.tif", nuclei(index, (64, 64))[0])
    output = tmp_path / "out"
    devices = torch.cuda.device_count()
    strategy = ["--strategy", "ddp_spawn"] if devices > 1 else []
    code = predict(
        checkpoint, str(images), "--output", str(output), "--accelerator", "gpu", "--devices", str(devices),
        "--precision", "bf16", *strategy,
    )  # fmt: skip
    assert code == 0
    with (output / "predictions.csv").open() as stream:
        table = list(csv.DictReader(stream))
    assert sorted(row["name"] for row in table) == [f"image_{index}" for index in range(5)]
    assert all(row["status"] == "ok" for row in table)
