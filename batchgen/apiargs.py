"""The Python API's keyword arguments, checked as their CLI flags are (batchgen.api): a wrong
kind of value or an unknown choice is a ``ConfigError`` before anything is sent, and jobs given
as objects are checked and written as a job file."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from batchgen.config import RunConfig
from batchgen.errors import ConfigError, RunDirError, UsageError
from batchgen.jobs.model import Job
from batchgen.simoptions import option_named
from batchgen.storage.url import check_url

# the keyword arguments run() and resume() take, by their CLI flag's name
KEYWORDS = frozenset(
    {
        "rpm",
        "ipm",
        "concurrency",
        "timeout",
        "max_attempts",
        "grace",
        "adaptive",
        "stall_timeout",
        "max_pause",
        "image_checks",
        "model",
        "size",
        "quality",
        "n",
        "provider",
        "base_url",
        "api_key_env",
        "api_key",
        "providers",
        "prices",
        "max_cost",
        "price_per_image",
        "via",
        "retry_failed",
        "max_jobs",
        "ledger",
        "project",
        "monthly_budget",
        "project_budget",
        "on_budget",
        "images_to",
    }
)


_CHOICES = {"via": ("live", "batch"), "provider": ("openai", "sim")}
_BOOLS = frozenset({"adaptive", "image_checks", "retry_failed"})
_STRINGS = frozenset({"model", "size", "quality", "base_url", "api_key_env", "api_key"})
_PATHS = frozenset({"providers", "prices"})
_WHOLE = frozenset({"n", "max_jobs"})  # the pool's and money's numbers: RunConfig checks them


def checked(name: str, value: Any) -> Any:
    """One keyword argument as its flag takes it (None: not given)."""
    if value is None:
        return None
    if name in _CHOICES and value not in _CHOICES[name]:
        choices = " or ".join(repr(c) for c in _CHOICES[name])
        raise ConfigError(f"{name} must be {choices}, got {value!r}")
    if name in _BOOLS and not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    if name in _STRINGS and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{name} must be a non-empty string, got {shown(name, value)}")
    if name in _PATHS:
        if not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{name} must be a file's path, got {type(value).__name__}")
        return os.fspath(value)
    if name == "images_to":
        return _images_url(value)
    if name in _WHOLE and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def _images_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"images_to must be a URL string, got {type(value).__name__}")
    try:
        return check_url(value)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("--images-to", "images_to")) from None


def shown(name: str, value: Any) -> str:
    return "a value that is not one" if name == "api_key" else repr(value)


def no_running_loop(what: str) -> None:
    """``run()`` inside a running event loop (a notebook cell, an async function) cannot start
    its own: say so before anything starts."""

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"batchgen.{what}() was called inside a running event loop (a notebook, an async "
        f"function): use `await batchgen.{what}_async(...)` there"
    )


def run_dir_arg(run_dir: Any) -> Path | None:
    if run_dir is None:
        return None
    if not isinstance(run_dir, str | os.PathLike):
        raise ConfigError(f"run_dir must be a folder's path, got {type(run_dir).__name__}")
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run_dir {path} is a file, not a folder: pick another run_dir")
    return path


def ray_address(ray: Any) -> str | None:
    """``ray=``: None/False (not on a cluster), True ("": a cluster of this machine, or
    $RAY_ADDRESS) or a running cluster's address, as ``--ray [ADDRESS]`` takes it."""
    if ray is None or ray is False:
        return None
    if ray is True:
        return ""
    if not isinstance(ray, str) or not ray.strip():
        raise ConfigError(f"ray must be True or a cluster's address (HOST:PORT), got {ray!r}")
    return ray.strip()


