"""Training targets computed on the device, after augmentation, so boundaries stay one pixel wide.

The same 3-class target as ``cellseg.data.targets.three_class_target`` (which is the reference the tests hold this
one to), written with pooling so it runs batched on the GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cellseg.data.targets import TargetClass


def three_class_target_batch(labels: torch.Tensor) -> torch.Tensor:
    """Background / interior / boundary classes from a batch of instance labels.

    A pixel is boundary when it belongs to an object and one of its face neighbours (4 in 2D, 6 in 3D) carries
    another label, background included; pixels beyond the image edge count as the same label (as skimage's
    ``find_boundaries(mode="inner", connectivity=1)``).

    Args:
        labels: ``(N, 1, *S)`` integer instance labels, ``S`` 2D or 3D.

    Returns:
        ``(N, 1, *S)`` int64 classes (see ``TargetClass``).
    """
    spatial_dims = labels.ndim - 2
    values = labels.to(torch.float32)  # exact for labels below 2**24
    differs = torch.zeros_like(values, dtype=torch.bool)
    for axis in range(spatial_dims):
        kernel = [1] * spatial_dims
        kernel[axis] = 3
        padding = [0] * spatial_dims
        padding[axis] = 1
        pool = F.max_pool2d if spatial_dims == 2 else F.max_pool3d
        # Replicate padding: the image edge is not a border.
        pad = [0, 0] * spatial_dims
        pad[2 * (spatial_dims - 1 - axis)] = pad[2 * (spatial_dims - 1 - axis) + 1] = 1
        padded = F.pad(values, pad, mode="replicate")
        neighbour_max = pool(padded, kernel_size=tuple(kernel), stride=1)
        neighbour_min = -pool(-padded, kernel_size=tuple(kernel), stride=1)
        differs |= (neighbour_max != values) | (neighbour_min != values)
    target = torch.where(labels > 0, int(TargetClass.INTERIOR), int(TargetClass.BACKGROUND)).to(torch.int64)
    target[differs & (labels > 0)] = int(TargetClass.BOUNDARY)
    return target
