"""Ids nobody can predict, cheaply: 96 bits each from the operating system's CSPRNG,
drawn for `BATCH` ids at a time, so that a message does not cost a system call for its id."""

from __future__ import annotations

import base64
import os

#: Ids drawn with one system call.
BATCH = 256
_SIZE = 12  # bytes of randomness in an id: 16 URL-safe base64 characters, no padding

_drawn: list[str] = []


def new_id() -> str:
    """A fresh id: 16 characters of URL-safe base64."""
    if not _drawn:
        chars = base64.urlsafe_b64encode(os.urandom(_SIZE * BATCH)).decode()
        step = _SIZE * 4 // 3
        _drawn.extend(chars[i:i + step] for i in range(0, len(chars), step))
    return _drawn.pop()
