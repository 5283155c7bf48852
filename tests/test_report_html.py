"""The HTML report: one offline file, every user string escaped, charts and thumbnails inline;
opened in headless Chromium without console errors (skipped when Chromium is absent)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import openai
import pytest
from PIL import Image

from batchgen.reports import build, write
from batchgen.testing.synthetic import table_from_rows, write_run

XSS = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHART_BLUE = np.array([0x25, 0x63, 0xEB])


@pytest.fixture
def run_with_images(tmp_path: Path, make_sim) -> Path:
    sim = make_sim(tiny=False, variants=64)
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test-not-a-key", max_retries=0)
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    rows = []
    t0 = 1_800_000_000.0
    for i in range(6):
        prompt = f"a harbour at night, print {i}"
        data = base64.b64decode(
            client.images.generate(model="gpt-image-1", prompt=prompt, size="1024x1024")
            .data[0]
            .b64_json
        )
        (run / "images" / f"job-{i}_0.png").write_bytes(data)
        rows.append(
            {
                "run_id": "r",
                "session": 1,
                "job_id": f"job-{i}",
                "attempt": 1,
                "status": "ok",
                "final": True,
                "prompt": prompt,
                "model": "gpt-image-1",
                "quality": "medium",
                "size": "1024x1024",
                "image_paths": [f"images/job-{i}_0.png"],
                "image_count": 1,
                "latency_s": 2.0 + i,
                "wait_s": 0.1,
                "finished_at": t0 + 20 * i,
                "cost_usd": 0.042,
                "cost_source": "usage",
            }
        )
    for i, cls in enumerate(["content_policy", "server", "server", "rate_limit"]):
        rows.append(
            {
                "run_id": "r",
                "session": 1,
                "job_id": f"bad-{i}",
                "attempt": 1,
                "status": "error",
                "final": cls == "content_policy",
                "error_class": cls,
                "error_message": f"refused: {XSS}",
                "prompt": f"{XSS} & <b>bold</b> {i}",
                "finished_at": t0 + 5 * i,
                "http_status": 400 if cls == "content_policy" else 503,
            }
        )
    write_run(
        run,
        table_from_rows(rows),
        jobs=8,
        sessions=[{"session": 1, "started_at": t0 - 5, "ended_at": t0 + 130, "how": "completed"}],
    )
    return run


def test_html_is_offline_and_escapes_everything(run_with_images):
    path = write(build([run_with_images]), "html")
    assert path == run_with_images / "report.html"
    page = path.read_text()
    assert "<script" not in page.lower()  # the page has no script, so any would be injected
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 4  # the four charts
    thumbs = re.findall(r'<a href="([^"]+)"><img loading="lazy" src="data:image/jpeg', page)
    assert len(thumbs) == 6
    for href in thumbs:  # links open the full images, relative to the page
        assert (path.parent / urllib.parse.unquote(href)).is_file()


def test_html_links_are_relative_to_the_output_file(run_with_images, tmp_path):
    out = tmp_path / "elsewhere" / "r.html"
    out.parent.mkdir()
    write(build([run_with_images], image_checks=False), "html", out)
    hrefs = re.findall(r'<a href="([^"]+)"><img', out.read_text())
    assert hrefs and all((out.parent / urllib.parse.unquote(h)).is_file() for h in hrefs)


def chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=90)


CONSOLE_ERROR = re.compile(r"CONSOLE|Uncaught|Failed to load resource|net::ERR_", re.IGNORECASE)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_in_headless_chromium(run_with_images, tmp_path):
    page = write(build([run_with_images]), "html")
    url = page.resolve().as_uri()

    dom = chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not [line for line in dom.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout  # shown as text
    assert "<script>alert(1)" not in dom.stdout  # never an element

    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert not [line for line in run.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert img.shape[:2] == (2000, 1280)
    # the charts were drawn: many pixels of the chart blue (a broken <img> shows none)
    blue = (np.abs(img - CHART_BLUE).sum(axis=2) < 40).sum()
    assert blue > 2000
