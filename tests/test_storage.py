"""batchgen.storage without an S3 server: the local store is today's behaviour and loads no
fsspec; a remote store (``file://``, ``memory://``) stores a set whole or not at all, journals
it, and a resume adopts only objects whose size and sha256 are what was stored; the URL never
carries a credential. The S3 server's tests: tests/test_storage_s3.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import batchgen
from batchgen import faultpoints
from batchgen.errors import ConfigError
from batchgen.images import ImageData
from batchgen.storage import LocalImages, StorageError, open_store
from tests.runhelpers import cli_env, log_table, run_cli, write_text_jobs

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40


def test_a_local_run_never_imports_fsspec(tmp_path: Path) -> None:
    code = (
        "import sys, batchgen\n"
        f"r = batchgen.run([{{'prompt': 'a'}}, {{'prompt': 'b'}}], run_dir={str(tmp_path / 'r')!r},"
        " provider='sim')\n"
        "assert r.succeeded == 2, r\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 's3fs', 'boto3',"
        " 'botocore', 'aiobotocore') or m == 'batchgen.storage.remote')\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len(list((tmp_path / "r" / "images").iterdir())) == 2


def test_the_local_store_is_the_run_dirs_images_folder(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    assert isinstance(store, LocalImages) and store.inline([ImageData(PNG, "png")])
    assert not store.inline([ImageData(PNG * 20_000, "png")])  # a large answer: a thread
    paths, nbytes = store.save("job1", [ImageData(PNG, "png"), ImageData(PNG, "png")], "~r2")
    assert paths == ["images/job1~r2_0.png", "images/job1~r2_1.png"] and nbytes == 2 * len(PNG)
    assert (tmp_path / "job1~r2_1.png").read_bytes() == PNG


def test_a_remote_store_writes_objects_and_journals_each_set(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    store = open_store("memory://bucket/a/", tmp_path / "images", tmp_path / "state", 3)
    assert not store.inline([ImageData(PNG, "png")])  # network: always in a worker thread
    paths, nbytes = store.save("j1", [ImageData(PNG, "png"), ImageData(PNG + b"x", "jpeg")])
    assert paths == ["memory://bucket/a/j1_0.png", "memory://bucket/a/j1_1.jpg"]
    assert nbytes == 2 * len(PNG) + 1
    line = json.loads((tmp_path / "state" / "uploads-00003.jsonl").read_text())
    assert line == {
        "job": "j1",
        "objects": [
            [paths[0], len(PNG), hashlib.sha256(PNG).hexdigest()],
            [paths[1], len(PNG) + 1, hashlib.sha256(PNG + b"x").hexdigest()],
        ],
    }
    from batchgen.storage.cache import fetch

    assert fetch(paths[1]) == PNG + b"x"


def test_a_set_is_stored_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("fsspec")
    out = tmp_path / "out"
    store = open_store(out.as_uri(), tmp_path / "images", tmp_path / "state", 1)
    monkeypatch.setattr(faultpoints, "_failing", faultpoints._parse_failures("image:write:2"))
    with pytest.raises(StorageError, match="could not store an image"):
        store.save("j1", [ImageData(PNG, "png"), ImageData(PNG, "png")])
    assert list(out.iterdir()) == []  # the first object of the set was taken back
    assert not (tmp_path / "state" / "uploads-00001.jsonl").exists()  # nothing to adopt


def _journaled(tmp_path: Path, jobs: dict[str, int]) -> Path:
    out = tmp_path / "out"
    store = open_store(out.as_uri(), tmp_path / "images", tmp_path / "state", 1)
    for job_id, n in jobs.items():
        store.save(job_id, [ImageData(PNG + job_id.encode(), "png") for _ in range(n)])
    return out


def test_only_objects_with_their_stored_size_and_hash_are_adopted(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    from batchgen.storage.adopt import find_stored

    out = _journaled(tmp_path, {"ok": 2, "short": 1, "changed": 1, "gone": 1, "few": 1})
    (out / "short_0.png").write_bytes(PNG[:10])
    changed = (out / "changed_0.png").read_bytes()
    (out / "changed_0.png").write_bytes(changed[:-1] + b"!")  # same size, other bytes
    (out / "gone_0.png").unlink()
    wanted = {"ok": 2, "short": 1, "changed": 1, "gone": 1, "few": 2, "other": 1}
    found = {s.job_id: s for s in find_stored(tmp_path / "state", wanted)}
    assert sorted(found) == ["changed", "few", "gone", "ok", "short"]
    assert [j for j, s in found.items() if s.adoptable] == ["ok"]
    assert found["ok"].image_bytes == 2 * len(PNG + b"ok")
    assert "were stored" in found["short"].reason
    assert "changed" in found["changed"].reason
    assert "not found" in found["gone"].reason
    assert "1 of 2" in found["few"].reason


def test_a_run_to_a_file_url_through_the_api(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    out = tmp_path / "bucket" / "p"
    result = batchgen.run(
        [{"prompt": "one"}, {"prompt": "two", "n": 2}],
        run_dir=tmp_path / "r",
        provider="sim",
        images_to=out.as_uri() + "/",
    )
    assert result.succeeded == 2 and result.images == 3
    rows = log_table(tmp_path / "r", ["image_paths"]).to_pylist()
    uris = sorted(p for r in rows for p in r["image_paths"])
    assert uris == sorted(f"{out.as_uri()}/{p.name}" for p in out.glob("*.png"))
    assert len(uris) == 3 and list((tmp_path / "r" / "images").iterdir()) == []
    assert not list(out.glob(".*"))  # no temp file left
    manifest = json.loads((tmp_path / "r" / "run.json").read_text())
    assert manifest["settings"]["images_to"] == out.as_uri()
    assert list((out / "log").glob("*.parquet")) and (out / "run.json").exists()


@pytest.mark.parametrize(
    "url", ["s3://AKIAXYZ:storage-secret-42@bucket/p/", "s3://bucket/p/?X-Amz-Signature=sig42"]
)
def test_an_images_url_with_a_credential_is_refused_and_never_echoed(
    tmp_path: Path, url: str
) -> None:
    jobs = write_text_jobs(tmp_path / "jobs.txt", ["a"])
    run_dir = tmp_path / "run"
    done = run_cli(
        [
            "run",
            str(jobs),
            "--run-dir",
            str(run_dir),
            "--provider",
            "sim",
            "--images-to",
            url,
            "--yes",
        ],
        env=cli_env(),
    )
    assert done.code == 2 and "--images-to must not carry" in done.output
    assert "storage-secret-42" not in done.output and "sig42" not in done.output
    assert not run_dir.exists()
    with pytest.raises(ConfigError, match="images_to must not carry") as err:
        batchgen.run(["a"], run_dir=tmp_path / "api", provider="sim", images_to=url)
    assert "storage-secret-42" not in str(err.value) and "sig42" not in str(err.value)
    with pytest.raises(ConfigError, match="images_to"):
        batchgen.run(["a"], run_dir=tmp_path / "api", provider="sim", images_to="bucket/p")


def test_storage_messages_mask_the_credentials_of_the_environment(monkeypatch) -> None:
    from batchgen.storage.remote import clean

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMASKME000111")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY")
    text = (
        "SignatureDoesNotMatch: Credential=AKIAMASKME000111/20261207/us-east-1/s3 "
        "secret wjalrxutnfemi/k7mdeng/bpxrficy"
    )
    masked = clean(text)
    assert "AKIAMASKME000111" not in masked and "wjalrxutnfemi" not in masked.lower()


def test_images_to_with_the_batch_api_is_refused_not_ignored(tmp_path: Path) -> None:
    # a batch's output files are collected into RUN_DIR/images: the URL would be ignored
    with pytest.raises(ConfigError, match="live path only"):
        batchgen.run(
            ["a"],
            run_dir=tmp_path / "r",
            provider="sim",
            via="batch",
            images_to="memory://bucket/p",
        )
    assert not (tmp_path / "r" / "run.json").exists()