def cluster_executor(address: str, cfg: RunConfig | None = None, *, rest: bool = False) -> Any:
    """What runs a session's plan over a Ray cluster (``--ray``/``ray=``, the run's and the
    resume's): ``address`` as ray_address gives it ("" for a cluster of this machine);
    ``cfg``: refused now if a cluster cannot run it; ``rest``: a resume's jobs only."""
    # lazy: the cluster's package (and Ray, an optional extra) loads only with --ray / ray=
    from batchgen.cluster import ClusterRun, refuse

    if cfg is not None:
        refuse(cfg)
    return ClusterRun(address or None, rest=rest)


def check_callback(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a function (or None), got {type(value).__name__}")


def config_of(flags: Mapping[str, Any], sim: Mapping[str, Any] | None) -> RunConfig:
    return RunConfig.build(flags_of_keywords(flags, sim))


def flags_of_keywords(flags: Mapping[str, Any], sim: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments as the flags they stand for (``sim`` as ``sim_*`` options),
    each checked as its flag is: a wrong kind of value or an unknown choice is a ConfigError
    before anything is sent (``via="btach"`` must not run live at full price)."""

    unknown = sorted(set(flags) - KEYWORDS)
    if unknown:
        known = ", ".join(sorted(KEYWORDS))
        msg = f"unknown keyword argument(s) {', '.join(unknown)}; known: {known}"
        raise ConfigError(msg)
    given = dict(flags)
    for name, value in flags.items():
        given[name] = checked(name, value)
    if given.get("api_key") is not None and given.get("providers"):
        raise ConfigError("api_key goes with one endpoint: a providers file names its variables")
    if sim is not None and not isinstance(sim, Mapping):
        raise ConfigError(f"sim must be a dict of simulator options, got {type(sim).__name__}")
    for name, value in (sim or {}).items():  # checked once, by RunConfig.build (SimConfig)
        given["sim_" + option_named(name).name] = value
    if sim and given.get("provider") is None:
        given["provider"] = "sim"
    return given


def job_records(jobs: Any) -> list[dict[str, Any]]:
    """Jobs given as objects, checked: an iterable of dicts or ``Job`` objects."""
    if isinstance(jobs, Mapping):
        raise ConfigError(
            "jobs is one dict: pass a list of job dicts ([{...}]), or a job file's path"
        )
    if isinstance(jobs, bytes | bytearray) or not isinstance(jobs, Iterable):
        raise ConfigError(
            f"jobs must be a job file's path or a list of job dicts, not {type(jobs).__name__}"
        )
    try:
        return [job_record(job, i) for i, job in enumerate(jobs)]
    except ConfigError:
        raise
    except Exception as exc:  # a generator of the caller's that fails: its error, said so
        raise ConfigError(f"jobs could not be read: {type(exc).__name__}: {exc}") from exc


def write_jobs_file(records: list[dict[str, Any]], path: Path) -> None:
    # allow_nan=False: json writes float("nan") as NaN, which no JSON reader takes (the job
    # file's own check would then blame a line of this file, not the caller's jobs[i])
    try:
        with path.open("w", encoding="utf-8") as out:
            for index, record in enumerate(records):
                try:
                    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(_not_json(record, index, exc)) from exc
                out.write(line + "\n")
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _not_json(record: dict[str, Any], index: int, exc: Exception) -> str:
    """Which field of ``jobs[index]`` JSON cannot carry, and what to pass instead."""
    where = f"jobs[{index}]"
    for key, value in record.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            where = f"jobs[{index}][{key!r}]"
            break
    return (
        f"{where} cannot be written as JSON ({exc}): use plain values — str, int, a finite "
        "float, list, dict (a numpy or pandas number: .item(); NaN: leave the field out)"
    )


def job_record(job: Any, index: int) -> dict[str, Any]:
    if isinstance(job, Mapping):
        return dict(job)
    if not isinstance(job, Job):
        raise ConfigError(
            f'jobs[{index}] is a {type(job).__name__}, not a job dict ({{"prompt": ...}}) or Job'
        )
    if job.inputs:
        raise ConfigError(f"job {job.id}: an edit's input images go in a job file, not a Job")
    return {"id": job.id, **job.body}
