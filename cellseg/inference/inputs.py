"""The images a ``cellseg predict`` run takes, from files, folders and glob patterns, and where their outputs go."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cellseg.io import split_extension
from cellseg.io.readers import is_supported


@dataclass(frozen=True)
class InputImage:
    """One image to predict and the name its outputs take.

    Attributes:
        path: the image file.
        name: the output name without suffix or extension: the file's name, under its sub-folder when it was found
            by a recursive folder search (``sub/dir/cell_01``), so equal names in different folders stay apart.
    """

    path: Path
    name: str


@dataclass
class InputSelection:
    """The images found, and what was given that is not one.

    Attributes:
        images: images to predict, in a stable order, each once.
        missing: inputs that match no file (a path that is not there, a glob that matches nothing).
        unsupported: files given by name whose extension no reader takes.
    """

    images: list[InputImage] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)


def collect_inputs(
    inputs: Sequence[str | Path],
    recursive: bool = False,
    exclude: Path | None = None,
    mask_suffix: str = "_masks",
) -> InputSelection:
    """Find the images named by files, folders and glob patterns.

    Folders give their supported images (with ``recursive``, those of sub-folders too); files named ``*_masks.*``
    (``mask_suffix``) found in a folder or by a pattern are taken as masks, not images, and left out, as is anything
    under ``exclude`` (the run's output folder). A file named explicitly is always taken.

    Args:
        inputs: files, folders or glob patterns (``"data/*.tif"``, ``"data/**/*.png"``).
        recursive: search folders' sub-folders.
        exclude: a folder whose files are never inputs.
        mask_suffix: the suffix that marks mask files inside folders.

    Returns:
        The images and what could not be used.
    """
    selection = InputSelection()
    seen: set[Path] = set()
    excluded = exclude.resolve() if exclude is not None else None

    def add(path: Path, name: str) -> None:
        resolved = path.resolve()
        if resolved in seen or (excluded is not None and resolved.is_relative_to(excluded)):
            return
        seen.add(resolved)
        selection.images.append(InputImage(path, name))

    for given in inputs:
        path = Path(given)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for found in sorted(path.glob(pattern)):
                if found.is_file() and is_supported(found) and not split_extension(found)[0].endswith(mask_suffix):
                    relative = found.relative_to(path).parent
                    add(found, str(relative / split_extension(found)[0]))
        elif path.is_file():
            if is_supported(path):
                add(path, split_extension(path)[0])
            else:
                selection.unsupported.append(path)
        else:
            matches = sorted(Path(match) for match in glob.glob(str(given), recursive=True))
            files = [
                match
                for match in matches
                if match.is_file() and is_supported(match) and not split_extension(match)[0].endswith(mask_suffix)
            ]
            if not files:
                selection.missing.append(str(given))
            for match in files:
                add(match, split_extension(match)[0])
    return selection
