"""Export a trained model for deployment: one TorchScript or ONNX file that maps a normalised image to probabilities.

The exported graph is ``ProbabilityNetwork``: the checkpoint's ``ResAttUNet`` with the softmax (classes) and sigmoid
(distance) built in, so a runtime without cellseg (libtorch, onnxruntime, Triton) gets the same ``(N, K, *S)``
probabilities that ``predict`` works from. Tiling, padding and instance separation stay outside the graph. The
sidecar ``OUTPUT.json`` next to the file (e.g. ``best.onnx.json``), also embedded in it, says how to prepare the input
and what the output channels mean.

Both formats accept any batch size and any spatial size whose sides are multiples of the network's ``stride``; the
graph does not check that (the eager network's ``check_input_shape`` is Python, not part of the graph), so a
deployment must pad to it, as ``predict`` does.
"""

from __future__ import annotations

import json
import logging
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.jit._trace import TracerWarning  # torch.jit re-exports it, but not to type checkers

from cellseg import __version__
from cellseg.inference.model import LoadedModel, load_model
from cellseg.io.atomic import atomic_output
from cellseg.models import ResAttUNet
from cellseg.training.module import SegmentationModule

ExportFormat = Literal["torchscript", "onnx"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
SUFFIXES: dict[str, str] = {"torchscript": ".pt", "onnx": ".onnx"}
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
METADATA_NAME = "cellseg.json"  # the sidecar's text, also inside the file: a TorchScript extra file, ONNX metadata
MIN_OPSET = 18
SPATIAL_AXES = ("depth", "height", "width")


class ExportError(RuntimeError):
    """The exporter failed on a checkpoint; the message names the checkpoint and the format to try instead."""


class ProbabilityNetwork(nn.Module):
    """The deployable graph: the network's logits turned into probabilities, softmax and sigmoid included.

    It wraps the ``ResAttUNet`` alone, not the ``SegmentationModule``, so the exported graph carries no loss,
    augmenter or metric.

    Args:
        network: the trained network, in eval mode (``LoadedModel.module.network``).

    Shape:
        normalised ``(N, C, *S)`` -> probabilities ``(N, K, *S)`` in the order of ``LoadedModel.output_names``
        (softmax over the 3 classes, sigmoid on the distance channel if any); every entry of ``S`` a multiple of
        the network's total stride.
    """

    def __init__(self, network: ResAttUNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K, *S)`` for a normalised ``image`` ``(N, C, *S)``."""
        return SegmentationModule.probabilities(self.network(image))


def sidecar_path(exported: Path) -> Path:
    """Where ``export_model`` writes the deployment metadata of ``exported``: ``NAME.pt.json``, ``NAME.onnx.json``."""
    return exported.with_name(exported.name + ".json")


def deployment_metadata(model: LoadedModel, fmt: ExportFormat, opset: int | None = None) -> dict[str, Any]:
    """What a deployment needs besides the graph: how to prepare the input, what the output means, provenance.

    Args:
        model: the loaded checkpoint.
        fmt: the export format.
        opset: the ONNX opset, for ``"onnx"``.

    Returns:
        A JSON-serialisable dictionary (the sidecar's content).
    """
    layout = "NC" + "DHW"[-model.spatial_dims :]
    return {
        "cellseg_version": __version__,
        "format": fmt,
        **({"opset": opset} if fmt == "onnx" else {}),
        "torch_version": torch.__version__,
        "checkpoint": model.path.name,
        "checkpoint_sha256": model.sha256,
        "input": {
            "name": INPUT_NAME,
            "layout": layout,
            "dtype": "float32",
            "preparation": (
                "select channel_order (if set), then map each channel's percentiles[0] percentile to 0 and "
                "percentiles[1] to 1 (values outside kept); pad every spatial side to a multiple of stride"
            ),
        },
        "output": {
            "name": OUTPUT_NAME,
            "layout": layout,
            "dtype": "float32",
            "meaning": "channel k is the probability of output_names[k]: softmax over the 3 classes, sigmoid "
            "on the distance map",
        },
        "output_names": list(model.output_names),
        "in_channels": model.in_channels,
        "spatial_dims": model.spatial_dims,
        "stride": model.stride,
        "tile_size": list(model.tile_size),
        "percentiles": list(model.percentiles),
        "channel_order": model.channel_order,
    }


def export_model(
    checkpoint: Path, output: Path | None = None, fmt: ExportFormat = "torchscript", opset: int = 18
) -> Path:
    """Export a checkpoint's network with its softmax/sigmoid to TorchScript or ONNX, and write the sidecar JSON.

    The export runs on the CPU in eval mode (batch norm uses its running statistics). Both files are written to a
    temporary name in the output's folder and renamed into place only when everything succeeded, so a failed
    export leaves no file behind and an existing file untouched.

    * ``"torchscript"``: ``torch.jit.trace``. Tracing records the attention gates' interpolation to the skip's size
      from the input's shape, not as constants, so the traced graph runs at any valid size (the tests check parity
      at two sizes). ``torch.jit.script`` is not needed and would not compile ``ResAttUNet`` as written. PyTorch
      deprecates TorchScript in favour of ``torch.export``; it is kept because libtorch, Triton's PyTorch backend
      and DJL load it.
    * ``"onnx"``: the default exporter of this PyTorch (``dynamo=True``: ``torch.export``, then onnxscript), with
      the batch and every spatial axis dynamic. Spatial axes are declared as ``stride * Dim(...)``, the constraint
      the network's shape check imposes (``torch.export`` itself rejects a plain ``Dim`` for it), so the ONNX
      dimensions read e.g. ``4*height_blocks``. The legacy ``dynamo=False`` exporter is not used: it was not
      needed, and PyTorch is retiring it. The graph is saved as one file (no external data) and keeps the
      exporter's default graph optimisation, which 3D models need (onnxscript's unoptimised graph gives bias-free
      3D convolutions a bias of the wrong shape, which onnxruntime rejects).

    Args:
        checkpoint: a ``.ckpt`` written by ``cellseg fit``.
        output: the file to write; ``None`` puts ``NAME.pt`` (TorchScript) or ``NAME.onnx`` next to the checkpoint.
        fmt: ``"torchscript"`` or ``"onnx"``.
        opset: the ONNX opset, at least 18 (the exporter's lowest; conversion to older opsets is not reliable).

    Returns:
        The exported file; its metadata is at ``sidecar_path(output)``.

    Raises:
        ValueError: an unknown format, an opset below 18, or an output that would overwrite the checkpoint.
        CheckpointError: the checkpoint cannot be loaded.
        ImportError: ONNX export without the ``onnx`` extra installed.
        ExportError: the exporter failed.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}.")
    if fmt == "onnx" and opset < MIN_OPSET:
        raise ValueError(
            f"ONNX opset {opset} is too old: PyTorch's exporter writes opset {MIN_OPSET} and up, and its conversion "
            f"to older opsets is not reliable; use opset >= {MIN_OPSET} (onnxruntime >= 1.14 runs it)."
        )
    checkpoint = Path(checkpoint)
    output = Path(output) if output is not None else checkpoint.with_suffix(SUFFIXES[fmt])
    if output.resolve() == checkpoint.resolve():
        raise ValueError(f"{output}: exporting would overwrite the checkpoint itself; give another output path.")
    model = load_model(checkpoint, device="cpu")
    network = ProbabilityNetwork(model.module.network).eval()
    example = example_input(model)
    metadata = deployment_metadata(model, fmt, opset if fmt == "onnx" else None)
    metadata_text = json.dumps(metadata, indent=2) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(output) as model_part, atomic_output(sidecar_path(output)) as sidecar_part:
        try:
            if fmt == "torchscript":
                _save_torchscript(network, example, model_part, metadata_text)
            else:
                _save_onnx(network, example, model_part, opset, metadata_text)
        except ImportError:
            raise
        except Exception as error:  # trace and export raise many types; each gets the same advice
            other = "onnx" if fmt == "torchscript" else "torchscript"
            raise ExportError(
                f"{checkpoint}: {fmt} export failed ({type(error).__name__}: {error}); nothing was written. "
                f"Try the {other} format instead, or report this with the traceback."
            ) from error
        sidecar_part.write_text(metadata_text, encoding="utf-8")
    return output


