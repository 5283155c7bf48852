"""Job files: formats, defaults, stable ids, FILE:LINE problems, streaming in bounded memory."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from batchgen.jobs import (
    JobFileError,
    Problem,
    Validation,
    iter_jobs,
    job_index,
    sha256_file,
    validate_file,
)

DATA = Path(__file__).parent / "data" / "jobs"
EXAMPLES = Path(__file__).parent.parent / "jobs"


def derived(fields: dict) -> str:
    """The documented derived id, computed independently of the module."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "j-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# ---------------------------------------------------------------------------- formats


def test_jsonl_plain_and_batch_lines() -> None:
    jobs = list(iter_jobs(DATA / "mixed.jsonl"))
    apple = {"prompt": "a red apple on a white plate"}
    assert [(j.id, j.line) for j in jobs] == [
        (derived(apple), 1),
        ("ship-1", 2),
        (derived(apple) + "-2", 4),
        (derived({**apple, "style": "natural"}), 5),
        ("batch-7", 6),
        (derived(apple) + "-3", 7),
        ("42", 8),
    ]
    assert jobs[1].body == {
        "prompt": "a clipper ship at sea",
        "model": "gpt-image-1",
        "size": "1536x1024",
        "quality": "high",
        "n": 2,
    }
    # null means absent; the batch body is the request; the id never enters the body
    assert jobs[3].body == {**apple, "style": "natural"}
    assert jobs[4].body == {
        "prompt": "a lighthouse",
        "model": "dall-e-3",
        "n": 1,
        "response_format": "b64_json",
    }
    assert "id" not in jobs[6].body and jobs[6].body["output_compression"] == 70


def test_csv_quoted_multiline_rows_keep_their_start_line() -> None:
    jobs = list(iter_jobs(DATA / "quoted.csv"))
    assert [(j.id, j.line) for j in jobs] == [
        ("row-1", 2),
        (derived({"prompt": 'a poem\r\nacross two lines, with "quotes"'}), 4),
        (derived({"prompt": "a plain prompt", "size": "1536x1024", "n": 3}), 6),
    ]
    assert jobs[0].body == {
        "prompt": "a cabin in the woods, winter",
        "size": "1024x1024",
        "n": 2,
        "quality": "low",
    }
    assert jobs[2].body["n"] == 3 and isinstance(jobs[2].body["n"], int)


def test_csv_semicolon_header_is_understood(tmp_path: Path) -> None:
    path = write(tmp_path, "eu.csv", 'prompt;size;n\n"a bridge; at night";1024x1024;2\n')
    (job,) = iter_jobs(path)
    assert job.body == {"prompt": "a bridge; at night", "size": "1024x1024", "n": 2}


def test_text_skips_blanks_and_comments_and_counts_duplicates() -> None:
    jobs = list(iter_jobs(DATA / "prompts.txt"))
    vase = derived({"prompt": "a blue ceramic vase on linen"})
    assert [(j.id, j.line, j.prompt) for j in jobs] == [
        (vase, 3, "a blue ceramic vase on linen"),
        (vase + "-2", 5, "a blue ceramic vase on linen"),
        (derived({"prompt": "a brass compass on an old map"}), 7, "a brass compass on an old map"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("jobs.data", '{"prompt": "x"}\n', "jsonl"),
        ("jobs", "\n\nid,prompt\n1,x\n", "csv"),
        ("jobs.txt", '{"prompt": "x"}\n', "jsonl"),
        ("jobs.txt", "{curly} braces in a prompt\n", "text"),
        ("jobs.ndjson", '{"prompt": "x"}\n', "jsonl"),
    ],
)
def test_format_detection(tmp_path: Path, name: str, content: str, fmt: str) -> None:
    result = validate_file(write(tmp_path, name, content))
    assert (result.format, result.jobs, result.problems) == (fmt, 1, [])


def test_forced_format_overrides_the_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "list.csv", "just one prompt, with a comma\n")
    assert [j.prompt for j in iter_jobs(path, fmt="text")] == ["just one prompt, with a comma"]


