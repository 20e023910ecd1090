"""Synthetic fluorescence nuclei with instance masks, for the demo and the tests (no download, no torch).

A sample is built the way a widefield image of stained nuclei comes about. Irregular ellipses (2D) or ellipsoids
(3D) are placed in the field, some pressed against a neighbour so that the two touch, and painted into an instance
mask. The mask is then rendered as light (a brightness per nucleus, a dimmer rim, chromatin texture, bright
nucleoli-like spots, background haze), scaled by an uneven illumination field, blurred by a Gaussian PSF and recorded
with Poisson (photon) and Gaussian (read) noise. One seed drives all of it, so a seed gives the same arrays every run.

Lengths (radii, PSF, texture grain) are in the physical units of ``SyntheticConfig.spacing``, so a coarse z spacing
makes nuclei flat in z when counted in voxels, as in a confocal stack.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt
import tifffile
from scipy import ndimage

FloatArray: TypeAlias = npt.NDArray[np.float32]
Seed: TypeAlias = int | Sequence[int]
OutputDtype: TypeAlias = Literal["uint16", "float32"]
Layout: TypeAlias = Literal["stardist", "cellpose"]
FileFormat: TypeAlias = Literal["tif"]

LAYOUTS: tuple[str, ...] = get_args(Layout)
FILE_FORMATS: tuple[str, ...] = get_args(FileFormat)
MAX_LABELS = int(np.iinfo(np.uint16).max)

# Placement: tries per nucleus before it is given up (the field is full); how far a clustered nucleus is pushed into
# its neighbour (fraction of the two radii along the line between centres); how much of it may lie on nuclei already
# there; and the margin, in outline radii, that keeps a free nucleus from touching anything by chance.
_PLACEMENT_TRIES = 30
_CLUSTER_DISTANCE = (0.78, 0.95)
_CLUSTER_MAX_OVERLAP = 0.3
_FREE_MARGIN = 1.15
# Outline perturbation: the number of smooth waves on the unit circle or sphere and their angular frequency range.
_OUTLINE_WAVES = {2: 4, 3: 6}
_OUTLINE_FREQUENCY = (1.5, 4.0)
# Nucleoli sit in a nucleus's interior, where its normalised radius is below this.
_NUCLEOLUS_INTERIOR = 0.7


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic samples look; the defaults give a 256x256 field of 20-40 DAPI-like nuclei, ~1/4 of them touching.

    Intensities are fractions of the detector's full scale; lengths are in the units of ``spacing`` (pixels when it
    is 1).

    Attributes:
        shape: image shape, ``(H, W)`` or ``(D, H, W)``.
        spacing: voxel size per axis, ``(y, x)`` or ``(z, y, x)``; ``None`` means 1 along every axis. A z spacing
            coarser than the in-plane one makes nuclei flatter in z, counted in voxels.
        n_nuclei: inclusive range of how many nuclei to place (the density); fewer come out where the field is full.
        radius: range of a nucleus's mean radius.
        elongation: range of the ratio of a nucleus's longest to its shortest axis (1 = round).
        irregularity: amplitude of the smooth random perturbation of the outline, relative to the radius.
        cluster_fraction: fraction of nuclei placed against one already there so that the two touch.
        brightness: range of a nucleus's mean intensity.
        edge_dimming: how much darker a nucleus's rim is than its centre (0 = flat).
        texture: relative standard deviation of the chromatin texture inside nuclei.
        texture_scale: grain size (Gaussian sigma) of the texture.
        nucleoli: inclusive range of bright spots per nucleus.
        nucleolus_radius: Gaussian sigma of the largest spots (each spot gets 60-100% of it).
        nucleolus_gain: how much brighter than its nucleus a spot's centre is, relative to the nucleus.
        illumination: relative drop of the illumination from its brightest to its darkest point (0 = even).
        background: light added everywhere (haze, autofluorescence) before illumination, blur and noise.
        psf_sigma: Gaussian PSF sigma, one value for every axis or one per axis.
        photons: expected photon count of a full-scale pixel; sets the Poisson noise (lower is noisier).
        read_noise: standard deviation of the Gaussian camera noise.
        min_size: fewest pixels (voxels) a nucleus may have; smaller ones, e.g. slivers cut by the image border,
            are dropped from image and mask alike.
        dtype: ``"uint16"`` (counts in ``0..max_value``) or ``"float32"`` (values in ``[0, 1]``).
        max_value: full scale of ``uint16`` images; 4095 is a 12-bit camera.
    """

    shape: tuple[int, ...] = (256, 256)
    spacing: tuple[float, ...] | None = None
    n_nuclei: tuple[int, int] = (20, 40)
    radius: tuple[float, float] = (6.0, 11.0)
    elongation: tuple[float, float] = (1.0, 1.7)
    irregularity: float = 0.08
    cluster_fraction: float = 0.25
    brightness: tuple[float, float] = (0.25, 0.6)
    edge_dimming: float = 0.25
    texture: float = 0.12
    texture_scale: float = 1.2
    nucleoli: tuple[int, int] = (0, 3)
    nucleolus_radius: float = 1.6
    nucleolus_gain: float = 0.5
    illumination: float = 0.35
    background: float = 0.06
    psf_sigma: float | tuple[float, ...] = 1.0
    photons: float = 400.0
    read_noise: float = 0.006
    min_size: int = 20
    dtype: OutputDtype = "uint16"
    max_value: int = 4095

    def __post_init__(self) -> None:
        if len(self.shape) not in (2, 3) or min(self.shape) < 1:
            raise ValueError(f"shape must be (H, W) or (D, H, W) of positive sizes, got {self.shape!r}.")
        for name in ("spacing", "psf_sigma"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != len(self.shape):
                raise ValueError(f"{name} needs one value per axis of shape {self.shape}, got {value!r}.")
        if self.spacing is not None and min(self.spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {self.spacing!r}.")
        ranges = {"n_nuclei": self.n_nuclei, "radius": self.radius, "brightness": self.brightness}
        ranges |= {"elongation": self.elongation, "nucleoli": self.nucleoli}
        for name, (low, high) in ranges.items():
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high, got {(low, high)!r}.")
        if self.n_nuclei[1] > MAX_LABELS:
            raise ValueError(f"n_nuclei must stay at most {MAX_LABELS} (uint16 labels), got {self.n_nuclei!r}.")
        if self.radius[0] <= 0 or self.elongation[0] < 1:
            raise ValueError(f"radius must be > 0 and elongation >= 1, got {self.radius!r} and {self.elongation!r}.")
        for name in ("cluster_fraction", "illumination", "edge_dimming"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}.")
        if self.photons <= 0:
            raise ValueError(f"photons must be positive, got {self.photons!r}.")
        if self.dtype not in get_args(OutputDtype):
            raise ValueError(f"dtype must be one of {', '.join(get_args(OutputDtype))}, got {self.dtype!r}.")
        if not 1 <= self.max_value <= MAX_LABELS:
            raise ValueError(f"max_value must lie in [1, {MAX_LABELS}], got {self.max_value!r}.")

    @property
    def ndim(self) -> int:
        """Number of spatial axes, 2 or 3."""
        return len(self.shape)

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """``spacing`` with ``None`` spelled out as 1 per axis."""
        return self.spacing if self.spacing is not None else (1.0,) * self.ndim


@dataclass(frozen=True)
class SyntheticSample:
    """One synthetic image and its instance mask.

    Attributes:
        image: ``(H, W)`` or ``(D, H, W)``, ``uint16`` or ``float32`` as the config asks.
        labels: same shape, ``uint16``; 0 is background, nuclei are 1..N, each one connected component.
    """

    image: npt.NDArray[np.uint16] | FloatArray
    labels: npt.NDArray[np.uint16]


@dataclass(frozen=True)
class _Outline:
    """A nucleus's shape about its centre: an ellipse (ellipsoid) whose radius is modulated by smooth waves.

    A physical offset ``x`` maps to ellipse coordinates ``v = to_unit @ x`` (rotation, then division by the
    semi-axes); the point lies inside when ``|v| < radial(v / |v|)``.
    """

    to_unit: npt.NDArray[np.float64]  # (ndim, ndim)
    wave_directions: npt.NDArray[np.float64]  # (waves, ndim), unit vectors
    wave_frequencies: npt.NDArray[np.float64]  # (waves,)
    wave_phases: npt.NDArray[np.float64]  # (waves,)
    wave_amplitudes: npt.NDArray[np.float64]  # (waves,)
    extent: float  # no point of the outline lies farther than this from the centre

    def radial(self, directions: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The outline's radius, in ellipse units, along unit ``directions`` of shape ``(..., ndim)``."""
        phase = (directions @ self.wave_directions.T) * self.wave_frequencies + self.wave_phases
        return np.maximum(1.0 + np.cos(phase) @ self.wave_amplitudes, 0.5)

    def normalised_radius(self, offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Where physical ``offsets`` ``(..., ndim)`` lie: 0 at the centre, 1 on the outline, > 1 outside."""
        unit = offsets @ self.to_unit.T
        length: npt.NDArray[np.float64] = np.linalg.norm(unit, axis=-1)
        direction = unit / np.maximum(length, 1e-12)[..., None]
        return length / self.radial(direction)

    def reach(self, direction: npt.NDArray[np.float64]) -> float:
        """Distance from the centre to the outline along a physical unit ``direction`` ``(ndim,)``."""
        unit = self.to_unit @ direction
        length = float(np.linalg.norm(unit))
        return float(self.radial(unit / length)) / length


def generate_sample(config: SyntheticConfig | None = None, seed: Seed = 0) -> SyntheticSample:
    """Generate one synthetic fluorescence image of nuclei with its instance mask, the same for the same seed.

    Args:
        config: how the sample looks; ``SyntheticConfig()`` when ``None``.
        seed: an integer, or a sequence of integers (``write_dataset`` uses ``(seed, index)``).

    Returns:
        ``image`` and ``labels`` of shape ``config.shape`` (``(H, W)`` or ``(D, H, W)``).

    Example:
        >>> sample = generate_sample(SyntheticConfig(shape=(64, 64), n_nuclei=(4, 4)), seed=0)
        >>> sample.image.shape, sample.image.dtype, sample.labels.dtype
        ((64, 64), dtype('uint16'), dtype('uint16'))
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    labels, radius = _place_nuclei(config, rng)
    labels = _tidy_labels(labels, config.min_size)
    light = _render(labels, radius, config, rng)
    if config.dtype == "uint16":
        return SyntheticSample(np.rint(light * config.max_value).astype(np.uint16), labels)
    return SyntheticSample(light.astype(np.float32), labels)


def write_dataset(
    folder: str | os.PathLike[str],
    n_images: int,
    config: SyntheticConfig | None = None,
    seed: int = 0,
    layout: Layout = "stardist",
    file_format: FileFormat = "tif",
) -> list[str]:
    """Write a synthetic data set of images and instance masks as TIFF files, in a layout cellseg and others read.

    Image ``i`` is ``generate_sample(config, (seed, i))``, so the same arguments write the same arrays. Each file is
    written to a temporary file in its folder and renamed into place, so a reader never sees half a file.

    Args:
        folder: where to write; created if missing. Existing files of the same names are replaced.
        n_images: how many images to write.
        config: how the samples look; ``SyntheticConfig()`` when ``None``.
        seed: seed of the whole data set.
        layout: ``"stardist"`` writes ``folder/images/NAME.tif`` and ``folder/masks/NAME.tif``; ``"cellpose"``
            writes ``folder/NAME.tif`` and ``folder/NAME_masks.tif``.
        file_format: ``"tif"`` (masks zlib-compressed).

    Returns:
        The names written, without extension: ``["synthetic_000", "synthetic_001", ...]``.

    Raises:
        ValueError: an unknown ``layout`` or ``file_format``, or a negative ``n_images``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}.")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"Unknown file_format {file_format!r}: use one of {', '.join(FILE_FORMATS)}.")
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images!r}.")
    config = config or SyntheticConfig()
    root = Path(folder)
    image_folder, mask_folder = (root / "images", root / "masks") if layout == "stardist" else (root, root)
    mask_suffix = "" if layout == "stardist" else "_masks"
    image_folder.mkdir(parents=True, exist_ok=True)
    mask_folder.mkdir(parents=True, exist_ok=True)

    digits = max(3, len(str(n_images - 1)))
    names = [f"synthetic_{index:0{digits}d}" for index in range(n_images)]
    for index, name in enumerate(names):
        sample = generate_sample(config, (seed, index))
        _write_tiff(image_folder / f"{name}.{file_format}", sample.image, compression=None)
        _write_tiff(mask_folder / f"{name}{mask_suffix}.{file_format}", sample.labels, compression="zlib")
    return names


def _place_nuclei(
    config: SyntheticConfig, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.float32]]:
    """Place nuclei one after another; returns labels (not yet tidied) and each pixel's normalised radius.

    A free nucleus goes where nothing lies within ``_FREE_MARGIN`` of its outline. A clustered one is pushed into a
    nucleus already there, along a random direction, so that the two overlap; each overlapping pixel goes to the
    nucleus whose centre it is relatively closer to (smaller normalised radius), which leaves a shared border and a
    proper partition.
    """
    spacing = np.asarray(config.voxel_size, dtype=np.float64)
    field = (np.asarray(config.shape) - 1) * spacing
    labels = np.zeros(config.shape, dtype=np.uint16)
    radius = np.full(config.shape, np.inf, dtype=np.float32)
    placed: list[tuple[npt.NDArray[np.float64], _Outline]] = []

    for _ in range(int(rng.integers(config.n_nuclei[0], config.n_nuclei[1] + 1))):
        outline = _random_outline(config, rng)
        clustered = bool(placed) and rng.random() < config.cluster_fraction
        for _try in range(_PLACEMENT_TRIES):
            if clustered:
                neighbour_centre, neighbour = placed[int(rng.integers(len(placed)))]
                direction = _random_direction(rng, config.ndim)
                distance = (neighbour.reach(direction) + outline.reach(-direction)) * rng.uniform(*_CLUSTER_DISTANCE)
                centre = neighbour_centre + distance * direction
                if np.any(centre < 0) or np.any(centre > field):
                    continue
            else:
                centre = rng.uniform(0.0, 1.0, config.ndim) * field
            box = _bounding_box(centre, outline.extent, spacing, config.shape)
            if box is None:
                continue
            here = outline.normalised_radius(_offsets(box, centre, spacing)).astype(np.float32)
            inside = here < 1.0
            taken = labels[box] > 0
            if clustered:
                fits = bool(np.count_nonzero(inside & taken) <= _CLUSTER_MAX_OVERLAP * np.count_nonzero(inside))
            else:
                fits = not bool(np.any(taken & (here < _FREE_MARGIN)))
            if fits and np.count_nonzero(inside) >= config.min_size:
                wins = inside & (here < radius[box])
                labels[box][wins] = len(placed) + 1
                radius[box][wins] = here[wins]
                placed.append((centre, outline))
                break
    return labels, radius


def _random_outline(config: SyntheticConfig, rng: np.random.Generator) -> _Outline:
    """A random irregular ellipse (2D) or ellipsoid (3D) of the config's size, elongation and irregularity."""
    ndim = config.ndim
    mean_radius = rng.uniform(*config.radius)
    ratio = rng.uniform(*config.elongation)
    exponents = np.array([0.5, -0.5] if ndim == 2 else [0.5, rng.uniform(-0.5, 0.5), -0.5])
    semi_axes = mean_radius * ratio**exponents
    rotation = _random_rotation(rng, ndim)
    waves = _OUTLINE_WAVES[ndim]
    amplitudes = config.irregularity * rng.standard_normal(waves) / math.sqrt(waves)
    return _Outline(
        to_unit=rotation.T / semi_axes[:, None],
        wave_directions=np.stack([_random_direction(rng, ndim) for _ in range(waves)]),
        wave_frequencies=rng.uniform(*_OUTLINE_FREQUENCY, waves),
        wave_phases=rng.uniform(0.0, 2 * math.pi, waves),
        wave_amplitudes=amplitudes,
        extent=float(semi_axes.max() * (1.0 + np.abs(amplitudes).sum())),
    )


def _random_rotation(rng: np.random.Generator, ndim: int) -> npt.NDArray[np.float64]:
    """A uniformly random rotation matrix ``(ndim, ndim)`` (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _random_direction(rng: np.random.Generator, ndim: int) -> npt.NDArray[np.float64]:
    """A uniformly random unit vector ``(ndim,)``."""
    vector = rng.standard_normal(ndim)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _bounding_box(
    centre: npt.NDArray[np.float64], extent: float, spacing: npt.NDArray[np.float64], shape: tuple[int, ...]
) -> tuple[slice, ...] | None:
    """The voxel slices covering a ball of physical radius ``extent`` about ``centre``, cut to ``shape``."""
    low = np.maximum(np.floor((centre - extent) / spacing).astype(int), 0)
    high = np.minimum(np.ceil((centre + extent) / spacing).astype(int) + 1, shape)
    if np.any(high <= low):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _offsets(
    box: tuple[slice, ...], centre: npt.NDArray[np.float64], spacing: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Physical offsets from ``centre`` of every voxel in ``box``, shape ``(*box_shape, ndim)``."""
    axes = [np.arange(s.start, s.stop) * step - c for s, step, c in zip(box, spacing, centre, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def _tidy_labels(labels: npt.NDArray[np.uint16], min_size: int) -> npt.NDArray[np.uint16]:
    """Keep each label's largest connected part, drop labels under ``min_size`` voxels, renumber them 1..N.

    A nucleus can lose a part to a later neighbour or to the image border; the part cut off becomes background.
    """
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        own = labels[box] == index
        parts, count = ndimage.label(own)
        sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
        keep = parts == (int(np.argmax(sizes)) + 1)
        drop = own if sizes.max() < min_size else own & ~keep
        labels[box][drop] = 0
    present = np.flatnonzero(np.bincount(labels.ravel()))
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    lookup[present] = np.arange(len(present), dtype=np.uint16)
    return lookup[labels]


def _render(
    labels: npt.NDArray[np.uint16], radius: npt.NDArray[np.float32], config: SyntheticConfig, rng: np.random.Generator
) -> FloatArray:
    """Turn an instance mask into a noisy fluorescence image with values in ``[0, 1]`` (fractions of full scale)."""
    spacing = np.asarray(config.voxel_size)
    nuclei = labels > 0
    brightness = np.concatenate([[0.0], rng.uniform(*config.brightness, int(labels.max()))]).astype(np.float32)
    rim = np.where(nuclei, radius, 0.0).astype(np.float32) ** 2
    texture = ndimage.gaussian_filter(
        rng.standard_normal(config.shape, dtype=np.float32), sigma=tuple(config.texture_scale / spacing)
    )
    texture /= max(float(texture.std()), 1e-12)
    signal = brightness[labels] * (1.0 - config.edge_dimming * rim) * (1.0 + config.texture * texture)
    signal *= 1.0 + config.nucleolus_gain * _nucleoli(labels, radius, config, rng)
    light = (np.maximum(signal, 0.0) + config.background) * _illumination(config.shape, config.illumination, rng)
    psf = np.broadcast_to(np.asarray(config.psf_sigma, dtype=np.float64), (config.ndim,)) / spacing
    blurred = ndimage.gaussian_filter(light, sigma=tuple(psf))
    counts = rng.poisson(np.maximum(blurred, 0.0) * config.photons).astype(np.float32) / np.float32(config.photons)
    noisy: FloatArray = counts + rng.normal(0.0, config.read_noise, config.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0, out=noisy)


def _nucleoli(
    labels: npt.NDArray[np.uint16], radius: npt.NDArray[np.float32], config: SyntheticConfig, rng: np.random.Generator
) -> FloatArray:
    """Gaussian spots in ``[0, 1]`` at random interior points of each nucleus, shape of ``labels``."""
    spacing = np.asarray(config.voxel_size)
    spots = np.zeros(config.shape, dtype=np.float32)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        count = int(rng.integers(config.nucleoli[0], config.nucleoli[1] + 1))
        if box is None or count == 0:
            continue
        own = labels[box] == index
        interior = np.argwhere(own & (radius[box] < _NUCLEOLUS_INTERIOR))
        candidates = interior if len(interior) else np.argwhere(own)
        for row in rng.choice(len(candidates), size=min(count, len(candidates)), replace=False):
            centre = candidates[row] + [s.start for s in box]
            sigma = config.nucleolus_radius * rng.uniform(0.6, 1.0)
            reach = np.ceil(3 * sigma / spacing).astype(int)
            spot_box = tuple(
                slice(max(int(c - r), 0), min(int(c + r + 1), n))
                for c, r, n in zip(centre, reach, config.shape, strict=True)
            )
            distance2 = (_offsets(spot_box, centre * spacing, spacing) ** 2).sum(axis=-1)
            np.maximum(spots[spot_box], np.exp(-distance2 / (2 * sigma**2)), out=spots[spot_box])
    return spots


def _illumination(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> FloatArray:
    """A smooth gain field in ``[1 - strength, 1]``: a vignette about a random centre plus a random tilt."""
    field = np.zeros((1,) * len(shape), dtype=np.float32)
    for axis, size in enumerate(shape):
        coordinate = np.linspace(-1.0, 1.0, size, dtype=np.float32).reshape(
            [-1 if a == axis else 1 for a in range(len(shape))]
        )
        field = field + rng.normal(0.0, 0.4) * coordinate - (coordinate - rng.uniform(-0.5, 0.5)) ** 2
    field = np.broadcast_to(field, shape)
    span = float(field.max() - field.min())
    normalised = (field - field.min()) / span if span > 0 else np.ones(shape, dtype=np.float32)
    return (1.0 - strength * (1.0 - normalised)).astype(np.float32)


def _write_tiff(path: Path, array: npt.NDArray[np.generic], compression: str | None) -> None:
    """Write ``array`` to ``path`` as a TIFF atomically: into a temporary file beside it, then renamed over it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        axes = "YX" if array.ndim == 2 else "ZYX"
        tifffile.imwrite(temporary, array, compression=compression, metadata={"axes": axes})
        # mkstemp makes the file private (0600); a data set should be readable like any other file.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
