"""``cellseg review`` in-process: the summary, the default output, refusals, --decisions errors, --serve."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from cellseg.cli import main
from cellseg.review.cli import default_output, make_server
from tests.review.conftest import HOSTILE_NAME

Run = tuple[Path, Path, Path]


def test_review_writes_the_report_and_says_where(
    prediction_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cellseg.review.page")
    pred_dir, images_dir, gt_dir = prediction_run
    report = tmp_path / "report"
    arguments = ["review", str(pred_dir), "--images", str(images_dir), "--gt", str(gt_dir), "--output", str(report)]
    assert main([*arguments, "--no-progress", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "cellseg review: 8 images, 1 failed, 6 flagged (empty 1, count 1, area 1, low_confidence 1, cut 1, " in (
        captured.out
    )
    assert f"open {(report / 'index.html').resolve().as_uri()}" in captured.out
    assert "note: no ground truth" in captured.err
    assert (report / "index.html").is_file()
    assert main(arguments) == 2
    assert "holds a report already (index.html); pass --overwrite" in capsys.readouterr().err
    assert main([*arguments, "--overwrite", "--min-confidence", "0.95", "--min-dice", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "low_confidence 5" in out  # all but the 0.95 one
    assert "low_dice" not in out


def test_the_report_goes_beside_the_predictions_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_output(Path("runs/demo/predictions")) == Path("runs/demo/predictions_review")
    assert default_output(Path("out/")) == Path("out_review")
    monkeypatch.chdir(tmp_path)
    assert default_output(Path(".")) == tmp_path.parent / f"{tmp_path.name}_review"


def test_bad_inputs_are_one_line_errors(
    prediction_run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred_dir, _, _ = prediction_run
    assert main(["review", str(tmp_path / "missing")]) == 2
    assert "missing: no such folder" in capsys.readouterr().err
    review_csv = tmp_path / "review.csv"
    review_csv.write_text(f"name,decision,note,flags\n{HOSTILE_NAME},perhaps,,\n")
    assert main(["review", str(pred_dir), "--decisions", str(review_csv), "--output", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert f"cellseg review: {review_csv}, line 2: decision 'perhaps' is not one of accept" in error
    assert error.count("\n") == 1
    assert main(["review", str(pred_dir), "--min-dice", "7"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err


def test_the_server_serves_the_report_folder(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>report</p>")
    server = make_server(tmp_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as response:
            assert response.read() == b"<p>report</p>"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_help_loads_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from cellseg.cli import build_parser\n"
        "build_parser().parse_args(['review', 'x'])\n"
        "heavy = ('torch', 'lightning', 'skimage', 'matplotlib', 'cellseg.review.report')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