def example_input(model: LoadedModel) -> torch.Tensor:
    """A small valid input for tracing: batch 2, sides 2, 3(, 4) times the stride, so no axis is 1 or equal.

    Batch 2 and coarsest sides above 1 keep ``torch.export`` from specialising a size-1 axis to a constant.

    Returns:
        ``(2, in_channels, *S)`` float32, seeded standard normal.
    """
    sides = [model.stride * (2 + axis) for axis in range(model.spatial_dims)]
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, model.in_channels, *sides, generator=generator)


def verify_export(exported: Path, model: LoadedModel, example: torch.Tensor) -> float:
    """How far the exported file's probabilities are from the checkpoint's, on ``example``.

    The exported file runs on the CPU (``torch.jit.load`` for TorchScript, an onnxruntime CPU session for ONNX);
    the format is read from the file, not its name (a TorchScript archive is a zip file, ONNX a protobuf).

    Args:
        exported: a file written by ``export_model``.
        model: the checkpoint it was exported from.
        example: a normalised batch ``(N, C, *S)``, sides multiples of ``model.stride``.

    Returns:
        The largest absolute difference between the two ``(N, K, *S)`` probability maps.
    """
    example = example.detach().to("cpu", torch.float32)
    with torch.no_grad():  # the reference first: its shape check explains a bad example
        expected = model.module.probabilities(model.module(example.to(model.module.device))).cpu()
    actual = run_exported(exported, example)
    if actual.shape != expected.shape:
        raise ValueError(
            f"{exported}: output shape {tuple(actual.shape)} differs from the checkpoint's {tuple(expected.shape)}; "
            "was it exported from another checkpoint? Compare the sidecar's checkpoint_sha256."
        )
    return float((actual - expected).abs().max())


