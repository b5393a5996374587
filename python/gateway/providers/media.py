"""Images in the forms provider APIs accept: `data:` URLs (OpenAI) or base64 with a mime type (Anthropic, Gemini)."""

from __future__ import annotations

import base64
import mimetypes
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from gateway.chat import ImagePart


class InlineImage(NamedTuple):
    mime_type: str
    base64_data: str


def inline_image(part: ImagePart) -> InlineImage | None:
    """The image as base64 when it is inline (bytes, or a data: URL); None when it is a URL to fetch."""
    if part.data:
        return InlineImage(part.mime_type or "image/png", base64.b64encode(part.data).decode("ascii"))
    if part.url.startswith("data:"):
        header, sep, payload = part.url[5:].partition(",")
        if sep and header.endswith(";base64"):
            return InlineImage(header[: -len(";base64")] or part.mime_type or "image/png", payload)
        if sep:  # a percent-encoded, non-base64 data URL: rare, re-encode it
            raw = unquote_to_bytes(payload)
            return InlineImage(header or part.mime_type or "image/png", base64.b64encode(raw).decode("ascii"))
    return None


def image_url(part: ImagePart) -> str:
    """An http(s) or data: URL for the image (inline bytes become a data: URL)."""
    inline = inline_image(part) if part.data else None
    if inline is not None:
        return f"data:{inline.mime_type};base64,{inline.base64_data}"
    return part.url


def guess_mime_type(part: ImagePart) -> str:
    if part.mime_type:
        return part.mime_type
    guessed, _ = mimetypes.guess_type(part.url.split("?", 1)[0])
    return guessed or "image/jpeg"