# ---------------------------------------------------------------------------- defaults and ids


def test_defaults_fill_gaps_and_the_job_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"prompt": "a"}\n{"prompt": "b", "model": "dall-e-3"}\n')
    defaults = {"model": "gpt-image-1", "size": "1024x1024", "quality": None, "n": 2}
    a, b = iter_jobs(path, defaults)
    assert a.body == {"prompt": "a", "model": "gpt-image-1", "size": "1024x1024", "n": 2}
    assert b.body["model"] == "dall-e-3" and b.body["n"] == 2
    (bare, _) = iter_jobs(path)
    assert bare.body == {"prompt": "a"}  # no defaults given: nothing invented
    # the id is the job's own; the fingerprint covers what is actually sent
    assert a.id == bare.id == derived({"prompt": "a"})
    assert a.fingerprint != bare.fingerprint
    canonical = json.dumps(a.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert a.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()


def test_bad_default_is_refused() -> None:
    with pytest.raises(ValueError, match='"n" must be a whole number from 1 to 10'):
        validate_file(DATA / "prompts.txt", {"n": "3"})


def test_ids_are_stable_and_job_index_agrees(tmp_path: Path) -> None:
    first = [(j.id, j.fingerprint, j.line) for j in iter_jobs(DATA / "mixed.jsonl")]
    copy = write(tmp_path, "copy.jsonl", (DATA / "mixed.jsonl").read_bytes())
    assert [(j.id, j.fingerprint, j.line) for j in iter_jobs(copy)] == first
    assert list(job_index(DATA / "mixed.jsonl")) == first
    assert len({job_id for job_id, _, _ in first}) == len(first)


def test_validation_counts_and_checksum() -> None:
    result = validate_file(DATA / "mixed.jsonl")
    raw = (DATA / "mixed.jsonl").read_bytes()
    assert isinstance(result, Validation)
    assert (result.ok, result.format, result.jobs, result.images) == (True, "jsonl", 7, 8)
    assert result.sha256 == hashlib.sha256(raw).hexdigest() == sha256_file(DATA / "mixed.jsonl")


def test_checksum_covers_the_whole_file_when_reading_stops_early(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "text,size\n" + "a,b\n" * 1000)
    result = validate_file(path)
    assert not result.ok and result.sha256 == sha256_file(path)


def test_provider_extras_that_are_no_near_miss_still_pass(tmp_path: Path) -> None:
    # fal's image_size and num_images, FLUX's seed and steps: sent as is, only a warning
    extras = '"image_size": "square_hd", "num_images": 2, "seed": 7, "negative_prompt": "x"'
    path = write(tmp_path, "x.jsonl", '{"prompt": "a", ' + extras + "}\n")
    result = validate_file(path)
    assert result.ok, result.problems
    names = sorted(str(w).split('"')[1] for w in result.warnings)
    assert names == ["image_size", "negative_prompt", "num_images", "seed"]


def test_n_too_large_still_says_split(tmp_path: Path) -> None:
    path = write(tmp_path, "x.jsonl", '{"prompt": "a", "n": 11}\n{"prompt": "b", "n": -3}\n')
    messages = [p.message for p in validate_file(path).problems]
    assert "split the job into several jobs" in messages[0]
    assert "split" not in messages[1] and "at least 1" in messages[1]


def test_missing_prompt_near_miss_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "x.jsonl", '{"promt": "a"}\n')
    assert len(validate_file(path).problems) == 1


def test_unknown_api_field_is_a_warning_not_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "w.csv", "prompt,notes\na,\nb,check later\nc,again\n")
    result = validate_file(path)
    assert result.ok and result.jobs == 3
    # one warning for the field, at its first line (line 2's cell is empty), with its count
    assert [str(w).split(" is not")[0] for w in result.warnings] == [
        f'{path}:3: "notes" (on 2 lines, from this one)'
    ]


# ---------------------------------------------------------------------------- problems

