"""Exported TorchScript and ONNX files give the checkpoint's probabilities, at any valid size, without cellseg.

Each export runs once per module (ONNX export takes seconds); the tests share them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import lightning as L
import pytest
import torch
from torch import nn

import cellseg
from cellseg.data.intensity import percentile_normalise
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.inference.export import (
    METADATA_NAME,
    SUFFIXES,
    ExportError,
    ExportFormat,
    ProbabilityNetwork,
    export_model,
    run_exported,
    sidecar_path,
    verify_export,
)
from cellseg.inference.model import LoadedModel, load_model
from cellseg.training.module import SegmentationModule

FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Exported:
    """One export of a checkpoint: the file, the model it came from, and its format."""

    path: Path
    checkpoint: Path
    model: LoadedModel
    fmt: ExportFormat


@pytest.fixture(scope="module")
def synthetic_image() -> torch.Tensor:
    """A normalised synthetic nuclei image ``(1, 96, 128)``."""
    image = generate_sample(SyntheticConfig(shape=(96, 128)), 0).image
    return torch.from_numpy(percentile_normalise(image[None]))


@pytest.fixture(
    scope="module", params=[(name, fmt) for name in ("checkpoint", "distance_checkpoint") for fmt in FORMATS]
)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The boundary and distance models, each exported to both formats at the default output path."""
    name, fmt = request.param
    source: Path = request.getfixturevalue(name)
    checkpoint = tmp_path_factory.mktemp("export") / source.name  # a copy: the default output lands next to it
    shutil.copyfile(source, checkpoint)
    path = export_model(checkpoint, fmt=fmt)
    return Exported(path, checkpoint, load_model(checkpoint), fmt)


