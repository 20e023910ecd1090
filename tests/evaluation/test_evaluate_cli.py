"""``cellseg evaluate --pred --gt`` end to end on real files: pairing, tables, summary, plots, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from cellseg.cli import main
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.evaluation.matching import match_instances
from cellseg.evaluation.pairing import mask_files, mask_name, pair_masks
from cellseg.evaluation.summary import format_table, read_groups, summarise
from cellseg.io.errors import DatasetError


def squares(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """uint16 labels ``shape`` with object ``i + 1`` filling ``boxes[i]`` = (row0, row1, col0, col1)."""
    labels = np.zeros(shape, dtype=np.uint16)
    for index, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        labels[r0:r1, c0:c1] = index
    return labels


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    """A dataset folder (StarDist layout, with metadata.csv) and a ``cellseg predict``-like output folder.

    - ``perfect``: the prediction is the truth (relabelled);
    - ``merged``: two touching true squares predicted as one object;
    - ``missed``: two true squares, nothing predicted;
    - ``extra``: only in the truth (no prediction); ``orphan``: only predicted.
    """
    data, predictions = tmp_path / "data", tmp_path / "predicted"
    for folder in (data / "images", data / "masks", predictions):
        folder.mkdir(parents=True)
    truths = {
        "perfect": squares((40, 40), [(2, 12, 2, 12), (20, 30, 20, 34)]),
        "merged": squares((40, 40), [(5, 15, 5, 15), (5, 15, 15, 25)]),
        "missed": squares((40, 40), [(0, 8, 0, 8), (30, 40, 30, 40)]),
        "extra": squares((40, 40), [(1, 5, 1, 5)]),
    }
    predicted = {
        "perfect": (truths["perfect"] * 7).astype(np.uint16),
        "merged": (truths["merged"] > 0).astype(np.uint16) * 3,
        "missed": np.zeros((40, 40), dtype=np.uint16),
        "orphan": squares((40, 40), [(1, 5, 1, 5)]),
    }
    for name, labels in truths.items():
        iio.imwrite(data / "masks" / f"{name}.png", labels)
        iio.imwrite(data / "images" / f"{name}.png", (labels > 0).astype(np.uint8) * 200)
    for name, labels in predicted.items():
        tifffile.imwrite(predictions / f"{name}_masks.tif", labels)
        tifffile.imwrite(predictions / f"{name}_probabilities.tif", (labels > 0).astype(np.float16))
    (predictions / "predictions.csv").write_text("name\n")
    (data / "metadata.csv").write_text(
        "image_id,modality\nperfect.png,fluorescence\nmerged.png,fluorescence\nmissed.png,brightfield\n"
    )
    return data, predictions


def evaluate(*arguments: str) -> int:
    return main(["evaluate", "--no-progress", *arguments])


def per_image(output: Path) -> dict[str, dict[str, Any]]:
    with (output / "per_image.csv").open() as stream:
        return {row["name"]: row for row in csv.DictReader(stream)}


def test_masks_pair_by_name_whatever_the_suffix_and_extension(run: tuple[Path, Path]) -> None:
    data, predictions = run
    predicted = mask_files(predictions)
    assert sorted(predicted) == ["merged", "missed", "orphan", "perfect"]  # probability maps are not masks
    truth = mask_files(data)  # a dataset folder: its masks/ sub-folder
    assert sorted(truth) == ["extra", "merged", "missed", "perfect"]
    pairing = pair_masks(predicted, truth)
    assert [pair.name for pair in pairing.pairs] == ["merged", "missed", "perfect"]
    assert [path.name for path in pairing.predictions_without_truth] == ["orphan_masks.tif"]
    assert [path.name for path in pairing.truth_without_prediction] == ["extra.png"]
    assert mask_name("a_masks.nii.gz") == "a"
    assert mask_name("_masks.tif") == "_masks"


def test_two_masks_of_one_image_are_refused(tmp_path: Path) -> None:
    for name in ("a.tif", "a_masks.png", "b_masks.png"):
        (tmp_path / name).write_bytes(b"")
    assert sorted(mask_files(tmp_path)) == ["a", "b"]  # suffixed files are the masks when there are any
    (tmp_path / "a_masks.tif").write_bytes(b"")
    with pytest.raises(DatasetError, match="both masks of 'a'"):
        mask_files(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        mask_files(tmp_path / "nowhere")


def test_scores_per_image_and_aggregates_by_hand(run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data, predictions = run
    output = data.parent / "evaluation"
    code = evaluate("--pred", str(predictions), "--gt", str(data), "--groups", "modality", "--output", str(output))
    assert code == 0
    rows = per_image(output)
    assert sorted(rows) == ["merged", "missed", "perfect"]
    perfect, merged, missed = rows["perfect"], rows["merged"], rows["missed"]
    assert (perfect["n_true"], perfect["n_predicted"], perfect["f1@0.95"], perfect["dice"]) == ("2", "2", "1", "1")
    # One object over two 10 x 10 squares: IoU 0.5 with each; at 0.5 one of them matches.
    assert (merged["merges"], merged["tp@0.50"], merged["fp@0.50"], merged["fn@0.50"]) == ("1", "1", "0", "1")
    assert float(merged["f1@0.50"]) == pytest.approx(2 / 3)
    assert merged["tp@0.55"] == "0"
    assert float(merged["dice"]) == 1.0  # the foreground is right, the instances are not
    assert (missed["tp@0.50"], missed["fn@0.50"], missed["recall@0.50"], missed["precision@0.50"]) == (
        "0", "2", "0", "1"
    )  # fmt: skip
    assert perfect["group"] == "fluorescence"
    assert missed["group"] == "brightfield"

    summary = json.loads((output / "summary.json").read_text())
    aggregates = summary["aggregates"]
    everything = aggregates["all"]
    assert everything["images"] == 3
    assert everything["n_true"] == 6
    assert everything["n_predicted"] == 3
    assert everything["mean"]["by_threshold"]["0.50"]["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # Pooled: TP 2 + 1 + 0, FP 0, FN 0 + 1 + 2.
    assert everything["pooled"]["by_threshold"]["0.50"]["f1"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 3))
    assert everything["pooled"]["by_threshold"]["0.50"]["tp"] == 3
    assert set(aggregates["groups"]) == {"fluorescence", "brightfield"}
    assert aggregates["groups"]["brightfield"]["pooled"]["dice"] == 0.0
    assert summary["group_column"] == "modality"
    assert [Path(p).name for p in summary["predictions_without_truth"]] == ["orphan_masks.tif"]
    assert [Path(p).name for p in summary["truth_without_prediction"]] == ["extra.png"]
    assert summary["skipped"] == []
    assert summary["notes"] == []
    for plot in ("scores_by_threshold.png", "dice_per_image.png", "object_counts.png"):
        assert (output / plot).stat().st_size > 1000

    printed = capsys.readouterr()
    assert "3 images scored" in printed.out
    assert "brightfield" in printed.out
    assert format_table(aggregates, "pooled").splitlines()[1].split()[:2] == ["all", "3"]
    assert "1 predictions without ground truth, not scored: orphan_masks.tif" in printed.err


def test_per_image_scores_are_those_of_match_instances(tmp_path: Path) -> None:
    """On synthetic nuclei against a shifted copy, the CSV repeats ``match_instances`` to 6 digits."""
    truth_folder, predicted_folder = tmp_path / "gt", tmp_path / "pred"
    truth_folder.mkdir()
    predicted_folder.mkdir()
    expected = {}
    for seed in range(3):
        labels = generate_sample(SyntheticConfig(shape=(96, 96)), seed).labels.astype(np.uint16)
        shifted = np.roll(labels, (2, 1), axis=(0, 1))
        iio.imwrite(truth_folder / f"cells_{seed}.png", labels)
        tifffile.imwrite(predicted_folder / f"cells_{seed}_masks.tif", shifted)
        expected[f"cells_{seed}"] = match_instances(labels, shifted)
    output = tmp_path / "out"
    assert (
        evaluate("--pred", str(predicted_folder), "--gt", str(truth_folder), "--output", str(output), "--no-plots") == 0
    )
    rows = per_image(output)
    for name, scores in expected.items():
        row = rows[name]
        assert float(row["dice"]) == pytest.approx(scores.dice, rel=1e-5)
        assert float(row["dsb_score"]) == pytest.approx(scores.mean_dsb_score, rel=1e-5)
        for counts in scores.counts:
            key = f"{counts.threshold:.2f}"
            assert int(row[f"tp@{key}"]) == counts.tp
            assert float(row[f"pq@{key}"]) == pytest.approx(counts.panoptic_quality, rel=1e-5)
    assert not list(output.glob("*.png"))  # --no-plots


def test_a_bad_pair_is_skipped_and_named_and_the_exit_code_says_so(
    run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, predictions = run
    tifffile.imwrite(predictions / "merged_masks.tif", np.zeros((30, 40), dtype=np.uint16))  # wrong shape
    (predictions / "missed_masks.tif").write_bytes(b"not a tiff")  # corrupt
    output = data.parent / "evaluation"
    assert evaluate("--pred", str(predictions), "--gt", str(data), "--output", str(output), "--no-plots") == 1
    assert sorted(per_image(output)) == ["perfect"]
    skipped = {item["name"]: item["error"] for item in json.loads((output / "summary.json").read_text())["skipped"]}
    assert set(skipped) == {"merged", "missed"}
    assert "(30, 40) differs from its ground truth" in skipped["merged"]
    assert "missed_masks.tif" in skipped["missed"]
    errors = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("cellseg evaluate: skipped") for line in errors) == 2


def test_binary_ground_truth_is_labelled_with_a_note(tmp_path: Path) -> None:
    truth = (squares((32, 32), [(2, 10, 2, 10), (20, 30, 20, 30)]) > 0).astype(np.uint8) * 255
    for folder in ("gt", "pred"):
        (tmp_path / folder).mkdir()
    iio.imwrite(tmp_path / "gt" / "a.png", truth)
    tifffile.imwrite(tmp_path / "pred" / "a_masks.tif", squares((32, 32), [(2, 10, 2, 10), (20, 30, 20, 30)]))
    output = tmp_path / "out"
    assert evaluate("--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--output", str(output)) == 0
    row = per_image(output)["a"]
    assert row["truth_was_binary"] == "True"
    assert row["n_true"] == "2"
    assert row["f1@0.95"] == "1"
    notes = json.loads((output / "summary.json").read_text())["notes"]
    assert len(notes) == 1
    assert "connected components" in notes[0]


def test_an_earlier_evaluation_is_kept_unless_told(run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data, predictions = run
    output = data.parent / "evaluation"
    arguments = ["--pred", str(predictions), "--gt", str(data), "--output", str(output), "--no-plots"]
    assert evaluate(*arguments) == 0
    before = (output / "summary.json").read_bytes()
    assert evaluate(*arguments) == 2
    assert "holds an earlier evaluation" in capsys.readouterr().err
    assert (output / "summary.json").read_bytes() == before
    assert evaluate(*arguments, "--overwrite") == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--pred", "{tmp}/nowhere", "--gt", "{tmp}/gt"], "nowhere: no such folder"),
        (["--pred", "{tmp}/pred", "--gt", "{tmp}/gt"], "no predicted mask in"),
        (["--pred", "{tmp}/pred"], "give --pred DIR and --gt DIR"),
        (["--model", "{tmp}/run.ckpt"], "--model needs --data DIR"),
        (["--pred", "{tmp}/pred", "--gt", "{tmp}/gt", "--groups", "modality"], "no metadata.csv"),
        (["--pred", "{tmp}/pred", "--gt", "{tmp}/gt", "--thresholds", "0", "0.5"], "must be in (0, 1]"),
    ],
)
def test_nothing_to_compare_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    for folder in ("gt", "pred"):
        (tmp_path / folder).mkdir()
    tifffile.imwrite(tmp_path / "gt" / "a.tif", squares((8, 8), [(1, 3, 1, 3)]))
    tifffile.imwrite(tmp_path / "pred" / "b_masks.tif", squares((8, 8), [(1, 3, 1, 3)]))
    code = evaluate(*(argument.format(tmp=tmp_path) for argument in arguments), "--output", str(tmp_path / "out"))
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert message in error
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "out" / "summary.json").exists()


def test_groups_from_a_csv_and_a_missing_column(tmp_path: Path) -> None:
    table = tmp_path / "meta.csv"
    table.write_text("file,kind\na.png,x\nb.tif,y\n")
    assert read_groups(f"{table}:kind") == ({"a": "x", "b": "y"}, "kind")
    with pytest.raises(DatasetError, match="no column 'modality'; its columns are file, kind"):
        read_groups(f"{table}:modality")
    with pytest.raises(DatasetError, match=r"FILE\.csv:COLUMN"):
        read_groups("meta.csv")


def test_an_empty_set_summarises_to_counts_only() -> None:
    summary = summarise([], {"a": "x"})
    assert summary == {"all": {"images": 0, "n_true": 0, "n_predicted": 0, "merges": 0, "splits": 0}, "groups": {}}
    assert format_table(summary).splitlines()[1].split()[1:3] == ["0", "-"]
