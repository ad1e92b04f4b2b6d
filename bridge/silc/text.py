"""Text to and from SILC messages: decoding, cleaning, splitting, signature marks."""

from __future__ import annotations

import unicodedata

from bridge.silc.message import MessageFlag, SignatureState

#: What a relayed message says about its signature (silc-flags-payloads 3.3), before its text.
SIGNATURE_MARKS = {
    SignatureState.VALID: "[signed] ",
    SignatureState.INVALID: "[BAD SIGNATURE] ",
    SignatureState.UNCHECKED: "[signed, unverified] ",
    SignatureState.NONE: "",
}


def decode_text(data: bytes, flags: int) -> str:
    """UTF-8 when flagged or valid; otherwise Latin-1 (old clients)."""
    try:
        return clean(data.decode("utf-8"))
    except UnicodeDecodeError:
        return clean(data.decode("utf-8" if flags & MessageFlag.UTF8 else "latin-1", errors="replace"))


def clean(text: str) -> str:
    """Drop control characters other than newline and tab."""
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")


def split_utf8(text: str, limit: int) -> list[bytes]:
    """UTF-8 chunks of at most `limit` bytes, never splitting a character."""
    data = text.encode("utf-8")
    chunks = []
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        chunks.append(data[:cut])
        data = data[cut:]
    return [*chunks, data] if data else chunks
