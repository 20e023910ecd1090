"""Draw the README's screenshots of ``cellseg review``: the overview and the detail view of a synthetic run.

Run by hand, from the repository root, after changing the report's page::

    .venv/bin/python scripts/review_screenshot.py            # writes docs/images/review_{overview,detail}.png
    .venv/bin/python scripts/review_screenshot.py --keep /tmp/review_demo   # and keeps the run and the report

It needs Playwright for Python (``pip install playwright``; no browser download) and Debian's Chromium
(``apt-get install chromium``, found at ``/usr/bin/chromium`` or on the PATH). No trained model is needed: the script
writes 24 synthetic 256x256 images with their true masks (``cellseg.data.synthetic``) and makes "predictions" by
damaging the true masks the way a poor model would (objects dropped, neighbours merged, objects shrunk, one image
empty, one with low confidence, one with objects cut between tiles), so that the report has flags to show. It then
runs ``cellseg review`` with the true masks as ground truth, opens the report in headless Chromium at 1400x900,
makes a few decisions and saves the two screenshots.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tifffile
from scipy import ndimage

from cellseg.cli import main as cellseg_main
from cellseg.data.synthetic import SyntheticConfig, generate_sample
from cellseg.io.atomic import atomic_output
from cellseg.io.writers import write_labels, write_probability
from cellseg.review.headless import CHROMIUM_ARGS, chromium_path

IMAGES = 24
CSV_COLUMNS = (
    "image", "name", "status", "objects", "mean_area", "median_area", "mean_confidence", "border_objects",
    "cut_objects", "seconds", "error",
)  # fmt: skip
# What goes wrong in which image (by index); the others are the true masks, slightly eroded or not.
DROPPED, MERGED, SHRUNK, EMPTY, LOW_CONFIDENCE, CUT, SPARSE = 3, 7, 10, 13, 16, 19, 21
Labels = npt.NDArray[np.int32]


def image_name(index: int) -> str:
    """A plate-like name: ``plate1_A01`` ... ``plate1_B12``."""
    return f"plate1_{'ABCDEFGH'[index // 12]}{index % 12 + 1:02d}"


def damaged(labels: Labels, index: int, rng: np.random.Generator) -> Labels:
    """The "prediction" of image ``index``: its true labels ``(H, W)``, damaged as ``index`` says."""
    ids = np.unique(labels)[1:]
    if index == EMPTY:
        return np.zeros_like(labels)
    if index in (DROPPED, SPARSE):
        keep = rng.random(ids.size) < (0.6 if index == DROPPED else 0.1)
        return np.where(np.isin(labels, ids[keep]), labels, 0)
    if index == MERGED:  # neighbours within a few pixels become one object, a little too large
        merged, _ = ndimage.label(ndimage.binary_dilation(labels > 0, iterations=4))
        return np.where(ndimage.binary_dilation(labels > 0, iterations=1), merged, 0).astype(np.int32)
    if index == SHRUNK:  # every object loses its rim
        inner = ndimage.grey_erosion(labels, size=(7, 7))
        return np.where(inner == labels, labels, 0)
    if index % 4 == 1:  # a light erosion, as a real model would do
        inner = ndimage.grey_erosion(labels, size=(3, 3))
        return np.where(inner == labels, labels, 0)
    return labels


def write_run(root: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """Write images, true masks and a prediction folder under ``root``; return ``(pred_dir, images_dir, gt_dir)``."""
    pred_dir, images_dir, gt_dir = root / "predictions", root / "images", root / "truth"
    for folder in (pred_dir, images_dir, gt_dir):
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for index in range(IMAGES):
        name = image_name(index)
        sample = generate_sample(SyntheticConfig(shape=(256, 256)), (seed, index))
        truth = sample.labels.astype(np.int32)
        tifffile.imwrite(images_dir / f"{name}.tif", sample.image)
        write_labels(gt_dir / f"{name}.tif", truth, "tif")
        labels = damaged(truth, index, rng)
        write_labels(pred_dir / f"{name}_masks.tif", labels, "tif")
        probability = ndimage.gaussian_filter((labels > 0).astype(np.float32), 2.0)
        probability = np.clip(probability * rng.uniform(0.85, 1.0) + rng.normal(0, 0.02, labels.shape), 0, 1)
        write_probability(pred_dir / f"{name}_probabilities.tif", probability)
        areas = np.bincount(labels.ravel())[1:]
        areas = areas[areas > 0]
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        rows.append(
            {
                "image": str(images_dir / f"{name}.tif"), "name": name, "status": "ok", "objects": areas.size,
                "mean_area": float(areas.mean()) if areas.size else 0.0,
                "median_area": float(np.median(areas)) if areas.size else 0.0,
                "mean_confidence": 0.58 if index == LOW_CONFIDENCE else round(float(rng.uniform(0.84, 0.96)), 3),
                "border_objects": int(np.count_nonzero(edge)), "cut_objects": 5 if index == CUT else 0,
                "seconds": round(float(rng.uniform(0.2, 0.4)), 3), "error": "",
            }
        )  # fmt: skip
    with (pred_dir / "predictions.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return pred_dir, images_dir, gt_dir


def chromium() -> str:
    """Debian's Chromium, or exit saying how to get it."""
    found = chromium_path()
    if found is None:
        sys.exit("review_screenshot.py: no Chromium at /usr/bin/chromium or on the PATH; apt-get install chromium")
    return found


