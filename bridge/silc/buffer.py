"""Length-checked reading and writing of SILC's MSB-first binary fields.

Every decoder in bridge/silc reads through `Reader`, which checks each length
before it reads, so malformed input ends in `DecodeError` and nothing else.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Malformed or truncated SILC data."""


class Reader:
    """A cursor over bytes; every read checks that enough bytes remain."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise DecodeError(f"need {n} bytes, have {self.remaining}")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def lp16(self) -> bytes:
        """A 16-bit length, then that many bytes."""
        return self.take(self.u16())

    def lp32(self) -> bytes:
        """A 32-bit length, then that many bytes."""
        return self.take(self.u32())

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def end(self) -> None:
        """Insist that everything was read."""
        if self.remaining:
            raise DecodeError(f"{self.remaining} unexpected trailing bytes")


def u8(value: int) -> bytes:
    return value.to_bytes(1, "big")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def lp16(data: bytes) -> bytes:
    """`data` with a 16-bit length in front (OverflowError past 65535 bytes)."""
    return u16(len(data)) + data


def lp32(data: bytes) -> bytes:
    return u32(len(data)) + data


def text(data: bytes) -> str:
    """UTF-8 from the wire, with undecodable bytes replaced, never an exception."""
    return data.decode("utf-8", errors="replace")
