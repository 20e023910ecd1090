"""``review.csv``: written and read back exactly, and one-line errors naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellseg.review.decisions import Decision, DecisionsError, read_decisions, write_decisions
from tests.review.conftest import HOSTILE_NAME


def test_decisions_round_trip_with_awkward_notes(tmp_path: Path) -> None:
    decisions = {
        "a": Decision("accept"),
        HOSTILE_NAME: Decision("reject", 'says "hi", then\na second line'),
        "plate 1/b": Decision("needs-fix", "=HYPERLINK(1) stays as typed; ünïcödé"),
    }
    path = write_decisions(tmp_path / "review.csv", decisions, flags={"plate 1/b": ["empty", "low_dice"]})
    assert read_decisions(path) == decisions
    assert list(read_decisions(path)) == list(decisions)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "name,decision,note,flags"
    assert "empty;low_dice" in path.read_text(encoding="utf-8")


def test_undecided_rows_are_skipped_and_a_later_row_wins(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    path.write_text("\ufeffname,decision,note,flags\na,,,\nb,reject,first,\nb,accept,second,\n", encoding="utf-8")
    assert read_decisions(path) == {"b": Decision("accept", "second")}


def test_a_bad_decision_names_the_file_and_the_line_it_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    path.write_text('name,decision,note,flags\na,accept,"two\nlines",\nb,maybe,,\n', encoding="utf-8")
    with pytest.raises(DecisionsError, match=r"review\.csv, line 4: decision 'maybe' is not one of accept") as error:
        read_decisions(path)
    assert "\n" not in str(error.value)


def test_a_missing_header_or_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    path.write_text("a,accept\n", encoding="utf-8")
    with pytest.raises(DecisionsError, match=r"review\.csv, line 1: the header a,accept lacks name and decision"):
        read_decisions(path)
    with pytest.raises(DecisionsError, match="no such file"):
        read_decisions(tmp_path / "missing.csv")
    path.write_bytes(b"name,decision\n\xff\xfe,accept\n")
    with pytest.raises(DecisionsError, match="cannot be read as a UTF-8 CSV"):
        read_decisions(path)
