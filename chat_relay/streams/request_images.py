"""The images a request may carry: a `data:` URL whose bytes are the image type it declares, or (when allowed) an
`https:` URL; everything else refused with a sentence that names where the image is.

Checked here, not by the upstream, so that a client learns what is wrong in our words, and an image the
upstream would refuse (or fetch from anywhere) never leaves the server.
"""

from __future__ import annotations

import binascii
import re

# The four types every vision model of the OpenAI API takes, and the first bytes each file starts with.
_DATA_URL = re.compile(r"data:image/(png|jpeg|webp|gif);base64,")
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "webp": (b"RIFF",),  # and "WEBP" at bytes 8 to 12, checked below
}
_TYPES = "a PNG, JPEG, WebP or GIF image in base64 (data:image/png;base64,...)"


def image_url_problem(url: str, max_bytes: int, allow_https: bool) -> str | None:
    """What is wrong with an image URL, as the end of a sentence that starts with the field's name; None if
    nothing is. Cheap before dear: the size is known from the length, before anything is decoded."""
    if not url.startswith("data:"):
        scheme = url.partition(":")[0].lower() if ":" in url[:16] else ""
        if scheme == "https" and allow_https:
            return None
        if scheme == "http":
            return "must not be an http: URL: send the image itself, as a data: URL"
        if scheme == "https":
            return "must be a data: URL: this server does not fetch images from https: URLs"
        return f"must be a data: URL of {_TYPES}" + (", or an https: URL" if allow_https else "")
    declared = _DATA_URL.match(url)
    if declared is None:
        return f"must be a data: URL of {_TYPES}"
    encoded = url[declared.end():]
    padding = len(encoded) - len(encoded.rstrip("="))
    if len(encoded) * 3 // 4 - min(padding, 2) > max_bytes:
        return f"is too large: an image may be at most {max_bytes:,} bytes"
    try:
        image = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        return "is not valid base64"
    kind = declared.group(1)
    if not image.startswith(_MAGIC[kind]) or (kind == "webp" and image[8:12] != b"WEBP"):
        return f"does not hold a {kind.upper()} image: its bytes are not those of image/{kind}"
    return None
