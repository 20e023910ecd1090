"""Pair predicted masks with true ones by image name, tolerating the ``_masks`` suffix and any extension.

A folder of masks can be:

- a dataset folder in the StarDist layout (``DIR/images`` and ``DIR/masks``): the masks are in ``DIR/masks``;
- a folder where some files end in the mask suffix (a ``cellseg predict`` output, with its probability maps and
  outlines beside the masks, or a Cellpose-layout folder with the images beside the masks): only those are masks;
- a plain folder of masks: every supported file is one.

A mask's name is its file name less the extension (``.tif``, ``.nii.gz``, ...) and less the mask suffix, so
``a_masks.tif`` in one folder pairs with ``a.png`` in the other. Files are not opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cellseg.io.errors import DatasetError
from cellseg.io.readers import is_supported, split_extension


@dataclass(frozen=True)
class MaskPair:
    """A predicted mask and the true mask of the same image.

    Attributes:
        name: the image's name (file name less extension and mask suffix).
        predicted: the predicted mask file.
        truth: the ground-truth mask file.
    """

    name: str
    predicted: Path
    truth: Path


@dataclass(frozen=True)
class Pairing:
    """Masks paired by name, and the files left without a partner (sorted).

    Attributes:
        pairs: one per name found on both sides, sorted by name.
        predictions_without_truth: predicted masks no true mask shares a name with.
        truth_without_prediction: true masks no prediction shares a name with (images not predicted).
    """

    pairs: list[MaskPair]
    predictions_without_truth: list[Path]
    truth_without_prediction: list[Path]


def mask_name(path: str | Path, mask_suffix: str = "_masks") -> str:
    """The image name a mask file belongs to: the file name less its extension and ``mask_suffix``.

    Examples:
        >>> mask_name("out/cell_01_masks.tif"), mask_name("gt/cell_01.png"), mask_name("x/b_masks.nii.gz")
        ('cell_01', 'cell_01', 'b')
    """
    name = split_extension(path)[0]
    if mask_suffix and name.endswith(mask_suffix) and name != mask_suffix:
        return name[: -len(mask_suffix)]
    return name


def mask_files(folder: str | Path, mask_suffix: str = "_masks") -> dict[str, Path]:
    """The mask files of ``folder`` (see the module docstring for the layouts), by image name.

    Args:
        folder: a folder of masks, a ``cellseg predict`` output or a dataset folder.
        mask_suffix: what a mask's name adds to its image's name.

    Returns:
        ``{name: path}`` sorted by name; empty when the folder holds no supported file.

    Raises:
        DatasetError: ``folder`` is not a folder, or two masks claim the same name (``a.tif`` and ``a_masks.png``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "no such folder"
        raise DatasetError(f"{folder}: {problem}; pass the folder that holds the masks")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        folder = folder / "masks"
    files = [
        path
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".") and is_supported(path)
    ]
    suffixed = [path for path in files if mask_name(path, mask_suffix) != split_extension(path)[0]]
    by_name: dict[str, Path] = {}
    for path in suffixed or files:
        name = mask_name(path, mask_suffix)
        if name in by_name:
            raise DatasetError(f"{folder}: {by_name[name].name} and {path.name} are both masks of {name!r}; keep one")
        by_name[name] = path
    return dict(sorted(by_name.items()))


def pair_masks(predicted: dict[str, Path], truth: dict[str, Path]) -> Pairing:
    """Pair predicted and true masks that share an image name.

    Args:
        predicted: predicted masks by image name (from :func:`mask_files`).
        truth: true masks by image name.

    Returns:
        The pairs, sorted by name, and the masks on either side without a partner.

    Examples:
        >>> pairing = pair_masks({"a": Path("p/a_masks.tif"), "b": Path("p/b_masks.tif")}, {"a": Path("t/a.png")})
        >>> [pair.name for pair in pairing.pairs], pairing.predictions_without_truth
        (['a'], [PosixPath('p/b_masks.tif')])
    """
    pairs = [MaskPair(name, predicted[name], truth[name]) for name in sorted(predicted.keys() & truth.keys())]
    return Pairing(
        pairs=pairs,
        predictions_without_truth=sorted(path for name, path in predicted.items() if name not in truth),
        truth_without_prediction=sorted(path for name, path in truth.items() if name not in predicted),
    )
