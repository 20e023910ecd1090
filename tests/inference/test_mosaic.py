from __future__ import annotations

import numpy as np
import pytest

from cellseg.inference.mosaic import extent, pack


@pytest.mark.parametrize("ndim", [2, 3])
def test_every_box_gets_its_own_place_of_its_own_size(ndim: int) -> None:
    rng = np.random.default_rng(ndim)
    boxes = []
    for _ in range(60):
        start = rng.integers(0, 50, ndim)
        size = rng.integers(1, 14, ndim)
        boxes.append(tuple(slice(int(a), int(a + b)) for a, b in zip(start, size, strict=True)))
    mosaic = pack(boxes)
    assert len(mosaic.targets) == len(boxes)
    assert mosaic.sources == tuple(boxes)
    cover = np.zeros(mosaic.shape, dtype=np.int32)
    for source, target in zip(mosaic.sources, mosaic.targets, strict=True):
        assert extent(target) == extent(source)
        assert all(axis.start >= 0 and axis.stop <= size for axis, size in zip(target, mosaic.shape, strict=True))
        cover[target] += 1
    assert cover.max() == 1  # no two boxes overlap
    boxes_area = sum(int(np.prod(extent(box))) for box in boxes)
    assert cover.size < 3 * boxes_area  # compact, not a sparse grid


def test_no_boxes_and_one_axis() -> None:
    assert pack([]).shape == ()
    with pytest.raises(ValueError, match="2 or more axes"):
        pack([(slice(0, 3),)])
