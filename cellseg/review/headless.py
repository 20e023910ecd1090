"""Where Debian's Chromium is and how to start it headless.

Shared by the report's browser test and the script that draws the README's screenshots
(``scripts/review_screenshot.py``).

The flags keep Chromium off the network (no background updates, sync or QUIC), which a closed machine refuses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def chromium_path() -> str | None:
    """Debian's Chromium: ``/usr/bin/chromium``, else whatever ``chromium`` is on the PATH, else ``None``."""
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")