@pytest.fixture(scope="module")
def volume_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny 3D model (stride 2), its batch norms given random statistics so that they matter."""
    path = tmp_path_factory.mktemp("volume") / "volume.ckpt"
    torch.manual_seed(0)
    module = SegmentationModule(network={"spatial_dims": 3, "channels": [4, 8]}, patch_size=[16, 16, 16])
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm3d):
            assert layer.running_mean is not None
            assert layer.running_var is not None
            layer.running_mean.normal_(0.0, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(layer.weight, 0.5, 1.5)
            nn.init.normal_(layer.bias, 0.0, 0.2)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.strategy.connect(module)  # save_checkpoint without fitting: the file is what 'cellseg fit' writes
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module", params=FORMATS)
def exported_volume(request: pytest.FixtureRequest, volume_checkpoint: Path) -> Exported:
    """The 3D model exported to each format."""
    path = export_model(volume_checkpoint, fmt=request.param)
    return Exported(path, volume_checkpoint, load_model(volume_checkpoint), request.param)


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
@pytest.mark.parametrize("batch", [1, 2])
def test_exported_probabilities_match_the_checkpoint(
    exported: Exported, synthetic_image: torch.Tensor, size: tuple[int, int], batch: int
) -> None:
    image = synthetic_image[:, : size[0], : size[1]]
    images = torch.stack([image, image.flip(-1)][:batch])  # two different images in a batch of 2
    assert verify_export(exported.path, exported.model, images) < TOLERANCE
    probabilities = run_exported(exported.path, images)
    assert probabilities.shape == (batch, len(exported.model.output_names), *size)
    classes = probabilities[:, :3].sum(dim=1)
    torch.testing.assert_close(classes, torch.ones_like(classes))  # the softmax is in the graph


def test_sidecar_says_what_a_deployment_needs(exported: Exported) -> None:
    assert exported.path == exported.checkpoint.with_suffix(SUFFIXES[exported.fmt])
    metadata: dict[str, Any] = json.loads(sidecar_path(exported.path).read_text())
    model = exported.model
    assert metadata["format"] == exported.fmt
    assert metadata["cellseg_version"] == cellseg.__version__
    assert metadata["checkpoint_sha256"] == model.sha256
    assert metadata["output_names"] == model.output_names
    assert (metadata["in_channels"], metadata["spatial_dims"], metadata["stride"]) == (1, 2, 4)
    assert metadata["tile_size"] == [64, 64]
    assert metadata["percentiles"] == list(model.percentiles)
    assert metadata["channel_order"] is None
    assert (metadata["input"]["name"], metadata["input"]["layout"]) == ("image", "NCHW")
    assert (metadata["output"]["name"], metadata["output"]["layout"]) == ("probabilities", "NCHW")
    assert ("opset" in metadata) == (exported.fmt == "onnx")
    written = [exported.checkpoint, exported.path, sidecar_path(exported.path)]
    assert sorted(exported.path.parent.iterdir()) == sorted(written)  # no temporary file left


def test_torchscript_runs_without_cellseg(exported: Exported) -> None:
    if exported.fmt != "torchscript":
        pytest.skip("TorchScript only")
    script = (
        "import json, sys, torch\n"
        f"extra = {{{METADATA_NAME!r}: ''}}\n"
        "model = torch.jit.load(sys.argv[1], _extra_files=extra)\n"
        "stride = json.loads(extra[" + repr(METADATA_NAME) + "])['stride']\n"
        "output = model(torch.zeros(2, 1, 3 * stride, 5 * stride))\n"
        "assert 'cellseg' not in sys.modules, 'loading imported cellseg'\n"
        "print(tuple(output.shape))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(exported.path)], capture_output=True, text=True, cwd=exported.path.parent
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str((2, len(exported.model.output_names), 12, 20))


def test_onnx_graph_has_dynamic_batch_and_spatial_axes(exported: Exported) -> None:
    if exported.fmt != "onnx":
        pytest.skip("ONNX only")
    import onnx

    proto = onnx.load(exported.path)
    embedded = {entry.key: entry.value for entry in proto.metadata_props}[METADATA_NAME]
    assert embedded == sidecar_path(exported.path).read_text()
    graph = proto.graph
    ((image,), (probabilities,)) = graph.input, graph.output
    assert (image.name, probabilities.name) == ("image", "probabilities")
    dims = [
        [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim] for value in (image, probabilities)
    ]
    assert dims == [
        ["batch", 1, "4*height_blocks", "4*width_blocks"],
        ["batch", len(exported.model.output_names), "4*height_blocks", "4*width_blocks"],
    ]


@pytest.mark.parametrize("shape", [(1, 1, 16, 16, 16), (2, 1, 8, 12, 6)])
def test_volume_model_exports_with_parity(exported_volume: Exported, shape: tuple[int, ...]) -> None:
    example = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    assert verify_export(exported_volume.path, exported_volume.model, example) < TOLERANCE
    assert json.loads(sidecar_path(exported_volume.path).read_text())["input"]["layout"] == "NCDHW"


def test_probability_network_is_the_module_with_its_activations(exported: Exported) -> None:
    module = exported.model.module
    image = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(ProbabilityNetwork(module.network)(image), module.probabilities(module(image)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_export_leaves_no_file(
    volume_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: ExportFormat
) -> None:
    copy = tmp_path / "model.ckpt"
    shutil.copyfile(volume_checkpoint, copy)
    output = copy.with_suffix(SUFFIXES[fmt])

    def half_written(_: object, path: str, **__: object) -> None:
        Path(path).write_bytes(b"half")  # a writer that dies mid-way
        raise OSError("disk full")

    def failing(*_: object, **__: object) -> None:
        raise RuntimeError("unsupported operator")

    if fmt == "torchscript":
        monkeypatch.setattr(torch.jit, "save", half_written)
    else:
        monkeypatch.setattr(torch.onnx, "export", failing)
    with pytest.raises(ExportError, match=rf"model\.ckpt: {fmt} export failed .*nothing was written"):
        export_model(copy, fmt=fmt)
    assert sorted(tmp_path.iterdir()) == [copy]
    output.write_bytes(b"previous export")  # an earlier export survives a failed one
    with pytest.raises(ExportError):
        export_model(copy, fmt=fmt)
    assert output.read_bytes() == b"previous export"
    assert sorted(tmp_path.iterdir()) == sorted([copy, output])


def test_bad_requests_are_refused_before_any_work(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"  # a checkpoint named like the TorchScript default
    with pytest.raises(ValueError, match="overwrite the checkpoint"):
        export_model(checkpoint, fmt="torchscript")
    with pytest.raises(ValueError, match="Unknown export format 'tflite': use one of torchscript, onnx"):
        export_model(checkpoint, fmt="tflite")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="opset >= 18"):
        export_model(checkpoint, fmt="onnx", opset=17)
    assert not list(tmp_path.iterdir())


def test_the_export_command_writes_and_verifies(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cellseg.cli import main

    output = tmp_path / "model.pt"
    assert main(["export", str(checkpoint), "--format", "torchscript", "--output", str(output)]) == 0
    assert output.exists()
    assert "largest difference from the checkpoint" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "absent.ckpt")]) == 1
