"""Find the image/mask pairs of a training folder, in the StarDist or the Cellpose layout, whichever it uses.

- StarDist: ``DIR/images/NAME.ext`` with ``DIR/masks/NAME.ext`` (or ``DIR/masks/NAME_masks.ext``);
- Cellpose: ``DIR/NAME.ext`` with ``DIR/NAME_masks.ext`` side by side.

Image and mask may have different extensions (any of ``SUPPORTED_EXTENSIONS``; ``.nii.gz`` counts as one).
Hidden files, sub-folders and files of other types are ignored. Files are not opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cellseg.io.errors import DatasetError
from cellseg.io.readers import SUPPORTED_EXTENSIONS, is_supported, split_extension

Layout: TypeAlias = Literal["stardist", "cellpose"]


@dataclass(frozen=True)
class ImagePair:
    """An image file and the label mask drawn for it, matched by ``name`` (the image's file name less extension)."""

    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class DiscoveryResult:
    """What ``discover_pairs`` found: the layout, the pairs sorted by name, and the files left without a partner.

    Attributes:
        layout: ``"stardist"`` or ``"cellpose"``.
        pairs: one per image that has a mask, sorted by name.
        images_without_mask: images with no mask (to predict on, or to annotate), sorted.
        masks_without_image: masks whose image is missing (often a renamed image), sorted.
    """

    layout: Layout
    pairs: list[ImagePair]
    images_without_mask: list[Path]
    masks_without_image: list[Path]

    @property
    def by_name(self) -> dict[str, ImagePair]:
        """The pairs keyed by their name."""
        return {pair.name: pair for pair in self.pairs}


def discover_pairs(folder: str | Path, mask_suffix: str = "_masks") -> DiscoveryResult:
    """Pair up the images and masks in ``folder``, detecting whether it uses the StarDist or the Cellpose layout.

    Args:
        folder: the dataset folder (``DIR`` in the module docstring).
        mask_suffix: what a mask's name adds to its image's name (Cellpose layout; optional in ``masks/``).

    Returns:
        The pairs and the unpaired files of the layout that has pairs.

    Raises:
        DatasetError: ``folder`` is not a folder, holds no pairs in either layout, holds pairs in both, or holds
            two files that claim the same name (e.g. ``a.tif`` and ``a.png``).
        ValueError: ``mask_suffix`` is empty.
    """
    folder = Path(folder)
    if not mask_suffix:
        raise ValueError("mask_suffix must not be empty: it tells masks from images in the Cellpose layout.")
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "no such folder"
        raise DatasetError(f"{folder}: {problem}; pass the folder that holds the images and masks")
    candidates = [_cellpose_pairs(folder, mask_suffix)]
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        candidates.insert(0, _stardist_pairs(folder, mask_suffix))
    found = [result for result in candidates if result.pairs]
    if len(found) > 1:
        raise DatasetError(
            f"{folder}: holds image/mask pairs in both layouts, in images/ and masks/ and side by side in the folder "
            "itself; move one set into its own folder"
        )
    if not found:
        raise DatasetError(_no_pairs_message(folder, mask_suffix, candidates))
    return found[0]


def _stardist_pairs(folder: Path, mask_suffix: str) -> DiscoveryResult:
    """Pairs of ``images/NAME.*`` with ``masks/NAME.*`` or ``masks/NAME{mask_suffix}.*``."""
    images = _files_by_name(folder / "images")
    masks = _files_by_name(folder / "masks")
    pairs, unpaired_images, used_masks = [], [], set()
    for name, image in sorted(images.items()):
        matches = [masks[stem] for stem in (name, name + mask_suffix) if stem in masks]
        if len(matches) > 1:
            raise DatasetError(
                f"{folder / 'masks'}: both {matches[0].name} and {matches[1].name} could be the mask of "
                f"{image.name}; keep one"
            )
        if matches:
            pairs.append(ImagePair(name=name, image=image, mask=matches[0]))
            used_masks.add(matches[0])
        else:
            unpaired_images.append(image)
    unpaired_masks = sorted(mask for mask in masks.values() if mask not in used_masks)
    return DiscoveryResult("stardist", pairs, unpaired_images, unpaired_masks)


def _cellpose_pairs(folder: Path, mask_suffix: str) -> DiscoveryResult:
    """Pairs of ``NAME.*`` with ``NAME{mask_suffix}.*``, side by side in ``folder``."""
    files = _files_by_name(folder)
    masks = {name: path for name, path in files.items() if name.endswith(mask_suffix) and name != mask_suffix}
    images = {name: path for name, path in files.items() if name not in masks}
    pairs, unpaired_images, used_masks = [], [], set()
    for name, image in sorted(images.items()):
        mask = masks.get(name + mask_suffix)
        if mask is None:
            unpaired_images.append(image)
        else:
            pairs.append(ImagePair(name=name, image=image, mask=mask))
            used_masks.add(mask)
    unpaired_masks = sorted(mask for mask in masks.values() if mask not in used_masks)
    return DiscoveryResult("cellpose", pairs, unpaired_images, unpaired_masks)


def _files_by_name(folder: Path) -> dict[str, Path]:
    """The readable, non-hidden files directly in ``folder``, by name without extension."""
    by_name: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not is_supported(path):
            continue
        name = split_extension(path)[0]
        if name in by_name:
            raise DatasetError(
                f"{folder}: {by_name[name].name} and {path.name} both have the name {name!r}, so cellseg cannot "
                "tell which one to pair; keep one"
            )
        by_name[name] = path
    return by_name


def _no_pairs_message(folder: Path, mask_suffix: str, searched: list[DiscoveryResult]) -> str:
    """One line naming ``folder``, what was seen there, and the layouts that were looked for, with example paths."""
    images = sum(len(result.images_without_mask) for result in searched)
    masks = sum(len(result.masks_without_image) for result in searched)
    return (
        f"{folder}: found no image/mask pairs ({images} images and {masks} masks without a partner); looked for "
        f"the StarDist layout ({folder / 'images' / 'NAME.tif'} with {folder / 'masks' / 'NAME.tif'}) and the "
        f"Cellpose layout ({folder / 'NAME.tif'} with {folder / f'NAME{mask_suffix}.tif'}), with any of "
        f"{', '.join(SUPPORTED_EXTENSIONS)}: arrange the files in one of these layouts"
    )
