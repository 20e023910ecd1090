"""Training targets computed on the device, after augmentation, so boundaries stay one pixel wide.

* ``three_class_target_batch``: the same 3-class target as ``cellseg.data.targets.three_class_target`` (which is
  the reference the tests hold this one to), written with pooling so it runs batched on the GPU.
* ``distance_target_batch``: each object's distance to its own border, scaled to 1 at its deepest pixel (the
  device counterpart of ``cellseg.data.targets.normalised_distance_map``, octagonal rather than Euclidean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cellseg.data.targets import TargetClass


def _replicate_pad(values: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Pad every spatial axis by one pixel, repeating the edge (the image edge is not a border)."""
    return F.pad(values, [1, 1] * spatial_dims, mode="replicate")


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


def distance_target_batch(labels: torch.Tensor, max_steps: int = 256) -> torch.Tensor:
    """Per-object distance to the object's border, scaled to 1 at each object's deepest pixel, for a batch.

    Objects are eroded one pixel at a time, alternating the 4- and 8-neighbourhood (6- and 26- in 3D), which
    gives the octagonal approximation of the Euclidean distance; a pixel survives an erosion while its whole
    neighbourhood carries its own label, so touching objects erode each other apart and every object keeps its own
    peak. As in ``three_class_target_batch``, the image edge is not a border. Each object's distances are then
    divided by that object's largest, so small and large cells span the same range.

    Args:
        labels: ``(N, 1, *S)`` integer instance labels, ``S`` 2D or 3D.
        max_steps: erosions at most; objects wider than twice this saturate at its value before scaling.

    Returns:
        ``(N, 1, *S)`` float32, 0 on the background and in ``(0, 1]`` inside objects.

    Example:
        >>> labels = torch.zeros(1, 1, 5, 8, dtype=torch.int64)
        >>> labels[..., 1:4, 1:4], labels[..., 1:4, 4:7] = 1, 2  # two touching 3x3 squares
        >>> distance_target_batch(labels)[0, 0, 2]
        tensor([0.0000, 0.5000, 1.0000, 0.5000, 0.5000, 1.0000, 0.5000, 0.0000])
    """
    spatial_dims = labels.ndim - 2
    pool = F.max_pool2d if spatial_dims == 2 else F.max_pool3d
    values = labels.to(torch.float32)  # exact for labels below 2**24
    survivors = labels > 0
    distance = survivors.to(torch.float32)
    for step in range(max_steps):
        if not bool(survivors.any()):
            break
        # Survivors keep their label, the rest become -1, so a neighbour that did not survive also erodes.
        marked = _replicate_pad(torch.where(survivors, values, torch.full_like(values, -1.0)), spatial_dims)
        if step % 2 == 0:  # 4-neighbourhood: one pooling per axis, along that axis only
            uniform = torch.ones_like(survivors)
            for axis in range(spatial_dims):
                kernel = [1] * spatial_dims
                kernel[axis] = 3
                # Drop the padding of the other axes: this pooling looks along ``axis`` only.
                trimmed = marked[(..., *(slice(None) if a == axis else slice(1, -1) for a in range(spatial_dims)))]
                highest = pool(trimmed, kernel_size=tuple(kernel), stride=1)
                lowest = -pool(-trimmed, kernel_size=tuple(kernel), stride=1)
                uniform &= (highest == values) & (lowest == values)
        else:  # 8-neighbourhood
            highest = pool(marked, kernel_size=3, stride=1)
            lowest = -pool(-marked, kernel_size=3, stride=1)
            uniform = (highest == values) & (lowest == values)
        survivors = survivors & uniform
        distance += survivors.to(torch.float32)
    return distance / _per_object_maximum(labels, distance).clamp_min(1.0)


def _per_object_maximum(labels: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Each pixel's object's largest ``distance`` (0 on the background), objects told apart per sample.

    Args:
        labels: ``(N, 1, *S)`` integer instance labels.
        distance: ``(N, 1, *S)`` float.

    Returns:
        ``(N, 1, *S)`` float.
    """
    flat_labels = labels.reshape(len(labels), -1).to(torch.int64)
    offsets = torch.cumsum(flat_labels.amax(dim=1) + 1, dim=0) - (flat_labels.amax(dim=1) + 1)
    object_ids = (flat_labels + offsets[:, None]).reshape(-1)
    maxima = torch.zeros(int(object_ids.max()) + 1, dtype=distance.dtype, device=distance.device)
    maxima = maxima.scatter_reduce(0, object_ids, distance.reshape(-1), reduce="amax")
    return maxima[object_ids].reshape(distance.shape)
