"""Azure OpenAI images: ``POST {base_url}/deployments/{deployment}/images/generations
?api-version=...`` with the key in an ``api-key`` header (never ``Authorization: Bearer``).

The body and the answer are OpenAI's, so everything else — answer parsing, image checks, the
error mapping (Azure sends OpenAI's error object; its content filter's code is
``content_filter``, already content_policy in batchgen.errors) — is OpenAIImages'. The
deployment is the job's model name unless the providers file maps it
(``deployments = {"gpt-image-1" = "my-dep"}``).
"""

from __future__ import annotations

from urllib.parse import quote

from batchgen.jobs.model import Job
from batchgen.provider.openai import OpenAIImages

DEFAULT_API_VERSION = "2025-04-01-preview"


class AzureImages(OpenAIImages):
    name = "azure"
    key_header = "api-key"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        deployments: dict[str, str] | None = None,
        api_version: str = DEFAULT_API_VERSION,
        connections: int = 100,
    ) -> None:
        super().__init__(base_url, api_key, connections=connections)
        self._headers.pop("Authorization", None)
        self._headers["api-key"] = api_key
        self.deployments = dict(deployments or {})
        self.api_version = api_version
        self._urls: dict[str, str] = {}

    def deployment(self, model: str) -> str:
        return self.deployments.get(model, model)

    def _url_for(self, job: Job) -> str:
        model = str(job.model or "")
        url = self._urls.get(model)
        if url is None:
            dep = quote(self.deployment(model), safe="")
            url = (
                f"{self.base_url}/deployments/{dep}/images/generations"
                f"?api-version={quote(self.api_version, safe='')}"
            )
            self._urls[model] = url
        return url
