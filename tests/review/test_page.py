"""The review page as a file: one self-contained index.html, its data escaped, written atomically."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cellseg.review import page as page_module
from cellseg.review.page import INDEX_HTML, embed_json, render_page, write_page

HOSTILE_NAME = "</script><img src=x onerror=alert(1)>"
DATA_OPEN = '<script id="report-data" type="application/json">'
REPO = Path(__file__).resolve().parents[2]


def report_data(name: str = HOSTILE_NAME, note: str = "fine & <b>dandy</b>\u2028next") -> dict[str, Any]:
    image = {
        "id": 0,
        "name": name,
        "width": 64,
        "height": 48,
        "thumbnail": "thumbs/000000.png",
        "layers": {
            "image": "layers/000000_image.png",
            "mask": None,
            "contours": None,
            "probability": None,
            "truth": None,
        },
        "objects": 3,
        "median_area": 12.5,
        "mean_confidence": 0.9,
        "border_objects": 0,
        "cut_objects": 0,
        "dice": None,
        "f1": None,
        "status": "ok",
        "flags": [{"code": "count", "reason": "3 < 10 <!-- -->"}],
        "decision": {"decision": "reject", "note": note},
    }
    return {"title": f"cellseg review: {name}", "report_id": "abc", "has_truth": False, "images": [image], "run": None}


def embedded(page: str) -> Any:
    start = page.index(DATA_OPEN) + len(DATA_OPEN)
    return json.loads(page[start : page.index("</script>", start)])


def inline_text(page: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
    assert match is not None, tag
    return match.group(1)


def test_hostile_strings_stay_inside_the_json() -> None:
    data = report_data()
    page = render_page(data)
    assert HOSTILE_NAME not in page
    template = page_module._static_text("report.html")
    assert page.count("<img") == template.count("<img")  # no <img> but the template's own
    assert page.count("</script>") == 2  # the data's and the script's closing tags, no other
    assert embedded(page) == data  # JSON.parse reads the escapes back as the same characters
    data_text = page[page.index(DATA_OPEN) + len(DATA_OPEN) : page.index("</script>")]
    for character in "<>&\u2028\u2029":
        assert character not in data_text
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in data_text
    # the <title> is escaped by Python, for the moment before the script sets it
    assert "<title>cellseg review: &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</title>" in page


def test_embed_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="write None where a number is missing"):
        embed_json({"dice": float("nan")})


def test_page_loads_nothing_from_elsewhere() -> None:
    page = render_page(report_data(name="a01"))
    assert re.search(r"https?://", page) is None
    assert re.search(r"<link|@import|<iframe|<object|<embed|src=\"//", page, re.IGNORECASE) is None
    assert "url(" not in inline_text(page, "style")


def test_content_security_policy_allows_only_the_inlined_style_and_script() -> None:
    page = render_page(report_data())
    match = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert match is not None
    directives = dict(part.strip().split(" ", 1) for part in match.group(1).split(";"))
    assert directives["default-src"] == "'none'"
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        digest = hashlib.sha256(inline_text(page, tag).encode("utf-8")).digest()
        assert directives[directive] == f"'sha256-{base64.b64encode(digest).decode()}'"
    assert "unsafe" not in match.group(1)
    assert directives["img-src"] == "'self' file:"


def test_the_page_has_the_elements_the_tests_and_users_rely_on() -> None:
    page = render_page(report_data())
    ids = ["view-grid", "view-table", "report-table", "filter-name", "filter-flag", "filter-decision", "count"]
    ids += ["detail", "detail-name", "layer-mask", "layer-contours", "layer-probability", "layer-truth", "note"]
    ids += ["export", "run-section", "report-data"]
    for element_id in ids:
        assert page.count(f'id="{element_id}"') == 1, element_id
    for decision in ("accept", "reject", "needs-fix"):
        assert f'data-decision="{decision}"' in page
    script = inline_text(page, "script")
    assert "innerHTML" not in script  # every piece of data reaches the page as text
    assert "eval(" not in script


def test_write_page_writes_index_html(tmp_path: Path) -> None:
    output = tmp_path / "report" / "nested"
    path = write_page(output, report_data())
    assert path == output / INDEX_HTML
    assert embedded(path.read_text(encoding="utf-8"))["images"][0]["name"] == HOSTILE_NAME
    assert sorted(p.name for p in output.iterdir()) == [INDEX_HTML]


def test_write_page_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = write_page(tmp_path, report_data(name="earlier")).read_text(encoding="utf-8")

    def fail_halfway(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with self.open("w", encoding="utf-8") as stream:
            stream.write(text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_page(tmp_path, report_data(name="later"))
    monkeypatch.undo()
    assert (tmp_path / INDEX_HTML).read_text(encoding="utf-8") == earlier  # not half of the new page
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_HTML]  # and no temporary file left


def test_static_files_ship_with_the_package() -> None:
    for name in page_module.STATIC_FILES:
        assert page_module._static_text(name).strip()
    with (REPO / "pyproject.toml").open("rb") as stream:
        package_data = tomllib.load(stream)["tool"]["setuptools"]["package-data"]
    assert "static/*" in package_data["cellseg.review"]
