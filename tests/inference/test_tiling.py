from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers.utils import _get_scan_interval, sliding_window_inference

from cellseg.data.intensity import percentile_normalise
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.evaluation.matching import match_instances
from cellseg.inference.instances import InstanceConfig
from cellseg.inference.model import LoadedModel, load_model
from cellseg.inference.segment import BlockConfig, block_boxes, segment_image
from cellseg.inference.tiling import (
    TileConfig,
    dihedral_transforms,
    fitted_tiles,
    predict_probabilities,
    tile_batch_for,
    tile_predictor,
    tile_size_for,
)


@pytest.fixture(scope="module")
def model(distance_checkpoint: Path) -> LoadedModel:
    return load_model(distance_checkpoint)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    sample = generate_sample(SyntheticConfig(shape=(256, 256)), 5)
    return percentile_normalise(sample.image[None]).astype(np.float32)


def test_tiled_prediction_matches_the_whole_image_pass_without_seams(model: LoadedModel, image: np.ndarray) -> None:
    whole = predict_probabilities(model, image, TileConfig(tile_size=(256, 256)))
    tiled = predict_probabilities(model, image, TileConfig(tile_size=(64, 64), overlap=0.5))
    difference = np.abs(whole - tiled).max(axis=0)
    assert difference.mean() < 0.002
    # A seam is a line of large differences where tiles meet; abutting tiles without blending show them (their
    # worst column differs by about 0.09 on average), the blended tiles must not.
    with torch.inference_mode():
        abutting = sliding_window_inference(
            torch.from_numpy(image)[None], (64, 64), 4, tile_predictor(model, TileConfig()), overlap=0.0
        )
    assert isinstance(abutting, torch.Tensor)
    abutting_difference = np.abs(whole - abutting[0].numpy()).max(axis=0)
    for axis in (0, 1):
        assert difference.mean(axis=axis).max() < 0.01
        assert abutting_difference.mean(axis=axis).max() > 0.03
    whole_labels = segment_image(model, image, TileConfig(tile_size=(256, 256)))
    tiled_labels = segment_image(model, image, TileConfig(tile_size=(64, 64), overlap=0.5))
    assert match_instances(whole_labels.labels, tiled_labels.labels).at(0.5).f1 > 0.95


def test_blocks_give_the_same_cells_as_one_pass(model: LoadedModel, image: np.ndarray) -> None:
    for method in ("boundary", "distance"):
        instances = InstanceConfig(method=method)
        one = segment_image(model, image, instances=instances)
        blocked = segment_image(model, image, instances=instances, blocks=BlockConfig(block_size=96, margin=32))
        assert one.blocks == 1
        assert blocked.blocks == 9
        assert match_instances(one.labels, blocked.labels).at(0.5).f1 > 0.95
        assert np.array_equal(np.unique(blocked.labels), np.arange(blocked.count + 1))
        assert blocked.areas.tolist() == np.bincount(blocked.labels.ravel())[1:].tolist()


def test_an_image_of_one_block_gets_what_the_block_loop_gives_it(model: LoadedModel, image: np.ndarray) -> None:
    from cellseg.inference.segment import _segment_blocks

    instances = InstanceConfig().for_model(model.object_diameter)
    whole = segment_image(model, image, instances=instances)
    looped = _segment_blocks(model, image, TileConfig(), instances, block_boxes(image.shape[1:], BlockConfig()))
    assert whole.count > 0
    for field in ("labels", "foreground", "areas", "confidences"):
        assert np.array_equal(getattr(whole, field), getattr(looped, field)), field
    assert (whole.blocks, whole.cut_objects, whole.border_objects) == (1, 0, looped.border_objects)


def test_block_cores_tile_the_image_exactly() -> None:
    shape = (250, 130)
    covered = np.zeros(shape, dtype=int)
    for core, extended in block_boxes(shape, BlockConfig(block_size=100, margin=16)):
        covered[core] += 1
        for c, e, size in zip(core, extended, shape, strict=True):
            assert e.start == max(c.start - 16, 0)
            assert e.stop == min(c.stop + 16, size)
    assert np.all(covered == 1)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_every_test_time_transform_is_undone_by_its_inverse(spatial_dims: int) -> None:
    tensor = torch.arange(2 * 3 * 4 * 4 * (4 if spatial_dims == 3 else 1), dtype=torch.float32)
    tensor = (
        tensor.reshape(2, 3, *([4] * (spatial_dims - 2)), 4, 4) if spatial_dims == 3 else tensor.reshape(2, 3, 4, 4)
    )
    transforms = dihedral_transforms(spatial_dims)
    assert len(transforms) == (8 if spatial_dims == 2 else 4)
    views = {tuple(forward(tensor).flatten().tolist()) for forward, _ in transforms}
    assert len(views) == len(transforms)  # all different
    for forward, inverse in transforms:
        assert torch.equal(inverse(forward(tensor)), tensor)


