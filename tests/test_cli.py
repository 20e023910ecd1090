from __future__ import annotations

from pathlib import Path

import pytest

from cellseg import __version__
from cellseg.cli import main
from cellseg.demo import run_demo


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cellseg {__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "fit" in out
    assert "demo" in out
    assert "evaluate" in out


@pytest.mark.slow
def test_demo_trains_and_reaches_its_dice_on_held_out_images(tmp_path: Path) -> None:
    """The whole demo: synthetic data, training with configs/demo.yaml, segmentation of the test images."""
    dice = run_demo(output=tmp_path / "data", runs=tmp_path / "runs", seed=0)
    assert dice >= 0.90
    assert len(list((tmp_path / "runs" / "predictions").glob("*_masks.tif"))) == 8
    evaluation = tmp_path / "runs" / "evaluation"
    assert {"per_image.csv", "summary.json", "scores_by_threshold.png"} <= {p.name for p in evaluation.iterdir()}
    assert (tmp_path / "runs" / "review" / "index.html").is_file()