BAD = [
    (
        "json-syntax",
        "x.jsonl",
        '{"prompt": "a"}\n{"prompt": "b",}\n',
        2,
        "malformed JSON at column",
    ),
    ("python-dict", "x.jsonl", "{'prompt': 'a'}\n", 1, "use double quotes"),
    ("multi-line-object", "x.jsonl", '{\n  "prompt": "a"\n}\n', 1, "single line"),
    ("nan", "x.jsonl", '{"prompt": "a", "n": NaN}\n', 1, "NaN is not valid JSON"),
    ("array", "x.json", '[{"prompt": "a"}]\n', 1, "a JSON array is not a job file"),
    ("not-object", "x.jsonl", '{"prompt": "a"}\n"just a string"\n', 2, "must be a JSON object"),
    ("missing-prompt", "x.jsonl", '{"promt": "a"}\n', 1, 'did you mean "prompt"'),
    ("empty-prompt", "x.jsonl", '{"prompt": "   "}\n', 1, '"prompt" is empty'),
    (
        "prompt-type",
        "x.jsonl",
        '{"prompt": ["a"]}\n',
        1,
        '"prompt" must be a string, got ["a"] (a list)',
    ),
    (
        "n-string",
        "x.jsonl",
        '{"prompt": "a", "n": "2"}\n',
        1,
        '"n" must be a whole number from 1 to 10, got "2" (a string): write 2 without quotes',
    ),
    ("n-bool", "x.jsonl", '{"prompt": "a", "n": true}\n', 1, "got true (a boolean)"),
    ("n-float", "x.jsonl", '{"prompt": "a", "n": 2.0}\n', 1, "got 2.0 (a number): write 2"),
    ("n-range", "x.jsonl", '{"prompt": "a", "n": 11}\n', 1, "from 1 to 10, got 11"),
    ("n-zero", "x.jsonl", '{"prompt": "a", "n": 0}\n', 1, "at least 1, got 0"),
    # a negative n is not "too many images": splitting the job is no fix
    ("n-negative", "x.jsonl", '{"prompt": "a", "n": -1}\n', 1, '"n" must be at least 1, got -1'),
    # a near miss of a field is a typo, not a provider's extra parameter: sent as is, the job
    # would run as the default model with an extra "modle" and fail (400)
    (
        "field-near-miss",
        "x.jsonl",
        '{"prompt": "e", "modle": "gpt-image-1"}\n',
        1,
        'unknown field "modle": did you mean "model"?',
    ),
    ("field-near-miss-csv", "x.csv", "prompt,qualty\na,high\n", 2, 'did you mean "quality"?'),
    (
        "size-type",
        "x.jsonl",
        '{"prompt": "a", "size": 1024}\n',
        1,
        '"size" must be a non-empty string',
    ),
    (
        "model-type",
        "x.jsonl",
        '{"prompt": "a", "model": 3}\n',
        1,
        '"model" must be a non-empty string',
    ),
    ("quality-empty", "x.jsonl", '{"prompt": "a", "quality": ""}\n', 1, '"quality" must be'),
    ("stream", "x.jsonl", '{"prompt": "a", "stream": true}\n', 1, 'remove "stream"'),
    ("unsafe-id", "x.jsonl", '{"id": "a/b c", "prompt": "a"}\n', 1, 'it contains " ", "/"'),
    ("dot-id", "x.jsonl", '{"id": ".hidden", "prompt": "a"}\n', 1, 'starts with "."'),
    ("long-id", "x.jsonl", '{"id": "' + "x" * 129 + '", "prompt": "a"}\n', 1, "129 characters"),
    ("empty-id", "x.jsonl", '{"id": "", "prompt": "a"}\n', 1, "(it is empty)"),
    ("bool-id", "x.jsonl", '{"id": true, "prompt": "a"}\n', 1, '"id" must be a string'),
    (
        "batch-url",
        "x.jsonl",
        '{"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n',
        1,
        '"url" must be "/v1/images/generations"',
    ),
    (
        "batch-method",
        "x.jsonl",
        '{"custom_id": "c1", "url": "/v1/images/generations", "body": {"prompt": "a"}}\n',
        1,
        '"method" must be "POST"',
    ),
    ("csv-no-prompt", "x.csv", "id,Promt,size\n1,a,b\n", 1, 'no "prompt" column'),
    ("csv-dup-column", "x.csv", "prompt,size,size\na,b,c\n", 1, 'column "size" twice'),
    ("csv-empty-prompt", "x.csv", "prompt,size\n,1024x1024\n", 2, "the prompt cell is empty"),
    ("csv-too-many", "x.csv", "prompt,size\na,b,c\n", 2, "3 cells but the header has 2"),
    ("csv-n-word", "x.csv", "prompt,n\na,two\n", 2, '"n" must be a whole number from 1 to 10'),
    ("csv-open-quote", "x.csv", 'prompt\nok\n"never closed\nmore\n', 3, "never ends"),
    ("csv-bad-quote", "x.csv", 'prompt,size\n"a"b,c\n', 2, "bad quoting"),
    ("not-utf8", "x.txt", b"fine\ncaf\xe9 au lait\n", 2, "not UTF-8 text: byte 0xe9 at column 4"),
    ("utf16", "x.txt", "a prompt\n".encode("utf-16"), 1, "UTF-16"),
    ("empty", "x.jsonl", "", 1, "no jobs"),
    ("only-comments", "x.txt", "# nothing yet\n\n", 1, "no jobs"),
    ("csv-header-only", "x.csv", "prompt,size\n", 1, "no rows under the header"),
    ("unknown-format", "x.dat", "\nhello there\n", 1, "cannot tell the format"),
]