def screenshot(page: Any, path: Path) -> None:
    """Save what ``page`` shows as the PNG ``path``, written atomically."""
    with atomic_output(path) as temporary:
        page.screenshot(path=str(temporary))
    print(f"wrote {path}")


def take_screenshots(index_html: Path, output: Path) -> None:
    """Open the report, make a few decisions, and save the overview and the detail view into ``output``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("review_screenshot.py: Playwright for Python is missing; pip install playwright")

    def open_image(page: Any, name: str) -> None:
        page.click(f"#grid .card-name:text-is('{name}')")
        page.wait_for_selector("#detail", state="visible")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=[*CHROMIUM_ARGS, "--hide-scrollbars"])
        page = browser.new_page(viewport={"width": 1400, "height": 900}, color_scheme="light")
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(index_html.resolve().as_uri())
        page.wait_for_selector("#count:not(:empty)")
        page.click("#view-grid")
        for index in (0, 1, 2, 4, 5):  # accepted after a look
            open_image(page, image_name(index))
            page.keyboard.press("a")
            page.keyboard.press("Escape")
        open_image(page, image_name(SPARSE))
        page.keyboard.press("r")
        page.keyboard.press("Escape")
        open_image(page, image_name(MERGED))
        page.click("#detail button[data-decision=needs-fix]")
        page.fill("#note", "touching nuclei merged; split them")
        page.keyboard.press("Escape")  # leaves the note
        page.keyboard.press("Escape")  # closes the detail view
        open_image(page, image_name(SHRUNK))
        page.click("#detail button[data-decision=needs-fix]")
        page.fill("#note", "every outline too tight: redraw before training")
        page.check("#layer-mask")
        page.check("#layer-contours")
        page.check("#layer-truth")
        page.eval_on_selector_all(".stage img:not([hidden])", "images => Promise.all(images.map(i => i.decode()))")
        screenshot(page, output / "review_detail.png")
        page.click("#detail-close")
        page.evaluate("window.scrollTo(0, 0)")
        page.eval_on_selector_all(
            "#grid img",
            """images => Promise.all(images
                .filter(image => image.getBoundingClientRect().top < window.innerHeight)
                .map(image => image.decode().catch(() => 0)))""",
        )
        screenshot(page, output / "review_overview.png")
        browser.close()
    if errors:
        sys.exit(f"review_screenshot.py: the page reported errors: {errors}")


def main(argv: list[str] | None = None) -> int:
    """Write the run, build its report and save the screenshots; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=Path("docs/images"), help="where the PNGs go (docs/images)")
    parser.add_argument("--keep", type=Path, help="keep the synthetic run and its report in this folder")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cellseg_review_") as scratch:
        root = args.keep if args.keep is not None else Path(scratch)
        write_run(root)
        with contextlib.chdir(root):  # the report's title then names the run's folder, not a temporary path
            code = cellseg_main(
                [
                    *("review", "predictions", "--images", "images", "--gt", "truth"),
                    *("--output", "report", "--overwrite", "--no-progress"),
                ]
            )
        if code != 0:
            return code
        take_screenshots(root / "report" / "index.html", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
