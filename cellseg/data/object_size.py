"""The typical size of the objects in instance masks: the median diameter that post-processing scales to.

An object's diameter is that of the disc (2D) or ball (3D) with its area (volume), as Cellpose measures its
``diameter``; the median over every object of a set of masks is robust to the specks and merged clumps that
annotations hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt


def equivalent_diameters(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
    """The diameter of the disc (2D) or ball (3D) of each object's area (volume).

    Args:
        labels: integer instance labels ``S`` (2D or 3D), 0 = background.

    Returns:
        float64 ``(N,)`` diameters in pixels, one per label present (in label order).

    Example:
        >>> labels = np.zeros((20, 20), dtype=np.int32)
        >>> labels[2:12, 2:12] = 1  # 100 px: a disc of diameter 11.3
        >>> equivalent_diameters(labels).round(1)
        array([11.3])
    """
    sizes = np.bincount(labels.ravel().astype(np.int64))[1:]
    sizes = sizes[sizes > 0].astype(np.float64)
    if labels.ndim == 3:
        diameters: npt.NDArray[np.float64] = 2.0 * np.cbrt(3.0 * sizes / (4.0 * math.pi))
        return diameters
    return 2.0 * np.sqrt(sizes / math.pi)


def median_object_diameter(label_images: Iterable[npt.NDArray[np.integer]]) -> float | None:
    """The median equivalent diameter over every object of ``label_images`` (pixels); ``None`` without objects.

    Args:
        label_images: instance label arrays ``S``, all 2D or all 3D.
    """
    diameters = [equivalent_diameters(labels) for labels in label_images]
    pooled = np.concatenate(diameters) if diameters else np.empty(0)
    return float(np.median(pooled)) if pooled.size else None