@pytest.mark.parametrize(
    ("name", "content", "line", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_names_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, line: int, fragment: str
) -> None:
    path = write(tmp_path, name, content)
    result = validate_file(path)
    assert not result.ok
    messages = [str(p) for p in result.problems]
    assert any(m.startswith(f"{path}:{line}: ") and fragment in m for m in messages), messages


def test_missing_file_is_a_problem_and_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    result = validate_file(missing)
    assert [str(p) for p in result.problems] == [
        f"{missing}: the job file does not exist: check the path"
    ]
    with pytest.raises(JobFileError, match="does not exist"):
        next(iter_jobs(missing))
    with pytest.raises(JobFileError, match="does not exist"):
        next(iter_jobs(missing, fmt="text"))
    assert (
        validate_file(tmp_path, fmt="text").problems[0].message.startswith("the job file is a dir")
    )


def test_bom_is_fine_and_an_empty_csv_id_cell_means_no_id(tmp_path: Path) -> None:
    path = write(tmp_path, "b.jsonl", b'\xef\xbb\xbf{"prompt": "a"}\n')
    assert [j.body for j in iter_jobs(path)] == [{"prompt": "a"}]
    path = write(tmp_path, "b.csv", b'\xef\xbb\xbfid,prompt\n"",a\n')
    assert [j.id for j in iter_jobs(path)] == [derived({"prompt": "a"})]


def test_problem_renders_file_line_message() -> None:
    assert str(Problem("jobs/x.jsonl", 7, "bad")) == "jobs/x.jsonl:7: bad"
    assert str(Problem("jobs/x.jsonl", 0, "gone")) == "jobs/x.jsonl: gone"


def test_duplicate_explicit_ids_name_both_lines(tmp_path: Path) -> None:
    lines = ['{"id": "a", "prompt": "x"}', '{"prompt": "y"}', '{"id": "a", "prompt": "z"}']
    path = write(tmp_path, "dup.jsonl", "\n".join(lines) + "\n")
    (problem,) = validate_file(path).problems
    assert str(problem).startswith(f'{path}:3: duplicate id "a", first used on line 1')


def test_ids_differing_only_in_case_clash(tmp_path: Path) -> None:
    path = write(tmp_path, "case.csv", "id,prompt\nHero,x\nhero,y\n")
    (problem,) = validate_file(path).problems
    assert problem.line == 3 and '"Hero" on line 2' in problem.message


def test_explicit_id_colliding_with_a_derived_id_either_way(tmp_path: Path) -> None:
    base = derived({"prompt": "p"})
    later = write(
        tmp_path,
        "l.jsonl",
        f'{{"prompt": "p"}}\n{{"prompt": "p"}}\n{{"id": "{base}-2", "prompt": "q"}}\n',
    )
    (problem,) = validate_file(later).problems
    assert problem.line == 3 and "derived for the job without an id on line 2" in problem.message
    earlier = write(tmp_path, "e.jsonl", f'{{"id": "{base}", "prompt": "q"}}\n{{"prompt": "p"}}\n')
    (problem,) = validate_file(earlier).problems
    assert problem.line == 2 and "explicit id of line 1" in problem.message
    # a suffix no derived id has reached yet is free
    free = write(tmp_path, "f.jsonl", f'{{"prompt": "p"}}\n{{"id": "{base}-2", "prompt": "q"}}\n')
    assert validate_file(free).ok


def test_many_problems_are_truncated_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "many.jsonl", '{"prompt": "ok"}\n' + '{"n": 1}\n' * 30)
    result = validate_file(path, max_errors=5)
    assert (len(result.problems), result.problem_count, result.truncated) == (5, 30, True)
    assert [p.line for p in result.problems] == [2, 3, 4, 5, 6]
    assert result.jobs == 1


