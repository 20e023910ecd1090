"""The report's pictures: display images of any channel count, layers on one grid, thumbnails, colours."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from cellseg.io.image import ImageData
from cellseg.io.writers import outline_colours
from cellseg.review.layers import (
    MASK_ALPHA,
    MAX_THUMBNAIL_SIDE,
    TRUTH_COLOUR,
    display_channels,
    object_boundaries,
    probability_layer,
    render_image,
    shrink_image,
    shrink_labels,
    thumbnail_pixels,
    to_display,
)


def image_data(array: np.ndarray, spatial_dims: int = 2) -> ImageData:
    return ImageData(array, spatial_dims, (1.0,) * spatial_dims, None, Path("x.tif"))


def squares_labels(shape: tuple[int, int], size: int = 10) -> np.ndarray:
    """Squares of ``size`` on a grid, label ``i + 1`` each."""
    labels = np.zeros(shape, dtype=np.uint16)
    label = 0
    for row in range(2, shape[0] - size, 2 * size):
        for column in range(2, shape[1] - size, 2 * size):
            label += 1
            labels[row : row + size, column : column + size] = label
    return labels


@pytest.mark.parametrize(
    ("channels", "expected_shape"), [(1, (20, 30)), (2, (20, 30, 3)), (3, (20, 30, 3)), (5, (20, 30, 3))]
)
def test_display_images_are_grey_or_rgb(channels: int, expected_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    image = image_data(rng.integers(0, 4000, (channels, 20, 30)).astype(np.uint16))
    display = to_display(shrink_image(display_channels(image), 1))
    assert display.shape == expected_shape
    assert display.dtype == np.uint8
    assert display.max() == 255
    if channels == 2:
        assert not display[..., 2].any()  # the padded blue is empty
        assert display[..., 1].any()


def test_a_3d_image_shows_its_middle_slice_and_a_flat_channel_is_black() -> None:
    volume = np.zeros((1, 5, 8, 8), dtype=np.float32)
    volume[0, 2, 2:6, 2:6] = 1.0
    display = to_display(shrink_image(display_channels(image_data(volume, 3)), 1))
    assert display.shape == (8, 8)
    assert display[3, 3] == 255
    assert not to_display(np.full((4, 4), 7.0, dtype=np.float32)).any()


def test_boundaries_are_inner_four_connected_and_closed_at_the_border() -> None:
    labels = np.zeros((6, 6), dtype=np.uint8)
    labels[:3, :3] = 1
    labels[:3, 3:] = 2  # touching object 1
    boundary = object_boundaries(labels)
    assert boundary[0].all()  # along the image border
    assert boundary[:3, 2].all()
    assert boundary[:3, 3].all()
    assert not boundary[1, 1]
    assert not boundary[3:].any()


def test_shrinking_keeps_labels_and_averages_the_image() -> None:
    labels = np.arange(35, dtype=np.uint16).reshape(5, 7)
    small = shrink_labels(labels, 2)
    assert small.shape == (3, 4)
    assert set(np.unique(small)) <= set(np.unique(labels))
    image = np.ones((5, 7, 3), dtype=np.uint8)
    assert shrink_image(image, 2).shape == (3, 4, 3)
    assert np.allclose(shrink_image(image, 2), 1.0)


def test_render_writes_every_layer_on_one_grid_named_by_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = squares_labels((4100, 300), size=40)
    truth = np.roll(labels, 3, axis=1)
    probability = (labels > 0).astype(np.float32)
    image = image_data(rng.integers(0, 255, (1, 4100, 300)).astype(np.uint8))
    rendered = render_image(tmp_path, 7, image, labels, probability, truth)
    assert rendered.thumbnail == "thumbs/000007.png"
    assert rendered.layers == {kind: f"layers/000007_{kind}.png" for kind in rendered.layers}
    assert (rendered.width, rendered.height) == (100, 1367)  # shrunk 3x: longest side <= 2048
    shapes = {kind: iio.imread(tmp_path / str(path)).shape for kind, path in rendered.layers.items()}
    assert {shape[:2] for shape in shapes.values()} == {(1367, 100)}
    assert shapes["image"] == (1367, 100)
    assert all(shapes[kind][2] == 4 for kind in ("mask", "contours", "probability", "truth"))
    thumbnail = iio.imread(tmp_path / str(rendered.thumbnail))
    assert max(thumbnail.shape[:2]) <= MAX_THUMBNAIL_SIDE
    assert thumbnail.shape[2] == 3


def test_layer_colours_and_transparency(tmp_path: Path) -> None:
    labels = squares_labels((64, 64))
    probability = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    image = image_data(np.zeros((1, 64, 64), dtype=np.uint16))
    rendered = render_image(tmp_path, 0, image, labels, probability, labels)
    read = {kind: iio.imread(tmp_path / str(path)) for kind, path in rendered.layers.items()}
    inside = labels != 0
    assert (read["mask"][inside, 3] == round(MASK_ALPHA * 255)).all()
    assert (read["mask"][~inside] == 0).all()
    assert (read["mask"][inside, :3] == outline_colours(labels[inside])).all()
    boundary = object_boundaries(labels)
    assert (read["contours"][boundary, :3] == outline_colours(labels[boundary])).all()
    assert (read["contours"][~boundary, 3] == 0).all()
    assert (read["truth"][boundary, :3] == TRUTH_COLOUR).all()
    alpha = read["probability"][..., 3].astype(int)
    assert alpha[0, 0] == 0
    assert alpha[-1, -1] > 200
    assert (np.diff(alpha.ravel()) >= 0).all()  # opacity rises with the probability
    assert (probability_layer(np.zeros((2, 2), dtype=np.float16))[..., 3] == 0).all()


def test_without_an_image_the_mask_is_drawn_on_black_and_without_anything_nothing_is_written(tmp_path: Path) -> None:
    labels = squares_labels((40, 50))
    rendered = render_image(tmp_path, 3, None, labels)
    assert not iio.imread(tmp_path / "layers" / "000003_image.png").any()
    assert rendered.layers["probability"] is None
    assert rendered.layers["truth"] is None
    nothing = render_image(tmp_path / "other", 4, None, None)
    assert nothing.thumbnail is None
    assert not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="differ in size"):
        render_image(tmp_path, 5, image_data(np.zeros((1, 40, 51))), labels)


def test_thumbnail_contours_are_drawn_at_thumbnail_resolution() -> None:
    labels = squares_labels((1024, 1024), size=60)
    thumbnail = thumbnail_pixels(np.zeros((1024, 1024), dtype=np.uint8), labels)
    assert thumbnail.shape == (256, 256, 3)
    small = labels[::4, ::4]
    drawn = thumbnail.any(axis=2)
    assert (drawn == object_boundaries(small)).all()
