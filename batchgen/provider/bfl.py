"""Black Forest Labs (FLUX): ``POST {base_url}/{model}`` with ``x-key`` → ``{id,
polling_url}``; poll ``polling_url`` until ``status`` is ``Ready``, then download
``result.sample``, a signed URL that expires within minutes (fetched without the key).

The job's ``size`` ("1024x768") becomes ``width``/``height``; an ``aspect_ratio`` field is
passed on as it is. Errors map to the taxonomy in :meth:`BflImages._error`; a poll that says
``Request Moderated`` / ``Content Moderated`` is content_policy, ``Error`` / ``Failed`` is
server, ``Task not found`` is server (retried: a new submit).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from batchgen.errors import AttemptError, ErrorClass, classify_http, parse_retry_after
from batchgen.jobs.model import Job
from batchgen.provider.base import GenerateResult
from batchgen.provider.http import checked_image, json_error_text
from batchgen.provider.poll import Poll, PollingProvider
from batchgen.provider.transport import ratelimit_headers

_MODERATED = ("Request Moderated", "Content Moderated")
_FAILED = ("Error", "Failed", "Task not found")
_PASS = (
    "aspect_ratio",
    "seed",
    "output_format",
    "safety_tolerance",
    "prompt_upsampling",
    "steps",
    "guidance",
    "raw",
)


class BflImages(PollingProvider):
    name = "bfl"
    key_header = "x-key"

    def submit_request(self, job: Job) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"prompt": job.prompt}
        size = job.body.get("size")
        if isinstance(size, str) and "x" in size and "aspect_ratio" not in job.body:
            w, _, h = size.lower().partition("x")
            if w.isdigit() and h.isdigit():
                body["width"], body["height"] = int(w), int(h)
        body.update({k: job.body[k] for k in _PASS if k in job.body})
        return f"{self.base_url}/{job.model}", body

    def read_submit(self, payload: dict[str, Any], invalid: Any) -> tuple[str, str | None, Any]:
        url = payload.get("polling_url")
        if not isinstance(url, str) or not url:
            raise invalid("the submit answer has no polling_url")
        return url, self._text(payload.get("id"), 200), None

    def read_poll(self, payload: dict[str, Any], invalid: Any, request_id: str | None) -> Poll:
        status = payload.get("status")
        if status == "Ready":
            result = payload.get("result")
            sample = result.get("sample") if isinstance(result, dict) else None
            if not isinstance(sample, str) or not sample:
                raise invalid("the poll answer is Ready but has no result.sample")
            return Poll(done=True, result=sample)
        if status in _MODERATED:
            msg = f"refused by Black Forest Labs' moderation ({status})"
            details = payload.get("details")
            if details:
                msg += f": {self._text(details, 500)}"
            code = str(status).lower().replace(" ", "_")
            return Poll(
                error=AttemptError(ErrorClass.CONTENT_POLICY, msg, http_status=200, code=code)
            )
        if status in _FAILED:
            msg = f"the task ended with status {status!r}"
            return Poll(
                error=AttemptError(
                    ErrorClass.SERVER,
                    msg,
                    http_status=200,
                    code=str(status).lower().replace(" ", "_"),
                )
            )
        return Poll()  # Pending, Queued, or anything new: keep polling until the timeout

    async def fetch_result(
        self,
        job: Job,
        ticket: Any,
        poll: Poll,
        timeout: aiohttp.ClientTimeout,
        invalid: Any,
        request_id: str | None,
    ) -> GenerateResult:
        raw = await self._download(poll.result, timeout, self.expired(request_id), invalid)
        image = checked_image(raw, "result.sample", invalid)
        return GenerateResult(images=[image], request_id=request_id)

    def _error(self, status: int, body: bytes, headers: Any, ctype: str, step: str) -> AttemptError:
        """Black Forest Labs' error answers → the taxonomy (the one place for BFL)."""
        payload, text = json_error_text(body)
        detail = payload.get("detail") if payload else None
        message = self._text(detail if detail is not None else text) or f"HTTP {status}"
        lowered = message.lower()
        is_html = "html" in ctype or body.lstrip()[:1] == b"<"
        if status == 402 or "credits" in lowered or "insufficient" in lowered:
            klass, code = ErrorClass.QUOTA, "insufficient_credits"
        elif status == 429:
            # BFL caps the tasks one key may have active: a rate limit of concurrency
            klass, code = ErrorClass.RATE_LIMIT, "too_many_active_tasks"
        elif "moderat" in lowered and status in (400, 422):
            klass, code = ErrorClass.CONTENT_POLICY, "moderated"
        else:
            klass, code = classify_http(status, None, is_html=is_html), None
        return AttemptError(
            klass,
            f"{step}: {message}",
            http_status=status,
            code=code,
            retry_after_s=parse_retry_after(headers),
            ratelimit=ratelimit_headers(headers),
        )
