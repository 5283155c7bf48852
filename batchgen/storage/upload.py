"""At the end of a session with ``--images-to URL``: the run's Parquet log, its image checks
and run.json are copied beside the images (``URL/log/``, ``URL/checks/``, ``URL/run.json``),
so the bucket holds a dataset that DuckDB or pyarrow read without the machine that made it.

The run directory itself stays on a local or shared POSIX path: the one-writer lock, the
journals and the log's temp-then-rename parts need an atomic rename and a lock, which object
stores do not have. What is copied is finished files only (temp names start with '.')."""

from __future__ import annotations

from pathlib import Path

from batchgen.storage.base import StorageError
from batchgen.storage.remote import clean, open_fs, protocols
from batchgen.storage.url import check_url

FOLDERS = ("log", "checks")


def upload_run_files(run_dir: Path, url: str) -> int:
    """Copy log/, checks/ and run.json to the URL; returns how many files. Files already there
    with the same size are skipped (part files never change once written)."""
    url = check_url(url)
    fs, root = open_fs(url)
    copied = 0
    try:
        for folder in FOLDERS:
            local = Path(run_dir) / folder
            if not local.is_dir():
                continue
            if "file" in protocols(fs):
                fs.makedirs(f"{root}/{folder}", exist_ok=True)
            there = _sizes(fs, f"{root}/{folder}")
            for path in sorted(local.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                if there.get(path.name) == path.stat().st_size:
                    continue
                fs.pipe_file(f"{root}/{folder}/{path.name}", path.read_bytes())
                copied += 1
        manifest = Path(run_dir) / "run.json"
        if manifest.is_file():
            fs.pipe_file(f"{root}/run.json", manifest.read_bytes())
            copied += 1
    except Exception as exc:
        msg = f"could not copy the run's log to {url}: {type(exc).__name__}: {clean(exc)}"
        raise StorageError(msg) from None
    return copied


def _sizes(fs: object, folder: str) -> dict[str, int]:
    try:
        listing = fs.ls(folder, detail=True)  # type: ignore[attr-defined]
    except FileNotFoundError:
        return {}
    return {str(e["name"]).rsplit("/", 1)[-1]: int(e.get("size") or 0) for e in listing}
