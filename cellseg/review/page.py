"""The review report's page: one self-contained ``index.html`` with its style, its script and its data inlined.

The page is assembled from three files shipped in ``cellseg/review/static`` (``report.html``, a template with
``$``-placeholders, ``report.css`` and ``report.js``) and the report's data, embedded as
``<script id="report-data" type="application/json">``. Nothing on the page comes from elsewhere (no font, no CDN), so
it opens from ``file://`` and works offline. The script builds every element from the data with ``textContent`` and
``setAttribute`` (never as markup), and the JSON is escaped so that no string in it, such as a file named
``</script><img src=x onerror=alert(1)>``, can end the ``<script>`` element it sits in.

A Content-Security-Policy ``<meta>`` tag backs this up: the page may run only its own script and style (allowed by
their SHA-256 hashes, so an injected inline handler such as ``onerror=`` would not run either), may load images only
from its own folder, and may not connect, embed, submit forms or change its base URL.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from cellseg import __version__
from cellseg.io.atomic import atomic_output

INDEX_HTML = "index.html"
STATIC_FILES = ("report.html", "report.css", "report.js")
# JSON escapes for characters that could end the <script> element, start an HTML comment or an entity, or end a
# line in older JavaScript parsers; JSON.parse reads them back as the same characters.
_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
# What an inlined stylesheet or script must not contain: it would end its element early (or, in a script, open an
# HTML comment that changes how the parser finds the end).
_CLOSING_TAG = {"style": re.compile(r"</style", re.IGNORECASE), "script": re.compile(r"</script|<!--", re.IGNORECASE)}


def write_page(output: Path, data: dict[str, Any]) -> Path:
    """Write the report's ``index.html`` into ``output``, atomically: a reader sees the old page or the new one.

    Args:
        output: the report folder (created if missing); its ``thumbs/`` and ``layers/`` are what ``data`` points to.
        data: the report's data, JSON-ready (no NaN or infinity: write ``None``); its keys are described in the
            design notes of ``cellseg.review`` (``title``, ``report_id``, ``images``, ``flag_rules``, ``run``, ...).

    Returns:
        The path of ``index.html``.

    Raises:
        ValueError: ``data`` holds something JSON cannot hold (NaN, infinity, a type json cannot write).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    page = render_page(data)
    path = output / INDEX_HTML
    with atomic_output(path) as temporary:
        temporary.write_text(page, encoding="utf-8", newline="\n")
    return path


def render_page(data: dict[str, Any]) -> str:
    r"""The whole ``index.html`` for ``data``, as text (see :func:`write_page`).

    >>> page = render_page({"title": "a <b>", "images": []})
    >>> "<title>a &lt;b&gt;</title>" in page and r'"title":"a \u003cb\u003e"' in page
    True
    """
    template, style, script = (_static_text(name) for name in STATIC_FILES)
    style, script = _inline(style, "style"), _inline(script, "script")
    title = str(data.get("title") or "cellseg review")
    return Template(template).substitute(
        csp=content_security_policy(style, script),
        generator=html.escape(f"cellseg {__version__}"),
        title=html.escape(title),
        style=style,
        script=script,
        data=embed_json(data),
    )


def embed_json(data: Any) -> str:
    r"""``data`` as JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left.

    >>> print(embed_json({"name": "</script><img src=x onerror=alert(1)>"}))
    {"name":"\u003c/script\u003e\u003cimg src=x onerror=alert(1)\u003e"}

    Raises:
        ValueError: ``data`` holds NaN or infinity (JSON has neither; the page could not read it).
    """
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        raise ValueError(
            f"the report's data cannot be written as JSON ({error}); write None where a number is missing"
        ) from None
    return text.translate(_JSON_ESCAPES)


def content_security_policy(style: str, script: str) -> str:
    """The page's Content-Security-Policy: its own inline style and script (by hash), images from its folder.

    ``'self'`` covers the report's folder when it is served (``cellseg review --serve``) and, in Chromium, when it
    is opened from ``file://``; ``file:`` covers browsers that give each local file its own origin (Firefox).
    Nothing can be fetched, framed, embedded or submitted.
    """
    return "; ".join(
        [
            "default-src 'none'",
            f"style-src '{_sha256(style)}'",
            f"script-src '{_sha256(script)}'",
            "img-src 'self' file:",
            "base-uri 'none'",
            "form-action 'none'",
            "object-src 'none'",
        ]
    )


def _sha256(text: str) -> str:
    """A CSP hash source (``sha256-...``) of an inline element's text, as the browser hashes it (UTF-8)."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _static_text(name: str) -> str:
    """One of the page's static files, read from the installed package."""
    return resources.files("cellseg.review").joinpath("static", name).read_text(encoding="utf-8")


def _inline(text: str, tag: str) -> str:
    """``text`` to inline in a ``<tag>`` element, after checking it cannot end that element early."""
    if _CLOSING_TAG[tag].search(text):
        raise RuntimeError(f"cellseg/review/static: the {tag} to inline holds a closing tag; fix the static file")
    return text