def test_iteration_raises_when_the_file_changed_after_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n')
    assert validate_file(path).ok
    path.write_text('{"prompt": "a"}\n{"prompt": 7}\n')
    jobs = iter_jobs(path)
    assert next(jobs).prompt == "a"
    with pytest.raises(JobFileError, match=r"c\.jsonl:2: \"prompt\" must be a string"):
        next(jobs)


# ---------------------------------------------------------------------------- examples


def test_example_job_files_are_valid() -> None:
    demo = validate_file(EXAMPLES / "demo.jsonl")
    assert demo.ok and not demo.warnings and demo.jobs >= 24
    jobs = list(iter_jobs(EXAMPLES / "demo.jsonl"))
    assert {j.model for j in jobs} == {"gpt-image-1", "gpt-image-1-mini", "dall-e-3"}
    assert {j.quality for j in jobs if j.model == "gpt-image-1"} >= {"low", "medium", "high"}
    assert any(2 <= j.n <= 4 for j in jobs) and all(j.n == 1 for j in jobs if j.model == "dall-e-3")
    prompts = " ".join(j.prompt for j in jobs)
    assert "[sim:server*1]" in prompts and "[sim:content_policy]" in prompts
    assert sum(not j.id.startswith("j-") for j in jobs) >= 2
    for name, fmt in [
        ("examples.csv", "csv"),
        ("examples.txt", "text"),
        ("openai-batch.jsonl", "jsonl"),
    ]:
        result = validate_file(EXAMPLES / name, {"model": "gpt-image-1-mini"})
        assert (result.ok, result.format, not result.warnings) == (True, fmt, True), result.problems
        assert result.jobs >= 4


# ---------------------------------------------------------------------------- streaming

LINES = 200_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    filler = "with soft studio light and a long descriptive tail " * 5
    with path.open("w") as f:
        for i in range(LINES):
            f.write(f'{{"prompt": "product shot {i} {filler}", "size": "1024x1024"}}\n')
    return path


