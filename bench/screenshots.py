"""``python -m bench.screenshots`` (``make screenshots``, the last step of ``make bench``): the
demo's HTML report and a spec run's grid, shot in headless Chromium 1400 px wide, written to
docs/screenshots/ (PNG). Look at them after a change to the report: nothing may overflow the
page, no internal key may show, every image must be labelled.

The runs are made as a user makes them: the CLI against the built-in simulator
(``--provider sim``), in a temporary directory. Needs Chromium (``apt-get install -y
chromium``); without it, says so and exits 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
WIDTH = 1400
SPEC = """\
defaults: {model: gpt-image-1-mini, quality: low, size: 1024x1024}
prompt: "A {style} photo of a {product} on a {background} table"
matrix:
  style: [studio, lifestyle, flat lay]
  product: [mug, lamp, vase]
  background: [oak, marble]
repeat: 2
"""
SIM = ["--provider", "sim", "--sim-latency", "0.05"]


def _batchgen(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "batchgen", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "120"},
    )
    if proc.returncode not in ok:
        msg = f"batchgen {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        raise SystemExit(msg)


def _shot(chromium: str, page: Path, png: Path, height: int, work: Path) -> None:
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={work / 'profile'}",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0 or not png.is_file():
        raise SystemExit(f"chromium failed: {proc.stderr[-2000:]}")
    _shrink(png)


def _shrink(png: Path) -> None:
    """256 colours: a third of the bytes in git, the page still readable."""
    from PIL import Image

    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def make_screenshots(work: Path, out: Path = OUT) -> list[Path]:
    """The demo's report and a spec grid, as PNGs in ``out``."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install -y chromium")
    out.mkdir(parents=True, exist_ok=True)
    demo = work / "demo"
    _batchgen(
        "run",
        str(ROOT / "jobs" / "demo.jsonl"),
        "--run-dir",
        str(demo),
        "--quiet",
        "--sim-faults",
        "server=0.1,rate_limit=0.05,content_policy=0.05",
        *SIM,
        ok=(0, 1),
    )
    _batchgen("score", str(demo), "--judge", "gpt-4o-mini", "--quiet", *SIM)
    _batchgen("resume", str(demo), "--regenerate-below", "6", "--quiet", "--yes", ok=(0, 1))
    _batchgen("report", str(demo), "--format", "html")
    spec = work / "mugs.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    grid = work / "grid"
    _batchgen(
        "run",
        str(spec),
        "--run-dir",
        str(grid),
        "--quiet",
        "--sim-faults",
        "content_policy=0.05",
        *SIM,
        ok=(0, 1),
    )
    _batchgen("report", str(grid), "--format", "html", "--grid", "style,product")
    shots = [out / "report.png", out / "grid.png"]
    _shot(chromium, demo / "report.html", shots[0], 7000, work)
    _shot(chromium, grid / "report.html", shots[1], 4200, work)
    return shots


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="batchgen-shots-") as tmp:
        for png in make_screenshots(Path(tmp)):
            print(f"wrote {png.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
