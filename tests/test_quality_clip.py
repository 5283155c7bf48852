"""The local CLIP scorer end to end, with a tiny CLIP model built here (random weights, a
byte-level vocabulary, 32-pixel images): saved with save_pretrained and loaded by path through
`batchgen score --scorer clip --clip-model DIR`, exactly as a real model folder would be. No
download. Runs only where the optional extra is installed (pip install 'batchgen[clip]');
without it, the CLI must say how to install it."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest

from batchgen.quality.store import read_scores
from tests.runhelpers import cli_env, run_cli, sim_flags, write_text_jobs

pytestmark = pytest.mark.timeout(240)

HAVE_CLIP = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's byte → printable character table."""
    bs = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_tiny_clip(out: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:  # transformers >= 5 without torchvision: the PIL image processor
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    out.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(f"{c}</w>", len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    try:
        tokenizer = CLIPTokenizer(vocab=vocab, merges=[])  # transformers 5
    except TypeError:
        tokenizer = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "eos_token_id": eos,
            "bos_token_id": bos,
            "pad_token_id": eos,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config)
    processor = CLIPProcessor(
        image_processor=ImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _run(tmp_path: Path, sim, jobs: int = 12) -> Path:
    run_dir = tmp_path / "run"
    path = write_text_jobs(tmp_path / "jobs.txt", (f"a teapot number {i}" for i in range(jobs)))
    done = run_cli(
        [
            "run",
            str(path),
            "--run-dir",
            str(run_dir),
            "--model",
            "gpt-image-1",
            "--size",
            "1024x1024",
            "--quality",
            "low",
            *sim_flags(sim),
            "--yes",
            "--quiet",
        ],
        env=cli_env(),
    )
    assert done.code == 0, done.output
    return run_dir


@pytest.mark.skipif(HAVE_CLIP, reason="the clip extra is installed: the real path is tested")
def test_clip_scorer_without_the_extra_says_how_to_install(tmp_path: Path, make_sim) -> None:
    sim = make_sim(variants=10**9)
    run_dir = _run(tmp_path, sim, jobs=2)
    done = run_cli(["score", str(run_dir), "--scorer", "clip"], env=cli_env())
    assert done.code == 2, done.output
    assert "pip install 'batchgen[clip]'" in done.output


@pytest.mark.skipif(
    not HAVE_CLIP, reason="optional extra not installed: pip install 'batchgen[clip]'"
)
def test_clip_scorer_end_to_end_with_a_tiny_model(tmp_path: Path, make_sim) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_dir = build_tiny_clip(tmp_path / "tiny-clip")
    sim = make_sim(variants=10**9)
    run_dir = _run(tmp_path, sim)
    env = cli_env() | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    args = ["score", str(run_dir), "--scorer", "clip", "--clip-model", str(model_dir)]
    done = run_cli(args, env=env, timeout=180)
    assert done.code == 0, done.output
    rows = read_scores(run_dir).to_pylist()
    assert len(rows) == 12
    assert {r["scorer"] for r in rows} == {"clip:tiny-clip"}
    assert all(1.0 <= r["score"] <= 10.0 and r["cost_usd"] == 0.0 for r in rows)
    assert all(r["reasons"].startswith("CLIP cosine similarity") for r in rows)
    first = {r["image_path"]: r["score"] for r in rows}

    # scored again with --rescore: the same model gives the same scores
    again = run_cli([*args, "--rescore"], env=env, timeout=180)
    assert again.code == 0, again.output
    assert {r["image_path"]: r["score"] for r in read_scores(run_dir).to_pylist()} == first
    assert sim.stats.snapshot(timeline=False)["chat"]["received"] == 0  # nothing was sent

    # regeneration with the scorer of the last `score` (CLIP): a threshold above every score
    # makes every job weak; one round regenerates all of them and scores the new images
    done = run_cli(
        [
            "resume",
            str(run_dir),
            "--regenerate-below",
            "10.5",
            "--max-rounds",
            "1",
            *sim_flags(sim),
            "--yes",
            "--quiet",
        ],
        env=env,
        timeout=180,
    )
    assert done.code == 1, done.output  # still below after the last round
    assert "round 1/1: regenerating 12 jobs" in done.output
    rows = read_scores(run_dir).to_pylist()
    assert len(rows) == 24 and sum(r["round"] == 2 for r in rows) == 12

    out = tmp_path / "r.json"
    assert run_cli(["report", str(run_dir), "--format", "json", "-o", str(out)], env=env).code == 0
    q = json.loads(out.read_text())["quality"]
    assert q["kind"] == "clip" and q["images_scored"] == 24 and q["scoring_cost_usd"] == 0
