"""Rate-limit headers that would stall a run, from the hostile server through real HTTP: a
Retry-After of a year, an HTTP date decades away or `inf`, x-ratelimit-limit-* of 0, -5 or
nan, resets of `1e9s`. Every pause is capped (--max-pause) and said in the log, nonsense limits
are ignored, the run finishes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.hostile import check_run, hostile_server, run

CASES = ("retry_after_a_year", "retry_after_2099", "retry_after_inf")


def test_absurd_rate_limit_headers_are_capped_ignored_and_logged(tmp_path: Path) -> None:
    with hostile_server() as server:
        done, run_dir = run(
            server,
            tmp_path,
            [{"prompt": c} for c in CASES] * 2,
            "--max-pause",
            "0.2",
            "--rpm",
            "600",
        )
    rows = check_run(done, run_dir, 0)
    limited = [r for r in rows if r["error_class"] == "rate_limit"]
    assert len(limited) == 3 and not any(r["final"] for r in limited)
    # the log says each pause was cut short, and by how much
    assert all("capped to 0s" in r["error_message"] for r in limited), limited
    assert sum(r["status"] == "ok" for r in rows) == 6
    learned = json.loads((run_dir / "run.json").read_text())["sessions"][-1]["summary"]["autopilot"]
    # limits of 0, -5 and nan announce nothing: the rate was not driven to a standstill
    assert learned["rpm_source"] != "headers" and learned["ipm"] is None
    assert learned["capped_pause_s"] > 1e6