def run_exported(exported: Path, image: torch.Tensor) -> torch.Tensor:
    """Run an exported file on the CPU: probabilities ``(N, K, *S)`` for a normalised ``image`` ``(N, C, *S)``."""
    exported = Path(exported)
    if not exported.is_file():
        raise FileNotFoundError(f"{exported}: no such exported model; write one with export_model.")
    image = image.detach().to("cpu", torch.float32).contiguous()
    if zipfile.is_zipfile(exported):
        with warnings.catch_warnings():
            _ignore_torchscript_deprecation()
            scripted = torch.jit.load(exported, map_location="cpu")  # type: ignore[no-untyped-call]  # torch's stubs
        with torch.no_grad():
            result: torch.Tensor = scripted(image)
        return result
    import onnxruntime  # type: ignore[import-untyped]  # lazily: the optional 'onnx' extra

    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([OUTPUT_NAME], {INPUT_NAME: image.numpy()})
    return torch.from_numpy(np.asarray(probabilities))


def _save_torchscript(network: ProbabilityNetwork, example: torch.Tensor, path: Path, metadata: str) -> None:
    with warnings.catch_warnings():
        # The traced-away Python branches: ResAttUNet.check_input_shape (the deployment pads to the stride, see the
        # sidecar) and the attention gate's "is the gating map on the skip's grid" test, False for every valid
        # input. Both freeze to the values they have for any valid input; other TracerWarnings still show.
        warnings.filterwarnings("ignore", category=TracerWarning, module=r"cellseg\.models\.")
        _ignore_torchscript_deprecation()
        with torch.no_grad():
            traced = torch.jit.trace(network, example)  # type: ignore[no-untyped-call]  # torch's stubs
        torch.jit.save(traced, str(path), _extra_files={METADATA_NAME: metadata})


def _save_onnx(network: ProbabilityNetwork, example: torch.Tensor, path: Path, opset: int, metadata: str) -> None:
    try:
        import onnxscript  # noqa: F401  # the dynamo exporter's operator library; fail early with the fix
    except ImportError as error:
        raise ImportError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'cellseg[onnx]'.") from error
    from torch.export import Dim

    spatial_dims = example.ndim - 2
    stride = network.network.total_stride
    spatial_shapes = {
        2 + axis: stride * Dim(f"{name}_blocks") for axis, name in enumerate(SPATIAL_AXES[-spatial_dims:])
    }
    dynamic_shapes = {INPUT_NAME: {0: Dim("batch"), **spatial_shapes}}
    with _quiet_torchvision_notice(), warnings.catch_warnings():
        # Lightning 2.6's pytree shim on torch 2.13, met when torch.export copies the model (see pyproject.toml)
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
        program = torch.onnx.export(
            network,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            verbose=False,
        )
    if program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no ONNXProgram")
    program.model.metadata_props[METADATA_NAME] = metadata
    program.save(path, external_data=False)


def _ignore_torchscript_deprecation() -> None:
    """Hide PyTorch's 'torch.jit.* is deprecated' notices: TorchScript is the format asked for, on purpose."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)


@contextmanager
def _quiet_torchvision_notice() -> Iterator[None]:
    """Silence the exporter's 'torchvision is not installed' log lines: cellseg uses no torchvision operator."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
