"""--notify (apprise, a plain json:// webhook to a receiver the test starts) and --on-end: one
message per session end with the outcome, counts and cost, never the key."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchgen.cli.main import main
from tests.runhelpers import MODEL_FLAGS, sim_flags, wait_until, write_text_jobs

pytest.importorskip("apprise")

KEY = "sk-notify-SECRET-0123456789"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook: every POST's JSON body, in order."""
    got: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            got.append({"path": self.path, "body": json.loads(self.rfile.read(size) or b"{}")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, sim: Any, *extra: str, prompts: int = 4) -> int:
    jobs = write_text_jobs(tmp_path / "jobs.txt", (f"a kite {i}" for i in range(prompts)))
    return main(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(tmp_path / "run"),
            *MODEL_FLAGS,
            *sim_flags(sim),
            "--yes",
            "--quiet",
            *extra,
        ]
    )


def test_one_message_when_the_run_finishes(make_sim, tmp_path, receiver, monkeypatch):
    url, got = receiver
    sim = make_sim(api_key=KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert _run(tmp_path, sim, "--notify", url) == 0
    assert len(got) == 1
    body = got[0]["body"]
    assert got[0]["path"] == "/hook" and body["type"] == "success"
    assert "finished" in body["title"]
    assert "4 succeeded, 0 failed, 0 pending" in body["message"] and "$" in body["message"]
    assert KEY not in json.dumps(got)
    # the URL (it may hold a token) is not in run.json
    assert url not in (tmp_path / "run" / "run.json").read_text()


def test_a_stopped_run_says_why_and_never_the_key(make_sim, tmp_path, receiver, monkeypatch):
    url, got = receiver
    sim = make_sim(api_key="sk-the-right-one")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # refused: the run stops on auth
    assert _run(tmp_path, sim, "--notify", url, "--notify", url) == 3
    assert len(got) == 2  # one message per URL, per session end
    body = got[0]["body"]
    assert body["type"] == "failure" and "stopped (auth)" in body["title"]
    assert "4 pending" in body["message"] and "batchgen resume" in body["message"]
    assert KEY not in json.dumps(got)


def test_on_end_gets_the_outcome_in_its_environment(make_sim, tmp_path, monkeypatch):
    sim = make_sim(api_key=KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "env.txt"
    cmd = f'env | grep -e ^BATCHGEN_ -e ^OPENAI_API_KEY= | sort > "{out}"'
    assert _run(tmp_path, sim, "--on-end", cmd, prompts=3) == 0
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["BATCHGEN_OUTCOME"] == "finished" and env["BATCHGEN_EXIT_CODE"] == "0"
    assert env["BATCHGEN_SUCCEEDED"] == "3" and env["BATCHGEN_PENDING"] == "0"
    assert float(env["BATCHGEN_COST_USD"]) > 0
    assert "OPENAI_API_KEY" not in env and KEY not in out.read_text()


def test_a_url_apprise_cannot_use_is_refused_before_sending(make_sim, tmp_path, capsys):
    sim = make_sim()
    assert _run(tmp_path, sim, "--notify", "nosuchscheme://x/y?token=abc") == 2
    err = capsys.readouterr().err
    assert "--notify" in err and "token=abc" not in err
    assert sim.stats.snapshot(timeline=False)["received"] == 0


def test_a_budget_alert_before_the_cap_then_the_end(make_sim, tmp_path, receiver, monkeypatch):
    url, got = receiver
    sim = make_sim(api_key=KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    # ~$0.011 an image: 80% of $0.06 is passed at the 5th image, the cap stops the run
    code = _run(
        tmp_path, sim, "--notify", url, "--max-cost", "0.06", "--concurrency", "1", prompts=10
    )
    assert code == 3
    wait_until(lambda: len(got) >= 2, what="the alert and the end message", timeout=10)
    bodies = [g["body"] for g in got]
    assert len(bodies) == 2
    alert = next(b for b in bodies if "budget spent" in b["title"])
    end = next(b for b in bodies if b is not alert)
    assert alert["type"] == "warning" and "of the $0.06 budget" in alert["title"]
    assert "stopped (budget)" in end["title"] and "pending" in end["message"]
    assert KEY not in json.dumps(got)


def test_a_budget_stop_is_recorded_and_sent_as_the_ending_says_it(
    make_sim, tmp_path, receiver, monkeypatch, capsys
):
    """run.json's session, the --notify body and --on-end's BATCHGEN_MESSAGE carry the text the
    run's last line printed: every job not sent counted, the run's own path in the resume
    command and a cap that covers the rest (not the pool's 'RUN_DIR' and doubled cap)."""
    url, got = receiver
    sim = make_sim(api_key=KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "message.txt"
    on_end = f'printf \'%s\' "$BATCHGEN_MESSAGE" > "{out}"'
    flags = ("--notify", url, "--on-end", on_end, "--max-cost", "0.03", "--concurrency", "1")
    assert _run(tmp_path, sim, *flags, prompts=10) == 3
    ending = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("ended:")
    )
    said = ending.removeprefix("ended:").strip()
    doc = json.loads((tmp_path / "run" / "run.json").read_text())
    summary = doc["sessions"][-1]["summary"]
    assert summary["stop_message"] == said and summary["stopped_by"] == "--max-cost"
    assert "RUN_DIR" not in said and f"batchgen resume {tmp_path / 'run'} --max-cost" in said
    not_sent = 10 - summary["jobs_ok"]
    assert not_sent > 1 and f"{not_sent} jobs were not sent" in said

    def ended() -> bool:
        return out.exists() and any("stopped" in g["body"]["title"] for g in got)

    wait_until(ended, what="the end message", timeout=10)
    end = next(b for b in (g["body"] for g in got) if "stopped (budget)" in b["title"])
    assert said in end["message"].splitlines()
    assert said in out.read_text().splitlines()
    assert KEY not in json.dumps(got) + out.read_text() + json.dumps(doc)
