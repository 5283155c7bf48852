"""What a person reads on the HTML report: every image of a grid cell labelled (the variables
the grid does not lay out, the repeat, the image's number), no internal key as a label, the
best marker kept visible, numeric headers aligned with their numbers, wide tables kept in
their box. A spec-like run is written directly (rows with ``vars``, small PNGs on disk)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from PIL import Image

from batchgen.analyze.variables import grid
from batchgen.reports import build_report
from batchgen.testing.synthetic import table_from_rows, write_run

T0 = 1_800_000_000.0
STYLES, PRODUCTS, BACKGROUNDS = ("studio", "flat lay"), ("mug", "lamp"), ("oak", "marble")


def _spec_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    rows, i = [], 0
    for style in STYLES:
        for product in PRODUCTS:
            for background in BACKGROUNDS:
                for repeat in (1, 2):
                    job = f"style={style}.product={product}.background={background}.r{repeat}"
                    paths = []
                    for k in range(2 if product == "lamp" else 1):  # lamps: n=2
                        name = f"images/j{i}_{k}.png"
                        Image.new("RGB", (8, 8), (i * 9 % 255, 80, 120)).save(run / name)
                        paths.append(name)
                    vars_ = {"style": style, "product": product, "background": background}
                    rows.append(
                        {
                            "run_id": "r",
                            "session": 1,
                            "job_id": job,
                            "attempt": 1,
                            "status": "ok",
                            "final": True,
                            "prompt": f"a {style} {product}",
                            "model": "gpt-image-1-mini",
                            "quality": "low",
                            "size": "1024x1024",
                            "image_paths": paths,
                            "image_count": len(paths),
                            "latency_s": 1.5,
                            "wait_s": 0.0,
                            "finished_at": T0 + i,
                            "cost_usd": 0.005 * len(paths),
                            "cost_source": "usage",
                            "vars": json.dumps(vars_),
                        }
                    )
                    i += 1
    return write_run(run, table_from_rows(rows), jobs=i)


def _grid_cells(page: str) -> list[str]:
    section = page[page.index("<h2>Grid:") :]
    section = section[: section.index("</table>")]
    return re.findall(r'<td data-state="[a-z]+"><div class="cell">(.*?)</div></td>', section)


def test_every_grid_image_is_labelled_and_told_apart(tmp_path: Path) -> None:
    run = _spec_run(tmp_path)
    report = build_report(run, image_checks=False).with_grid(grid(run, "style", "product"))
    page = report.to_html()
    cells = _grid_cells(page)
    assert len(cells) == len(STYLES) * len(PRODUCTS)
    for cell in cells:
        figures = re.findall(r"<figure[^>]*>(.*?)</figure>", cell)
        captions = [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", cell)]
        assert len(figures) == len(captions) >= 4, cell  # 2 backgrounds x 2 repeats
        assert len(set(captions)) == len(captions), captions  # each tells its image apart
        assert all("background=" in c and "repeat " in c for c in captions), captions
        if "lamp" in cell or len(figures) == 8:
            assert any("image 2" in c for c in captions)
    assert "background=oak · repeat 2" in html.unescape(page)


def test_no_internal_keys_and_numbers_aligned(tmp_path: Path) -> None:
    page = build_report(_spec_run(tmp_path), image_checks=False).to_html()
    text = re.sub(r"<[^>]+>", " ", re.sub(r'data:[^"]+', "", page))
    for key in (
        "latency_s.p95",
        "cost_per_image_usd",
        "success_rate (success_rate)",
        "response_time",
        "wrong_size",
        "cheaper_setting_scores_as_well",
    ):
        assert key not in text, key
    assert "response time (latency p95)" in text and "success rate (decided jobs)" in text
    # a numeric column's header sits over its numbers; every table scrolls inside its box
    assert '<th class="n">images</th>' in page and '<td class="n">' in page
    assert page.count('<div class="wide"><table') == page.count("<table")
    assert "text-overflow:ellipsis" not in page  # captions wrap: the best marker stays
