"""fal's queue: ``POST {base_url}/{model_id}`` (key as ``Authorization: Key ...``) →
``{request_id, status_url, response_url}``; poll ``status_url`` until ``COMPLETED``, then
GET ``response_url`` → ``{"images": [{"url": ...}]}`` and download each image URL (without
the key). The URLs are always the ones fal returned, never built here.

The job's ``size`` becomes ``image_size: {width, height}``, ``n`` becomes ``num_images``.
Errors map to the taxonomy in :meth:`FalImages._error`; an answer flagging
``has_nsfw_concepts`` for every image is content_policy.
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

_PASS = (
    "seed",
    "output_format",
    "enable_safety_checker",
    "num_inference_steps",
    "guidance_scale",
    "aspect_ratio",
)


class FalImages(PollingProvider):
    name = "fal"
    key_header = "Authorization"
    key_prefix = "Key "

    def submit_request(self, job: Job) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"prompt": job.prompt, "num_images": job.n}
        size = job.body.get("size")
        if isinstance(size, str) and "x" in size:
            w, _, h = size.lower().partition("x")
            if w.isdigit() and h.isdigit():
                body["image_size"] = {"width": int(w), "height": int(h)}
        body.update({k: job.body[k] for k in _PASS if k in job.body})
        return f"{self.base_url}/{job.model}", body

    def read_submit(self, payload: dict[str, Any], invalid: Any) -> tuple[str, str | None, Any]:
        status_url, response_url = payload.get("status_url"), payload.get("response_url")
        if not isinstance(status_url, str) or not isinstance(response_url, str):
            raise invalid("the queue's answer has no status_url / response_url")
        self.own_url(response_url, "the response_url", invalid)
        return status_url, self._text(payload.get("request_id"), 200), response_url

    def read_poll(self, payload: dict[str, Any], invalid: Any, request_id: str | None) -> Poll:
        status = payload.get("status")
        if status == "COMPLETED":
            if payload.get("error"):
                msg = f"the request failed: {self._text(payload.get('error'), 500)}"
                return Poll(error=AttemptError(ErrorClass.SERVER, msg, http_status=200))
            return Poll(done=True)
        return Poll()  # IN_QUEUE, IN_PROGRESS

    async def fetch_result(
        self,
        job: Job,
        ticket: Any,
        poll: Poll,
        timeout: aiohttp.ClientTimeout,
        invalid: Any,
        request_id: str | None,
    ) -> GenerateResult:
        url = str(ticket)
        status, headers, raw, ctype = await self._request(
            "GET", url, headers=self.headers_for(url), data=None, timeout=timeout
        )
        if status != 200:
            error = self._error(status, raw, headers, ctype, "result")
            error.request_id = request_id
            raise error
        payload = self._json(raw, invalid)
        items = payload.get("images")
        if not isinstance(items, list) or not items:
            raise invalid("the result has no images")
        nsfw = payload.get("has_nsfw_concepts")
        if isinstance(nsfw, list) and nsfw and all(v is True for v in nsfw):
            msg = "every image was flagged by fal's safety checker (has_nsfw_concepts)"
            raise AttemptError(
                ErrorClass.CONTENT_POLICY,
                msg,
                http_status=200,
                code="has_nsfw_concepts",
                request_id=request_id,
            )
        images = []
        for i, item in enumerate(items[: job.n]):
            image_url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(image_url, str):
                raise invalid(f"images[{i}] has no url")
            data = await self._download(image_url, timeout, self.expired(request_id), invalid)
            images.append(checked_image(data, f"images[{i}]", invalid))
        note = None
        if len(items) > job.n:
            note = f"the answer held {len(items)} images for n={job.n}: kept the first {job.n}"
        return GenerateResult(images=images, request_id=request_id, note=note)

    def _error(self, status: int, body: bytes, headers: Any, ctype: str, step: str) -> AttemptError:
        """fal's error answers → the taxonomy (the one place for fal)."""
        payload, text = json_error_text(body)
        detail = payload.get("detail") if payload else None
        message = self._text(detail if detail is not None else text) or f"HTTP {status}"
        lowered = message.lower()
        is_html = "html" in ctype or body.lstrip()[:1] == b"<"
        code = None
        if "balance" in lowered or "locked" in lowered or status == 402:
            klass, code = ErrorClass.QUOTA, "exhausted_balance"
        elif "content_policy" in lowered or "nsfw" in lowered:
            klass, code = ErrorClass.CONTENT_POLICY, "content_policy_violation"
        else:
            klass = classify_http(status, None, is_html=is_html)
        return AttemptError(
            klass,
            f"{step}: {message}",
            http_status=status,
            code=code,
            retry_after_s=parse_retry_after(headers),
            ratelimit=ratelimit_headers(headers),
        )