def test_first_job_streams_without_reading_the_file(big_file: Path) -> None:
    tracemalloc.start()
    try:
        jobs = iter_jobs(big_file)
        head = list(itertools.islice(jobs, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    jobs.close()
    assert [j.line for j in head] == list(range(1, 1001))
    assert head[0].prompt.startswith("product shot 0 ")
    # 1000 jobs are ~1 MB as Python objects; the file is 60 MB
    assert peak < 3_000_000, (
        f"{peak} bytes to read 1000 jobs of a {big_file.stat().st_size} byte file"
    )


def test_validation_memory_is_bounded_by_ids_not_bodies(big_file: Path) -> None:
    # a child process, because tracemalloc would make this pass ten times slower
    probe = (
        "import resource, sys\n"
        "from batchgen.jobs import validate_file\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = validate_file(sys.argv[1])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(result.ok, result.jobs, (after - before) * 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(big_file)], capture_output=True, text=True, check=True
    ).stdout.split()
    ok, jobs, growth = out[0] == "True", int(out[1]), int(out[2])
    size = big_file.stat().st_size
    assert ok and jobs == LINES
    # one short id per job (under 100 bytes with its set slot); keeping the bodies would
    # take about 1 KB per job here
    assert growth < 150 * LINES and growth < size / 2, (growth, size)


def _iter_peak(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_jobs(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_the_pools_scan_does_not_remember_every_explicit_id(tmp_path: Path) -> None:
    # validation holds every id (to report duplicates); the scan that feeds the pool runs
    # after it and must stay flat however many ids the file has
    def file_of(count: int) -> Path:
        lines = (
            json.dumps({"id": f"shot-{i:06d}", "prompt": f"a lamp, view {i}"}) for i in range(count)
        )
        return write(tmp_path, f"ids-{count}.jsonl", "\n".join(lines) + "\n")

    (small, small_peak), (large, large_peak) = (
        _iter_peak(file_of(2_000)),
        _iter_peak(file_of(20_000)),
    )
    assert (small, large) == (2_000, 20_000)
    assert large_peak < small_peak * 1.5 + 200_000, (small_peak, large_peak)


def test_the_pools_scan_gives_the_ids_validation_checked(tmp_path: Path) -> None:
    # explicit ids that look derived, repeats of id-less jobs, explicit ids in any case
    apple = {"prompt": "an apple on a plate"}
    lines = [
        json.dumps(apple),
        json.dumps({"id": derived({"prompt": "a pear"}) + "-7", "prompt": "x"}),
        json.dumps(apple),
        json.dumps({"id": "Mixed-Case", "prompt": "y"}),
        json.dumps({"prompt": "a pear"}),
        json.dumps(apple),
    ]
    path = write(tmp_path, "mixed.jsonl", "\n".join(lines) + "\n")
    seen: list[tuple[str, int]] = []
    assert validate_file(path, on_job=lambda j: seen.append((j.id, j.line))).ok
    assert [(j.id, j.line) for j in iter_jobs(path)] == seen
    pear = derived({"prompt": "a pear"})
    assert [i for i, _ in seen] == [
        derived(apple),
        pear + "-7",
        derived(apple) + "-2",
        "Mixed-Case",
        pear,
        derived(apple) + "-3",
    ]


def test_canonical_json_is_the_standard_librarys_text_for_every_value() -> None:
    """Fingerprints (and so resume across versions) rest on this text: the fast path must
    write exactly what ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes, for every code point in keys and values, and anything it
    does not cover must take the standard library's path."""
    from batchgen.jobs.model import canonical_json

    def stdlib(value: object) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for start in range(0, len(points), 2048):
        text = "".join(map(chr, points[start : start + 2048]))
        body = {text[::7]: text, "a" + text[:40]: [text[::-1], 1, True, None], "m": {"x": text}}
        assert canonical_json(body) == stdlib(body)
    others: list[dict[str, object]] = [
        {"n": 2**64 - 1, "m": -(2**63)},
        {"n": 2**64, "p": "beyond 64 bits"},
        {"f": 1e16, "g": 0.1, "h": -0.0},
        {"t": (1, 2), "s": "tuple"},
        {"z": "é", "a": "\x00\x1f\x7f\u2028", "é": "", "": ""},
    ]
    for body in others:
        assert canonical_json(body) == stdlib(body)
    assert canonical_json({1: "int key"}) == stdlib({1: "int key"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        canonical_json({"d": {1, 2}})  # refused as the standard library refuses it