def test_tta_probabilities_stay_probabilities_and_agree_with_plain(model: LoadedModel, image: np.ndarray) -> None:
    plain = predict_probabilities(model, image[:, :128, :128], TileConfig())
    augmented = predict_probabilities(model, image[:, :128, :128], TileConfig(tta=True))
    assert np.allclose(augmented[:3].sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(plain - augmented).mean() < 0.05


@pytest.mark.parametrize("stride", [4, 16])
def test_fitted_tiles_cover_each_axis_with_the_fewest_tiles_sharing_the_margin(stride: int) -> None:
    margin, largest = 32, 512
    sizes = [1, 15, 16, 130, 300, 511, 512, 513, 520, 1000, 1024, 1388, 2048, 4096, 10000]
    for size in sizes:
        (side,), (overlap,) = fitted_tiles((size,), (128,), stride, margin, largest)
        assert side % stride == 0
        assert side <= largest
        # the tiles MONAI's sliding window takes with these settings (the image padded up to one tile if smaller)
        padded = max(size, side)
        interval = _get_scan_interval((padded,), (side,), 1, (overlap,))
        starts = sorted({s[0].start for s in dense_patch_slices((padded,), (side,), interval)})
        fewest = 1 if size <= largest else -(-(size - margin) // (largest - margin))
        assert len(starts) == fewest, size
        assert starts[0] == 0
        assert starts[-1] + side >= size
        assert all(b - a <= side - margin for a, b in itertools.pairwise(starts)), size


def test_fitted_tiles_of_an_image_within_the_largest_tile_are_one_pass(model: LoadedModel, image: np.ndarray) -> None:
    fitted = predict_probabilities(model, image, TileConfig(max_tile=512))
    assert np.array_equal(fitted, predict_probabilities(model, image, TileConfig(tile_size=(256, 256))))


def test_fitted_tiles_leave_no_seams(model: LoadedModel, image: np.ndarray) -> None:
    whole = predict_probabilities(model, image, TileConfig(tile_size=(256, 256)))
    # at most 96 px a side: 4 x 4 tiles of 88 px sharing 0.5 x the 64 px patch = 32 px (abutting tiles: > 0.03, see
    # test_tiled_prediction_matches_the_whole_image_pass_without_seams)
    fitted = predict_probabilities(model, image, TileConfig(max_tile=96, overlap=0.5))
    difference = np.abs(whole - fitted).max(axis=0)
    assert difference.mean() < 0.002
    for axis in (0, 1):
        assert difference.mean(axis=axis).max() < 0.015


def test_tile_sizes_must_fit_the_network(model: LoadedModel) -> None:
    assert tile_size_for(model, TileConfig()) == (64, 64)
    with pytest.raises(ValueError, match="multiple of 4"):
        tile_size_for(model, TileConfig(tile_size=(62, 64)))
    with pytest.raises(ValueError, match="give 2 sides"):
        tile_size_for(model, TileConfig(tile_size=(64, 64, 64)))


def test_a_cell_wider_than_the_margin_is_kept_and_counted_as_cut() -> None:
    from cellseg.inference.segment import _objects_owned_by_block

    block_labels = np.zeros((40, 40), dtype=np.int32)
    block_labels[5:15, 5:15] = 1  # small, centred in the core
    block_labels[20:40, 10:30] = 2  # centred in the core, runs into the margin's far edge
    block_labels[36:40, 0:4] = 3  # centred in the margin: the neighbour's
    core, extended = (slice(0, 32), slice(0, 32)), (slice(0, 40), slice(0, 40))
    owned, cut = _objects_owned_by_block(block_labels, core, extended, shape=(100, 100))
    assert np.array_equal(np.unique(owned), [0, 1, 2])
    assert cut == 1


def test_bf16_autocast_on_the_cpu_stays_close_to_float32(model: LoadedModel, image: np.ndarray) -> None:
    crop = image[:, :128, :128]
    full = predict_probabilities(model, crop, TileConfig())
    half = predict_probabilities(model, crop, TileConfig(precision="bf16"))
    assert half.dtype == np.float32
    assert not np.array_equal(full, half)  # autocast did run in bf16
    assert np.abs(full - half).mean() < 0.02
    assert np.allclose(half[:3].sum(axis=0), 1.0, atol=1e-4)
    # fp16 autocast is GPU-only: on the CPU it is the float32 pass.
    assert np.array_equal(full, predict_probabilities(model, crop, TileConfig(precision="16")))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_gpu_prediction_matches_the_cpu(distance_checkpoint: Path, image: np.ndarray, precision: str) -> None:
    """On CUDA (channels-last, autocast, blending on the device), the same probabilities and cells as the CPU."""
    cpu = load_model(distance_checkpoint)
    gpu = load_model(distance_checkpoint, device="cuda")
    reference = predict_probabilities(cpu, image, TileConfig())
    probabilities = predict_probabilities(gpu, image, TileConfig(precision=precision))
    tolerance = 1e-3 if precision == "32" else 0.02
    assert np.abs(reference - probabilities).mean() < tolerance
    cells = segment_image(gpu, image, TileConfig(precision=precision)).labels
    assert match_instances(segment_image(cpu, image).labels, cells).at(0.5).f1 > 0.95


def test_the_default_tile_batch_holds_a_fixed_pixel_count_of_at_least_two_tiles() -> None:
    default = TileConfig()
    assert tile_batch_for(default, (128, 128)) == 32
    assert tile_batch_for(default, (256, 256)) == 8
    assert tile_batch_for(default, (448, 448)) == 2
    assert tile_batch_for(default, (16, 32, 64)) == 4  # 3D: 2^17 voxels
    assert tile_batch_for(default, (64, 64, 64)) == 2  # under two tiles' worth: never one (3D ran 4x slower on one)
    assert tile_batch_for(TileConfig(batch_size=3), (128, 128)) == 3


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_the_tile_batch_changes_the_speed_not_the_probabilities(
    model: LoadedModel, image: np.ndarray, batch_size: int | None
) -> None:
    reference = predict_probabilities(model, image, TileConfig(tile_size=(64, 64), batch_size=16))
    batched = predict_probabilities(model, image, TileConfig(tile_size=(64, 64), batch_size=batch_size))
    np.testing.assert_allclose(batched, reference, atol=1e-5)
