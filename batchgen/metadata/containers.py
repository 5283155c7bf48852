"""An image file's own markers, read without decoding: does it carry a C2PA manifest (a signed
content credential that any added byte would invalidate), and how to add a text record to a
PNG (an ``iTXt`` chunk) or XMP to a JPEG (an APP1 segment) or WebP (an ``XMP `` chunk).

C2PA's embeddings (C2PA 2.x, "Embedding manifests into assets"): PNG a ``caBX`` chunk; JPEG
APP11 segments carrying a JUMBF box (``JP`` common identifier, ``jumb``, label ``c2pa``);
WebP a ``C2PA`` RIFF chunk. Anything not understood is left alone (and gets a sidecar)."""

from __future__ import annotations

import re
import struct
import zlib
from xml.sax.saxutils import escape

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def kind(data: bytes) -> str | None:
    if data.startswith(PNG_SIG):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def png_chunks(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of every chunk; ValueError for a damaged file."""
    out, pos = [], len(PNG_SIG)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        out.append((pos, ctype))
        pos += 12 + length
        if ctype == b"IEND":
            return out
    raise ValueError("PNG without IEND")


def jpeg_segments(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, marker, payload) of each segment before the image data (SOS)."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA or marker == 0xD9:  # start of scan / end of image
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((pos, marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return out


def riff_chunks(data: bytes) -> list[tuple[int, bytes, bytes]]:
    out, pos = [], 12
    while pos + 8 <= len(data):
        ctype = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        out.append((pos, ctype, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def damaged(data: bytes) -> bool:
    """True when the file says it is a PNG, JPEG or WebP but its structure cannot be walked
    (cut short, or its chunk lengths run past its end)."""
    k = kind(data)
    try:
        if k == "png":
            png_chunks(data)
        elif k == "jpeg":
            jpeg_segments(data)
        elif k == "webp":
            riff_chunks(data)
    except (ValueError, struct.error):
        return True
    return False


def has_c2pa(data: bytes) -> bool:
    """True when the container carries a C2PA manifest (or what looks like one)."""
    k = kind(data)
    try:
        if k == "png":
            return any(t == b"caBX" for _, t in png_chunks(data))
        if k == "jpeg":
            return any(
                m == 0xEB and p[:2] == b"JP" and (b"jumb" in p or b"c2pa" in p)
                for _, m, p in jpeg_segments(data)
            )
        if k == "webp":
            return any(t == b"C2PA" for _, t, _ in riff_chunks(data))
    except (ValueError, struct.error):
        return True  # a file we cannot walk is not one we may write into
    return False


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def png_with_itxt(data: bytes, keyword: str, text: str) -> bytes:
    """The PNG with one uncompressed ``iTXt`` chunk added just before IEND."""
    iend = next(off for off, t in png_chunks(data) if t == b"IEND")
    body = keyword.encode("latin-1") + b"\x00\x00\x00" + b"\x00" + b"\x00" + text.encode()
    return data[:iend] + _png_chunk(b"iTXt", body) + data[iend:]


# what XML 1.0 cannot hold even as a character reference: C0 controls but tab, LF and CR,
# surrogates, U+FFFE and U+FFFF (https://www.w3.org/TR/xml/#charsets)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """``value`` as XML character data: markup escaped, and each character XML cannot hold
    written ``\\uXXXX`` (a JSON string's own escape, so the batchgen:metadata record still
    reads back as the same JSON). A prompt holding ESC or NUL made a packet no XMP reader
    parses: the image's whole record lost."""
    return escape(_NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", value))


def xmp_packet(fields: dict[str, str]) -> bytes:
    """An XMP packet: dc:description (the prompt) and batchgen:* properties."""
    props = "".join(
        f"<batchgen:{k}>{xml_text(v)}</batchgen:{k}>" for k, v in fields.items() if k != "prompt"
    )
    prompt = xml_text(fields.get("prompt", ""))
    xml = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:batchgen="https://github.com/batchgen/ns/1.0/">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{prompt}</rdf:li></rdf:Alt>'
        f"</dc:description>{props}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )
    return xml.encode()


_XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"


def jpeg_with_xmp(data: bytes, packet: bytes) -> bytes:
    """The JPEG with an APP1 XMP segment after SOI and any APP0 (JFIF)."""
    payload = _XMP_NS + packet
    if any(m == 0xE1 and p.startswith(_XMP_NS) for _, m, p in jpeg_segments(data)):
        raise ValueError("the JPEG already holds XMP (one packet is allowed): left as sent")
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("XMP packet too large for one APP1 segment")
    pos = 2
    for off, marker, body in jpeg_segments(data):
        if marker != 0xE0:
            break
        pos = off + 4 + len(body)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:pos] + segment + data[pos:]


def webp_with_xmp(data: bytes, packet: bytes, width: int, height: int, alpha: bool) -> bytes:
    """The WebP as an extended (VP8X) file with an ``XMP `` chunk; ``width``/``height``: the
    canvas (needed to write a VP8X header for a simple file)."""
    chunks = riff_chunks(data)
    if any(t == b"XMP " for _, t, _ in chunks):
        raise ValueError("the WebP already holds XMP (one packet is allowed): left as sent")
    parts: list[bytes] = []
    if chunks and chunks[0][1] == b"VP8X":
        flags = chunks[0][2][0] | 0x04  # XMP present
        parts.append(b"VP8X" + struct.pack("<I", 10) + bytes([flags]) + chunks[0][2][1:10])
        rest = chunks[1:]
    else:
        flags = 0x04 | (0x10 if alpha else 0)
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        parts.append(b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0]) + canvas)
        rest = chunks
    for _, ctype, body in rest:
        pad = b"\x00" if len(body) & 1 else b""
        parts.append(ctype + struct.pack("<I", len(body)) + body + pad)
    pad = b"\x00" if len(packet) & 1 else b""
    parts.append(b"XMP " + struct.pack("<I", len(packet)) + packet + pad)
    payload = b"WEBP" + b"".join(parts)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload
