from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellseg.io import DatasetError, ImagePair, discover_pairs


def _touch(folder: Path, *names: str) -> None:
    """Empty files are enough: discovery pairs names and never opens a file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_stardist_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "b.tif", "a.png", "c.nii.gz", "lonely.tif")
    _touch(tmp_path / "masks", "a.tif", "b_masks.tif", "c.nii.gz", "orphan.tif")
    result = discover_pairs(tmp_path)
    assert result.layout == "stardist"
    assert result.pairs == [
        ImagePair("a", tmp_path / "images" / "a.png", tmp_path / "masks" / "a.tif"),
        ImagePair("b", tmp_path / "images" / "b.tif", tmp_path / "masks" / "b_masks.tif"),
        ImagePair("c", tmp_path / "images" / "c.nii.gz", tmp_path / "masks" / "c.nii.gz"),
    ]
    assert result.images_without_mask == [tmp_path / "images" / "lonely.tif"]
    assert result.masks_without_image == [tmp_path / "masks" / "orphan.tif"]


def test_cellpose_layout(tmp_path: Path) -> None:
    _touch(tmp_path, "img_2.tif", "img_2_masks.png", "img_1.png", "img_1_masks.png", "new.tif", "gone_masks.tif")
    result = discover_pairs(str(tmp_path))
    assert result.layout == "cellpose"
    assert [pair.name for pair in result.pairs] == ["img_1", "img_2"]
    assert result.pairs[1] == ImagePair("img_2", tmp_path / "img_2.tif", tmp_path / "img_2_masks.png")
    assert result.images_without_mask == [tmp_path / "new.tif"]
    assert result.masks_without_image == [tmp_path / "gone_masks.tif"]


def test_custom_mask_suffix_and_nifti(tmp_path: Path) -> None:
    _touch(tmp_path, "vol.nii.gz", "vol_seg.nii.gz", "vol_masks.nii")
    result = discover_pairs(tmp_path, mask_suffix="_seg")
    assert result.pairs == [ImagePair("vol", tmp_path / "vol.nii.gz", tmp_path / "vol_seg.nii.gz")]
    assert result.images_without_mask == [tmp_path / "vol_masks.nii"]


def test_hidden_other_and_nested_files_are_ignored(tmp_path: Path) -> None:
    _touch(tmp_path, "a.tif", "a_masks.tif", ".b.tif", ".b_masks.tif", "._a.tif", "a_seg.npy", "notes.txt")
    _touch(tmp_path / "sub", "c.tif", "c_masks.tif")
    result = discover_pairs(tmp_path)
    assert [pair.name for pair in result.pairs] == ["a"]
    assert result.images_without_mask == []
    assert result.masks_without_image == []


def test_empty_folder_names_folder_and_both_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        discover_pairs(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}: found no image/mask pairs")
    assert str(tmp_path / "images" / "NAME.tif") in message
    assert str(tmp_path / "masks" / "NAME.tif") in message
    assert str(tmp_path / "NAME_masks.tif") in message
    assert ".nii.gz" in message
    assert "\n" not in message


def test_folder_of_unpaired_files_says_what_it_saw(tmp_path: Path) -> None:
    _touch(tmp_path, "a.tif", "b.tif", "c_masks.tif")
    with pytest.raises(DatasetError, match=r"2 images and 1 masks without a partner"):
        discover_pairs(tmp_path)


def test_stardist_folders_without_pairs_are_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.tif")
    _touch(tmp_path / "masks", "b.tif")
    with pytest.raises(DatasetError, match="found no image/mask pairs"):
        discover_pairs(tmp_path)


@pytest.mark.parametrize("make_file", [False, True])
def test_not_a_folder(tmp_path: Path, make_file: bool) -> None:
    target = tmp_path / "data"
    if make_file:
        target.write_bytes(b"")
    problem = "is a file" if make_file else "no such folder"
    with pytest.raises(DatasetError, match=f"{re.escape(str(target))}: {problem}"):
        discover_pairs(target)


def test_two_files_with_one_name_are_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "a.tif", "a.png", "a_masks.tif")
    with pytest.raises(DatasetError, match=r"a\.png and a\.tif both have the name 'a'"):
        discover_pairs(tmp_path)


def test_two_candidate_masks_are_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.tif")
    _touch(tmp_path / "masks", "a.tif", "a_masks.tif")
    with pytest.raises(DatasetError, match=r"both a\.tif and a_masks\.tif could be the mask of a\.tif"):
        discover_pairs(tmp_path)


def test_pairs_in_both_layouts_are_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.tif")
    _touch(tmp_path / "masks", "a.tif")
    _touch(tmp_path, "b.tif", "b_masks.tif")
    with pytest.raises(DatasetError, match="both layouts"):
        discover_pairs(tmp_path)


def test_empty_mask_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mask_suffix"):
        discover_pairs(tmp_path, mask_suffix="")
