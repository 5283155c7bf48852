"""Real images for the simulator, rendered once per key and then served from a cache.

The hot path of a benchmark is a dict lookup: an image is identified by
(width, height, format, transparent, variant, seed, tiny, image_kb), and the cache keeps its
bytes, its base64 text and the ready-made JSON fragment ``{"b64_json":"..."}``. A prompt picks
one of ``variants`` pictures by hash, so prompts differ visibly without a render per request.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageDraw, PngImagePlugin

TINY_EDGE = 64
MARK_KEY = "batchgen-sim"
_CACHE_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageKey:
    width: int
    height: int
    fmt: str  # png / jpeg / webp
    transparent: bool
    variant: int
    seed: int
    tiny: bool
    image_kb: float | None
    # written into the file's metadata (PNG text chunk, JPEG comment, WebP XMP) for the simulator's
    # judge: "quality=low;wrong=0"; "" writes none
    mark: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    b64: str
    b64_item: bytes  # b'{"b64_json":"..."}', spliced into answers without re-encoding


def variant_of(prompt: str, index: int, variants: int) -> int:
    """Which picture a prompt gets (stable across runs, unlike ``hash()``); ``variants=0``
    gives every (prompt, index) a picture of its own, so a clean run has no duplicates."""
    digest = hashlib.blake2b(
        f"{prompt}\x00{index if variants == 0 else ''}".encode(), digest_size=8
    ).digest()
    value = int.from_bytes(digest, "little")
    return value if variants == 0 else (value + index) % variants


class ImageCache:
    """Process-wide LRU of rendered images, bounded by total bytes; safe across threads."""

    def __init__(self, max_bytes: int = _CACHE_MAX_BYTES) -> None:
        self._items: OrderedDict[ImageKey, Rendered] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def peek(self, key: ImageKey) -> Rendered | None:
        """The cached image or None, without rendering (the event loop's fast path)."""
        return self._items.get(key)

    def get(self, key: ImageKey) -> Rendered:
        """The image, rendering it on first use (call from a worker thread: it can be slow)."""
        found = self._items.get(key)
        if found is not None:
            return found
        rendered = encode_item(render(key))
        with self._lock:
            if key not in self._items:
                self._items[key] = rendered
                self._bytes += len(rendered.data) + len(rendered.b64) + len(rendered.b64_item)
            while self._bytes > self._max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.data) + len(old.b64) + len(old.b64_item)
            return self._items[key]


IMAGE_CACHE = ImageCache()


def encode_item(data: bytes) -> Rendered:
    """``data`` ready to serve: its bytes, base64 text and ``{"b64_json":...}`` fragment."""
    b64 = base64.b64encode(data).decode("ascii")
    return Rendered(data=data, b64=b64, b64_item=b'{"b64_json":"' + b64.encode() + b'"}')


def render(key: ImageKey) -> bytes:
    """Encode the picture for ``key`` in its format."""
    if key.image_kb is not None:
        return _render_to_size(key, int(key.image_kb * 1024))
    width, height = (TINY_EDGE, TINY_EDGE) if key.tiny else (key.width, key.height)
    img = _picture(width, height, key)
    if "wrong=1" in key.mark:
        # a picture a person can tell apart on the contact sheet: crossed out in red
        draw = ImageDraw.Draw(img)
        line = max(2, min(width, height) // 16)
        draw.line((0, 0, width, height), fill=(220, 0, 0), width=line)
        draw.line((0, height, width, 0), fill=(220, 0, 0), width=line)
    return _encode(img, key)


def _picture(width: int, height: int, key: ImageKey) -> Image.Image:
    """A gradient with seeded shapes and a grid: structure a viewer (or a check) can see."""
    rng = random.Random(f"{key.seed}:{key.variant}")
    c1 = tuple(rng.randrange(256) for _ in range(3))
    # far from c1 in every channel, so the gradient always spans many grey levels
    c2 = tuple((c + 96 + rng.randrange(64)) % 256 for c in c1)
    # linear_gradient is 256x256 black→white top to bottom; resizing it is far cheaper than
    # drawing a gradient line by line on a 4K canvas
    mask = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize((width, height))
    img = Image.composite(
        Image.new("RGB", (width, height), c1), Image.new("RGB", (width, height), c2), mask
    )
    draw = ImageDraw.Draw(img)
    unit = max(4, min(width, height) // 8)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(unit // 2, unit * 2)
        fill = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse(
                (x - r, y - r, x + r, y + r), fill=fill, outline=(0, 0, 0), width=max(1, r // 12)
            )
        else:
            draw.rectangle(
                (x - r, y - r // 2, x + r, y + r // 2), fill=fill, outline=(255, 255, 255)
            )
    for gx in range(0, width, unit):
        draw.line((gx, 0, gx, height), fill=(0, 0, 0), width=1)
    for gy in range(0, height, unit):
        draw.line((0, gy, width, gy), fill=(0, 0, 0), width=1)
    if key.transparent:
        alpha = Image.new("L", (width, height), 0)
        ImageDraw.Draw(alpha).ellipse(
            (width // 8, height // 8, width * 7 // 8, height * 7 // 8), fill=255
        )
        img.putalpha(alpha)
    return img


def read_mark(data: bytes) -> dict[str, str] | None:
    """The simulator's mark of an image it rendered ({"quality": "low", "wrong": "0"}), or
    None for an image without one (not the simulator's, or a webp)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            text = img.info.get(MARK_KEY)
            for field in ("comment", "xmp"):  # JPEG comment, WebP XMP
                raw = img.info.get(field)
                if (
                    text is None
                    and isinstance(raw, bytes)
                    and raw.startswith(MARK_KEY.encode() + b":")
                ):
                    text = raw.split(b":", 1)[1].decode("utf-8", "replace")
    except Exception:
        return None
    if not isinstance(text, str):
        return None
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


def _noise(side: int, key: ImageKey) -> Image.Image:
    # incompressible pixels make the encoded size predictable: ~3 bytes per pixel in PNG
    rng = random.Random(f"noise:{key.seed}:{key.variant}")
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    ImageDraw.Draw(img).rectangle((0, 0, side // 2, side // 2), fill=(40, 90, 200))
    return img


def _render_to_size(key: ImageKey, target: int) -> bytes:
    """A noise image whose encoding is within a few percent of ``target`` bytes."""
    side = max(8, int(math.sqrt(target / 2.3)))
    data = b""
    for _ in range(6):
        data = _encode(_noise(side, key), key)
        ratio = target / len(data)
        if abs(ratio - 1) < 0.03:
            break
        side = max(8, int(side * math.sqrt(ratio)))
    return data


def _encode(img: Image.Image, key: ImageKey) -> bytes:
    buf = io.BytesIO()
    if key.fmt == "jpeg":
        extra = {"comment": f"{MARK_KEY}:{key.mark}".encode()} if key.mark else {}
        img.convert("RGB").save(buf, "JPEG", quality=90, **extra)
    elif key.fmt == "webp":
        extra = {"xmp": f"{MARK_KEY}:{key.mark}".encode()} if key.mark else {}
        img.save(buf, "WEBP", quality=90, **extra)
    else:
        info = None
        if key.mark:
            info = PngImagePlugin.PngInfo()
            info.add_text(MARK_KEY, key.mark)
        img.save(buf, "PNG", compress_level=1, pnginfo=info)
    return buf.getvalue()
