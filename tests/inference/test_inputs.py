from __future__ import annotations

from pathlib import Path

from cellseg.inference.inputs import collect_inputs


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_folders_files_and_globs_give_each_image_once(tmp_path: Path) -> None:
    touch(tmp_path / "a.tif")
    touch(tmp_path / "b.nii.gz")
    touch(tmp_path / "a_masks.tif")  # a mask beside its image: not an input
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "sub" / "c.png")
    selection = collect_inputs([tmp_path, tmp_path / "a.tif", str(tmp_path / "*.tif")])
    assert [(image.path.name, image.name) for image in selection.images] == [("a.tif", "a"), ("b.nii.gz", "b")]
    assert not selection.missing


def test_recursive_search_keeps_sub_folders_in_the_output_names(tmp_path: Path) -> None:
    touch(tmp_path / "sub" / "c.png")
    touch(tmp_path / "other" / "c.png")
    names = [image.name for image in collect_inputs([tmp_path], recursive=True).images]
    assert names == ["other/c", "sub/c"]


def test_missing_unsupported_and_output_files_are_reported_or_left_out(tmp_path: Path) -> None:
    touch(tmp_path / "out" / "x_masks.tif")
    touch(tmp_path / "out" / "x_outlines.png")
    touch(tmp_path / "x.tif")
    notes = touch(tmp_path / "notes.txt")
    selection = collect_inputs(
        [tmp_path, tmp_path / "absent.tif", str(tmp_path / "*.jpg"), notes], recursive=True, exclude=tmp_path / "out"
    )
    assert [image.name for image in selection.images] == ["x"]
    assert selection.missing == [str(tmp_path / "absent.tif"), str(tmp_path / "*.jpg")]
    assert selection.unsupported == [notes]
