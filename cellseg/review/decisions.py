"""``review.csv``: the accept / reject / needs-fix decision and note per image that the review page exports.

The file has the header ``name,decision,note,flags`` and one row per decided image; ``flags`` are the image's flag
codes joined by ``;`` (kept for the reader, not needed to read the decisions back). It is UTF-8 (a byte-order mark,
as spreadsheet programs add, is tolerated) and quoted per RFC 4180, so notes may hold commas, quotes and newlines.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, TypeAlias, cast, get_args

from cellseg.io.atomic import atomic_output

DecisionValue: TypeAlias = Literal["accept", "reject", "needs-fix"]
DECISIONS: tuple[str, ...] = get_args(DecisionValue)
COLUMNS = ("name", "decision", "note", "flags")
EXCLUDED_FROM_TRAINING: frozenset[str] = frozenset({"reject", "needs-fix"})
"""The decisions that keep an image out of training (``cellseg fit --data.exclude``)."""


class DecisionsError(ValueError):
    """A ``review.csv`` that cannot be read; the message names the file, the line and what to do."""


@dataclass(frozen=True)
class Decision:
    """What the reviewer decided about one image.

    Attributes:
        decision: ``"accept"``, ``"reject"`` or ``"needs-fix"``.
        note: free text, possibly empty.
    """

    decision: DecisionValue
    note: str = ""


def read_decisions(path: str | Path) -> dict[str, Decision]:
    r"""Read a ``review.csv`` into ``{image name: Decision}``, in the file's order.

    Rows with an empty decision (undecided) are skipped; when a name appears twice the later row wins.

    Args:
        path: the CSV the review page exported.

    Returns:
        The decisions by image name.

    Raises:
        DecisionsError: the file is missing or unreadable, its header lacks ``name`` or ``decision``, or a row's
            decision is not one of ``accept``, ``reject``, ``needs-fix``.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "review.csv"
        >>> _ = path.write_text('name,decision,note,flags\na,reject,"blurry, out of focus",empty\nb,accept,,\n')
        >>> read_decisions(path)
        {'a': Decision(decision='reject', note='blurry, out of focus'), 'b': Decision(decision='accept', note='')}
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            return _parse(path, stream)
    except FileNotFoundError:
        raise DecisionsError(f"{path}: no such file; give the review.csv exported from the review page") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DecisionsError(f"{path}: cannot be read as a UTF-8 CSV ({error}); export it again") from None


def _parse(path: Path, stream: TextIO) -> dict[str, Decision]:
    """The decisions of an open ``review.csv`` (see :func:`read_decisions`)."""
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    missing = [column for column in ("name", "decision") if column not in header]
    if missing:
        raise DecisionsError(
            f"{path}, line 1: the header {','.join(header) or '(empty)'} lacks {' and '.join(missing)}; "
            f"a review.csv starts with {','.join(COLUMNS)}"
        )
    decisions: dict[str, Decision] = {}
    line = reader.line_num + 1  # the line the next record starts on (a quoted note may span several)
    for row in reader:
        name, value = (row.get("name") or "").strip(), (row.get("decision") or "").strip()
        if value and value not in DECISIONS:
            raise DecisionsError(
                f"{path}, line {line}: decision {value!r} is not one of {', '.join(DECISIONS)}; fix or delete the row"
            )
        if name and value:
            decisions[name] = Decision(cast(DecisionValue, value), row.get("note") or "")
        line = reader.line_num + 1
    return decisions


def write_decisions(
    path: str | Path, decisions: Mapping[str, Decision], flags: Mapping[str, Sequence[str]] | None = None
) -> Path:
    """Write ``review.csv`` atomically, one row per decision in the mapping's order.

    Args:
        path: the file to write.
        decisions: the decisions by image name.
        flags: each image's flag codes (joined by ``;`` in the ``flags`` column), where known.

    Returns:
        ``path``.
    """
    path = Path(path)
    with atomic_output(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for name, decision in decisions.items():
            codes = ";".join((flags or {}).get(name, ()))
            writer.writerow([name, decision.decision, decision.note, codes])
    return path
