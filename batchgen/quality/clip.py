"""Local prompt–image alignment with a CLIP-family model (``pip install 'batchgen[clip]'``).

The model is loaded by Hugging Face name or local path with transformers' ``CLIPModel`` and
``CLIPProcessor`` (offline machines: a local folder, or a name already in the HF cache). The
score is the cosine similarity of the image and prompt embeddings, mapped linearly onto 1–10:
``lo`` (default 0.15, unrelated for ViT-B/32-class models) → 1, ``hi`` (0.35, a close match)
→ 10, clamped. It says whether the picture is about the prompt, not whether it is well made:
it costs nothing per image, but it cannot see a malformed hand or a wrong count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
INSTALL_HINT = (
    "the CLIP scorer needs the optional extra: pip install 'batchgen[clip]' "
    "(transformers + torch; on a CPU-only machine install torch's CPU build first)"
)


class ClipUnavailable(Exception):
    """transformers/torch are not installed, or the model cannot be loaded."""


class ClipScorer:
    kind = "clip"

    def __init__(
        self,
        name_or_path: str = DEFAULT_CLIP_MODEL,
        *,
        lo: float = 0.15,
        hi: float = 0.35,
        device: str = "cpu",
    ) -> None:
        try:
            # lazy: torch and transformers are an optional extra (batchgen[clip])
            import torch
            from transformers import CLIPModel, CLIPProcessor
        except ImportError as exc:
            raise ClipUnavailable(INSTALL_HINT) from exc
        self._torch = torch
        try:
            self.model = CLIPModel.from_pretrained(name_or_path).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as exc:
            msg = (
                f"cannot load the CLIP model {name_or_path!r}: {exc}. Give a local folder "
                "(save_pretrained) or a Hugging Face name already downloaded to the cache"
            )
            raise ClipUnavailable(msg) from exc
        self.name = name_or_path
        self.id = f"clip:{Path(name_or_path).name if Path(name_or_path).exists() else name_or_path}"
        self.lo, self.hi = lo, hi
        self.device = device

    def to_score(self, cosine: float) -> float:
        scaled = 1.0 + 9.0 * (cosine - self.lo) / (self.hi - self.lo)
        return round(min(10.0, max(1.0, scaled)), 2)

    def score_batch(self, pairs: list[tuple[str, Path | BinaryIO]]) -> list[tuple[float, str]]:
        """(prompt, image file or its bytes) → (score 1–10, reasons) for each pair; blocking."""
        # lazy: Pillow (~30 ms) only for the CLIP scorer's batches; quality/session.py imports
        # this module for the judge too, which sends the image files' bytes without it
        from PIL import Image

        torch = self._torch
        images = []
        for _, path in pairs:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        prompts = [p for p, _ in pairs]
        inputs: Any = self.processor(
            text=prompts,
            images=images,
            return_tensors="pt",
            padding=True,
            truncation=True,
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            out = self.model(**inputs)
            img = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
            txt = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
            cos = (img * txt).sum(dim=-1).tolist()
        return [(self.to_score(c), f"CLIP cosine similarity {c:.3f}") for c in cos]
