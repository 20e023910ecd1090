"""The review page in a real headless browser: Debian's Chromium driven by Playwright for Python.

Two reports are opened from ``file://``: a hand-made one (the page alone, from a data dict and a few PNGs: fast, and
independent of the back-end) and one that ``cellseg review`` builds from a synthetic prediction run (the
``prediction_run`` fixture). The tests skip, saying why, where Playwright or Chromium is missing.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "Playwright for Python is not installed (pip install playwright; no browser download is needed)",
        allow_module_level=True,
    )

from cellseg.review.headless import CHROMIUM_ARGS, chromium_path
from cellseg.review.page import write_page

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
SENTINEL = "window.alert = () => { window.__xss = true; }; window.confirm = window.prompt = window.alert;"
VISIBLE_ROW_IDS = """rows => rows.filter(row => row.offsetParent !== null).map(row => row.getAttribute("data-id"))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found at /usr/bin/chromium or on the PATH (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        yield launched
        launched.close()


@dataclass
class Report:
    """A report folder and the data its page embeds."""

    folder: Path
    data: dict[str, Any]

    @property
    def url(self) -> str:
        return (self.folder / "index.html").resolve().as_uri()

    def image(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return next(image for image in self.data["images"] if predicate(image))


@dataclass
class Session:
    """An open page and the errors it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def check_no_errors(self) -> None:
        assert self.errors == [], f"the page reported errors: {self.errors}"


@contextmanager
def open_report(browser: Browser, report: Report, bypass_csp: bool = False) -> Iterator[Session]:
    """A fresh browser context (its own localStorage) showing ``report``, with its errors collected."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800}, bypass_csp=bypass_csp)
    page = context.new_page()
    session = Session(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            session.errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: session.errors.append(f"pageerror: {error}"))
    page.add_init_script(SENTINEL)
    page.goto(report.url)
    page.wait_for_selector("#count:not(:empty)")
    try:
        yield session
    finally:
        context.close()


# ------------------------------------------------------------------------------------------------ the two reports


def _rgba(
    height: int, width: int, colour: tuple[int, int, int, int], where: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    layer = np.zeros((height, width, 4), np.uint8)
    layer[where] = colour
    return layer


def handmade_report(folder: Path) -> Report:
    """Six images written by hand, one of them with a hostile name, one failed (no pictures), and a training run."""
    import imageio.v3 as iio

    height, width = 48, 64
    yy, xx = np.mgrid[:height, :width]
    (folder / "thumbs").mkdir(parents=True)
    (folder / "layers").mkdir()
    (folder / "run").mkdir()
    rows: list[dict[str, Any]] = [
        {"name": "plate1/a01", "objects": 12, "median_area": 150.0, "mean_confidence": 0.91, "dice": 0.88, "flags": []},
        {
            "name": "plate1/a02",
            "objects": 0,
            "median_area": None,
            "mean_confidence": None,
            "dice": 0.0,
            "flags": [
                {"code": "empty", "reason": "no object found"},
                {"code": "low_dice", "reason": "Dice 0.00 < 0.70"},
            ],
        },
        {
            "name": HOSTILE_NAME,
            "objects": 7,
            "median_area": 95.5,
            "mean_confidence": 0.88,
            "dice": 0.81,
            "flags": [{"code": "count", "reason": "7 objects, less than a third of the run's median (21) <b>bold</b>"}],
        },
        {
            "name": "plate1/b01",
            "objects": 30,
            "median_area": 120.0,
            "mean_confidence": 0.62,
            "dice": 0.79,
            "flags": [
                {"code": "low_confidence", "reason": "mean confidence 0.62 < 0.75"},
                {"code": "constructor", "reason": "a rule this page does not know, named like a JS built-in"},
            ],
        },
        {
            "name": "plate2/c01",
            "objects": 3,
            "median_area": 400.0,
            "mean_confidence": 0.85,
            "dice": 0.2,
            "flags": [{"code": "low_dice", "reason": "Dice 0.20 < 0.70"}],
        },
        {
            "name": "plate2/c02",
            "objects": None,
            "median_area": None,
            "mean_confidence": None,
            "dice": None,
            "flags": [],
        },
    ]
    images = []
    for index, row in enumerate(rows):
        failed = row["objects"] is None
        stem = f"{index:06d}"
        layers: dict[str, str | None] = dict.fromkeys(["image", "mask", "contours", "probability", "truth"])
        thumbnail = None
        if not failed:
            grey = ((xx + yy * 2 + index * 20) % 256).astype(np.uint8)
            disc = (yy - 20) ** 2 + (xx - 10 - index * 6) ** 2 < 64
            ring = disc & ((yy - 20) ** 2 + (xx - 10 - index * 6) ** 2 >= 36)
            pictures = {
                "image": np.stack([grey] * 3, axis=-1),
                "mask": _rgba(height, width, (255, 80, 0, 115), disc),
                "contours": _rgba(height, width, (0, 255, 0, 255), ring),
                "probability": _rgba(height, width, (255, 0, 255, 90), disc),
                "truth": _rgba(height, width, (255, 255, 0, 255), ring),
            }
            for kind, picture in pictures.items():
                iio.imwrite(folder / "layers" / f"{stem}_{kind}.png", picture)
                layers[kind] = f"layers/{stem}_{kind}.png"
            iio.imwrite(folder / "thumbs" / f"{stem}.png", pictures["image"])
            thumbnail = f"thumbs/{stem}.png"
        images.append(
            {
                "id": index,
                "name": row["name"],
                "width": None if failed else width,
                "height": None if failed else height,
                "thumbnail": thumbnail,
                "layers": layers,
                "objects": row["objects"],
                "median_area": row["median_area"],
                "mean_confidence": row["mean_confidence"],
                "border_objects": None if failed else index % 3,
                "cut_objects": None if failed else 0,
                "dice": row["dice"],
                "f1": None if row["dice"] is None else round(row["dice"] * 0.9, 3),
                "status": "failed" if failed else "ok",
                "flags": [{"code": "failed", "reason": "the mask cannot be read"}] if failed else row["flags"],
                "decision": None,
            }
        )
    iio.imwrite(folder / "run" / "learning_curves.png", np.full((30, 60, 3), 200, np.uint8))
    iio.imwrite(folder / "run" / "val_000.png", np.full((32, 32, 3), 90, np.uint8))
    data: dict[str, Any] = {
        "title": "cellseg review: hand-made <test>",
        "created": "2026-11-23T10:00:00+00:00",
        "cellseg_version": "0.0.0",
        "report_id": "handmade-" + folder.name,
        "prediction_dir": "out/<plate1>",
        "has_truth": True,
        "has_probability": True,
        "flag_rules": {"empty": "no object found", "low_dice": "Dice below 0.70", "count": "far from the median"},
        "notes": ["'<b>x</b>': no ground truth"],
        "images": images,
        "run": {
            "folder": "runs/demo/lightning_logs/version_0",
            "curves": "run/learning_curves.png",
            "metrics": {"epoch": 49, "val/dice": 0.9123, "val/f1@0.5": 0.8345},
            "validation": [{"name": "val <0>", "overlay": "run/val_000.png", "dice": 0.9, "f1": 0.8}],
        },
    }
    write_page(folder, data)
    return Report(folder, data)


def predicted_report(request: pytest.FixtureRequest, folder: Path) -> Report:
    """The report ``cellseg review`` writes for the synthetic prediction run of ``tests/review/conftest.py``."""
    try:
        pred_dir, images_dir, gt_dir = request.getfixturevalue("prediction_run")
    except pytest.FixtureLookupError:
        pytest.skip("the prediction_run fixture (tests/review/conftest.py) is not there yet")
    from cellseg.cli import main

    code = main(
        [
            *("review", str(pred_dir), "--images", str(images_dir), "--gt", str(gt_dir)),
            *("--output", str(folder), "--no-progress"),
        ]
    )
    assert code == 0
    return Report(folder, read_embedded_data(folder / "index.html"))


def read_embedded_data(index: Path) -> dict[str, Any]:
    """The JSON a written page embeds."""
    text = index.read_text(encoding="utf-8")
    start = text.index('<script id="report-data" type="application/json">') + len(
        '<script id="report-data" type="application/json">'
    )
    data: dict[str, Any] = json.loads(text[start : text.index("</script>", start)])
    return data


@pytest.fixture(params=["handmade", "predicted"])
def report(request: pytest.FixtureRequest, tmp_path: Path) -> Report:
    folder = tmp_path / "report"
    if request.param == "handmade":
        return handmade_report(folder)
    return predicted_report(request, folder)


@pytest.fixture
def session(browser: Browser, report: Report) -> Iterator[Session]:
    with open_report(browser, report) as opened:
        yield opened


# ------------------------------------------------------------------------------------------------ helpers


def wait_until(page: Page, expression: str, timeout: float = 5.0) -> None:
    """Poll a JavaScript expression until it is truthy (``page.wait_for_function`` would need 'unsafe-eval')."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(25)


def image_loaded(page: Page, selector: str) -> int:
    """Wait for an ``<img>`` to load and decode; return its natural width (0 when it failed)."""
    width: int = page.eval_on_selector(selector, "image => image.decode().then(() => image.naturalWidth, () => 0)")
    return width


def visible_row_ids(page: Page) -> list[int]:
    return [int(value) for value in page.eval_on_selector_all("#report-table tbody tr[data-id]", VISIBLE_ROW_IDS)]


def visible_card_ids(page: Page) -> list[int]:
    return [int(value) for value in page.eval_on_selector_all("#grid .card[data-id]", VISIBLE_ROW_IDS)]


def sorted_ids(report: Report, key: str, descending: bool) -> list[int]:
    """Image ids ordered by ``key`` as the page orders them: missing values last, ties in report order."""
    present = [image for image in report.data["images"] if image[key] is not None]
    missing = [image["id"] for image in report.data["images"] if image[key] is None]
    ordered = sorted(present, key=lambda image: (-image[key] if descending else image[key], image["id"]))
    return [image["id"] for image in ordered] + missing


def open_detail(page: Page, image_id: int) -> None:
    page.click("#view-table")
    page.click(f"#report-table tr[data-id='{image_id}'] td.name")
    page.wait_for_selector("#detail", state="visible")


# ------------------------------------------------------------------------------------------------ tests


def test_overview_shows_every_image_without_errors(session: Session, report: Report) -> None:
    page, total = session.page, len(report.data["images"])
    assert page.text_content("#count") == f"{total} of {total} images"
    page.click("#view-grid")
    assert len(visible_card_ids(page)) == total
    assert page.is_hidden("#report-table")
    page.click("#view-table")
    assert visible_row_ids(page) == [image["id"] for image in report.data["images"]]
    assert page.is_hidden("#grid")
    # thumbnails load lazily and keep their place while loading
    thumbnails = page.eval_on_selector_all(
        "#grid img, #report-table img", "images => images.map(i => [i.loading, i.width > 0, i.height > 0])"
    )
    assert thumbnails
    assert all(thumbnail == ["lazy", True, True] for thumbnail in thumbnails)
    notes = page.eval_on_selector_all("#report-notes li", "items => items.map(item => item.textContent)")
    assert notes == report.data.get("notes", [])
    # the page's own style runs under its Content-Security-Policy
    assert page.evaluate("getComputedStyle(document.getElementById('toolbar')).position") == "sticky"
    page.wait_for_load_state("load")
    session.check_no_errors()


def test_table_sorts_by_a_column(session: Session, report: Report) -> None:
    page = session.page
    page.click("#view-table")
    page.click("th[data-key=objects]")
    assert page.get_attribute("th[data-key=objects]", "aria-sort") == "ascending"
    assert visible_row_ids(page) == sorted_ids(report, "objects", descending=False)
    page.click("th[data-key=objects]")
    assert page.get_attribute("th[data-key=objects]", "aria-sort") == "descending"
    assert visible_row_ids(page) == sorted_ids(report, "objects", descending=True)
    page.click("th[data-key=name]")
    names = [report.data["images"][image_id]["name"] for image_id in visible_row_ids(page)]
    assert names[0] != names[-1]
    assert names == sorted(names, key=str.lower)
    # the grid follows the same order
    page.click("#view-grid")
    assert visible_card_ids(page) == visible_row_ids_in_dom(page)
    session.check_no_errors()


def visible_row_ids_in_dom(page: Page) -> list[int]:
    """The rows' order in the table, hidden table or not."""
    return [
        int(value)
        for value in page.eval_on_selector_all("#report-table tbody tr[data-id]", "r => r.map(x => x.dataset.id)")
    ]


def test_flag_filter_shows_only_flagged_images(session: Session, report: Report) -> None:
    page, total = session.page, len(report.data["images"])
    page.click("#view-table")
    codes = {flag["code"] for image in report.data["images"] for flag in image["flags"]}
    assert "empty" in codes
    for code in sorted(codes):
        page.select_option("#filter-flag", code)
        flagged = [image["id"] for image in report.data["images"] if code in {f["code"] for f in image["flags"]}]
        assert visible_row_ids(page) == flagged, code
        assert page.text_content("#count") == f"{len(flagged)} of {total} images"
    page.select_option("#filter-flag", "*none")
    unflagged = [image["id"] for image in report.data["images"] if not image["flags"]]
    assert visible_row_ids(page) == unflagged
    # a chip in the header sets the same filter, and a second click clears it
    page.click("#flag-chips button[data-code=empty]")
    assert page.input_value("#filter-flag") == "empty"
    page.click("#flag-chips button[data-code=empty]")
    assert page.input_value("#filter-flag") == ""
    assert page.text_content("#count") == f"{total} of {total} images"
    # the name filter is a case-insensitive substring
    first = report.data["images"][0]["name"]
    page.fill("#filter-name", first.upper())
    wait_until(page, f"document.getElementById('count').textContent !== '{total} of {total} images'")
    assert report.data["images"][0]["id"] in visible_row_ids(page)
    assert all(first.lower() in report.data["images"][i]["name"].lower() for i in visible_row_ids(page))
    session.check_no_errors()


def test_detail_view_opens_navigates_and_zooms(session: Session, report: Report) -> None:
    page, images = session.page, report.data["images"]
    open_detail(page, images[0]["id"])
    assert page.text_content("#detail-name") == images[0]["name"]
    page.keyboard.press("ArrowRight")
    assert page.text_content("#detail-name") == images[1]["name"]
    page.keyboard.press("n")
    assert page.text_content("#detail-name") == images[2]["name"]
    page.keyboard.press("ArrowLeft")
    assert page.text_content("#detail-name") == images[1]["name"]
    page.keyboard.press("Escape")
    assert page.is_hidden("#detail")
    # layers: a checkbox shows or hides its stacked picture
    layered = report.image(lambda image: image["layers"]["mask"] is not None)
    open_detail(page, layered["id"])
    contours_shown = page.is_checked("#layer-contours") and layered["layers"]["contours"] is not None
    assert page.is_visible("#stage-contours") == contours_shown
    page.check("#layer-mask")
    assert image_loaded(page, "#stage-mask") > 0
    assert page.is_visible("#stage-mask")
    page.uncheck("#layer-mask")
    assert page.is_hidden("#stage-mask")
    # the wheel zooms about the cursor, a drag pans
    before = page.text_content("#zoom-level")
    box = page.locator("#viewport").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)
    page.mouse.wheel(0, -400)
    wait_until(page, f"document.getElementById('zoom-level').textContent !== {json.dumps(before)}")
    transform = page.evaluate("document.getElementById('stage').style.transform")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=4)
    page.mouse.up()
    assert page.evaluate("document.getElementById('stage').style.transform") != transform
    page.keyboard.press("Escape")
    assert page.is_hidden("#detail")
    session.check_no_errors()


def test_decisions_export_to_review_csv(session: Session, report: Report) -> None:
    page, images = session.page, report.data["images"]
    accepted, rejected = images[0], images[-2]
    note = 'merged nuclei, see "left" edge\nsecond line'
    open_detail(page, accepted["id"])
    page.keyboard.press("a")
    assert page.get_attribute("#detail button[data-decision=accept]", "aria-pressed") == "true"
    page.click("#detail-close")
    open_detail(page, rejected["id"])
    page.click("#detail button[data-decision=reject]")
    page.fill("#note", note)
    page.click("#detail-close")
    assert page.get_attribute(f"#report-table tr[data-id='{rejected['id']}']", "data-decision") == "reject"
    page.select_option("#filter-decision", "reject")
    assert visible_row_ids(page) == [rejected["id"]]
    page.select_option("#filter-decision", "undecided")
    assert len(visible_row_ids(page)) == len(images) - 2
    page.select_option("#filter-decision", "")

    with page.expect_download() as download_info:
        page.click("#export")
    download = download_info.value
    assert download.suggested_filename == "review.csv"
    path = download.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"), newline="")))
    assert [row["name"] for row in rows] == [accepted["name"], rejected["name"]]
    assert [row["decision"] for row in rows] == ["accept", "reject"]
    assert rows[0]["note"] == ""
    assert rows[1]["note"] == note
    assert rows[1]["flags"] == ";".join(flag["code"] for flag in rejected["flags"])
    assert list(rows[0]) == ["name", "decision", "note", "flags"]

    # decisions survive a reload (localStorage)
    page.reload()
    page.wait_for_selector("#count:not(:empty)")
    assert page.get_attribute(f"#report-table tr[data-id='{accepted['id']}']", "data-decision") == "accept"
    open_detail(page, rejected["id"])
    assert page.input_value("#note") == note
    session.check_no_errors()


def test_hostile_file_name_is_inert(browser: Browser, report: Report) -> None:
    # without the Content-Security-Policy: the page's own escaping alone must keep the name inert
    with open_report(browser, report, bypass_csp=True) as session:
        page = session.page
        hostile = report.image(lambda image: "onerror" in image["name"])
        page.click("#view-grid")
        page.click("#view-table")
        cell = page.text_content(f"#report-table tr[data-id='{hostile['id']}'] td.name")
        assert cell is not None
        assert cell.startswith(HOSTILE_NAME)
        card = page.text_content(f"#grid .card[data-id='{hostile['id']}'] .card-name")
        assert card == HOSTILE_NAME
        open_detail(page, hostile["id"])
        assert page.text_content("#detail-name") == HOSTILE_NAME
        page.wait_for_timeout(200)  # an injected <img src=x> would have failed to load by now
        assert page.evaluate("window.__xss") is None
        assert page.query_selector_all("img[src='x']") == []
        assert page.evaluate("document.title") == report.data["title"]
        session.check_no_errors()


def test_content_security_policy_blocks_injected_markup(browser: Browser, tmp_path: Path) -> None:
    report = handmade_report(tmp_path / "report")
    with open_report(browser, report) as session:
        page = session.page
        policy = page.get_attribute("meta[http-equiv=Content-Security-Policy]", "content")
        assert policy is not None
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        page.evaluate(
            """() => {
                window.__violations = [];
                document.addEventListener(
                    "securitypolicyviolation", event => window.__violations.push(event.violatedDirective)
                );
                const box = document.createElement("div");
                box.innerHTML = '<img src="x" onerror="window.__xss = true">';
                document.body.append(box);
            }"""
        )
        wait_until(page, "window.__violations.length > 0")
        assert page.evaluate("window.__xss") is None
        assert any(directive.startswith("script-src") for directive in page.evaluate("window.__violations"))


def test_training_run_section(session: Session, report: Report) -> None:
    page = session.page
    if report.data["run"] is None:
        assert page.is_hidden("#run-section")
        assert page.is_hidden("#run-link")
        return
    assert page.is_visible("#run-section")
    page.click("#run-link")
    assert image_loaded(page, "#run-curves-image") > 0
    metrics = page.eval_on_selector_all("#run-metrics tbody th", "cells => cells.map(c => c.textContent)")
    assert metrics == list(report.data["run"]["metrics"])
    assert page.text_content("#run-validation .card-name") == report.data["run"]["validation"][0]["name"]
    session.check_no_errors()
