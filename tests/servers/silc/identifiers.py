"""Nickname and channel name preparation (silc-spec 3.13.1, Appendices A-D)
and the Client/Server/Channel IDs built from them (silc-spec 3.1.1, 3.2.2, 3.4.1)."""

from __future__ import annotations

import hashlib
import os
import stringprep
import unicodedata
from collections.abc import Iterable

_APPENDIX_C = set("!*,?@")  # nicknames only

# Appendix D: symbol characters prohibited in all identifiers.
_APPENDIX_D_TEXT = """
00A2-00A9 00AC 00AE 00AF 00B0 00B1 00B4 00B6 00B8 00D7 00F7 02C2-02C5 02D2-02FF 0374
0375 0384 0385 03F6 0482 060E 060F 06E9 06FD 06FE 09F2 09F3 09FA 0AF1 0B70 0BF3-0BFA
0E3F 0F01-0F03 0F13-0F17 0F1A-0F1F 0F34 0F36 0F38 0FBE 0FBF 0FC0-0FC5 0FC7-0FCF 17DB
1940 19E0-19FF 1FBD 1FBF-1FC1 1FCD-1FCF 1FDD-1FDF 1FED-1FEF 1FFD 1FFE 2044 2052
207A-207C 208A-208C 20A0-20B1 2100-214F 2150-218F 2190-21FF 2200-22FF 2300-23FF
2400-243F 2440-245F 2460-24FF 2500-257F 2580-259F 25A0-25FF 2600-26FF 2700-27BF
27C0-27EF 27F0-27FF 2800-28FF 2900-297F 2980-29FF 2A00-2AFF 2B00-2BFF 2E9A 2EF4-2EFF
2FF0-2FFF 303B-303D 3040 3095-3098 309F-30A0 30FF-3104 312D-3130 318F 31B8-31FF
321D-321F 3244-325F 327C-327E 32B1-32BF 32CC-32CF 32FF 3377-337A 33DE-33DF 33FF
4DB6-4DFF 9FA6-9FFF A48D-A48F A4A2-A4A3 A4B4 A4C1 A4C5 A4C7-ABFF D7A4-D7FF FA2E-FAFF
FFE0-FFEE FFFC 10000-1007F 10080-100FF 10100-1013F 1D000-1D0FF 1D100-1D1FF
1D300-1D35F 1D400-1D7FF E0100-E01EF
"""


def _ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split():
        low, _, high = item.partition("-")
        out.append((int(low, 16), int(high or low, 16)))
    return out


_APPENDIX_D = _ranges(_APPENDIX_D_TEXT)

_PROHIBITED = (
    stringprep.in_table_a1, stringprep.in_table_c11, stringprep.in_table_c12,
    stringprep.in_table_c21, stringprep.in_table_c22, stringprep.in_table_c3,
    stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
    stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
)


def _prepare(text: str, max_bytes: int, nickname: bool) -> str:
    mapped = "".join(
        stringprep.map_table_b2(c) for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if not prepared or len(prepared.encode()) > max_bytes:
        raise ValueError("empty or too long")
    for c in prepared:
        if any(table(c) for table in _PROHIBITED) or (nickname and c in _APPENDIX_C):
            raise ValueError(f"prohibited character {c!r}")
        if any(low <= ord(c) <= high for low, high in _APPENDIX_D):
            raise ValueError(f"prohibited symbol {c!r}")
    return prepared


def prepare_nickname(nick: str) -> str:
    """silc-identifier-prep, at most 128 bytes; raises ValueError."""
    return _prepare(nick, 128, nickname=True)


def prepare_channel(name: str) -> str:
    """silc-identifier-ch-prep, at most 256 bytes; raises ValueError."""
    return _prepare(name, 256, nickname=False)


def server_id(ip: bytes, port: int) -> bytes:
    """IPv4 address, port, 16-bit random number (silc-spec 3.2.2)."""
    return ip + port.to_bytes(2, "big") + os.urandom(2)


def client_id(ip: bytes, prepared_nick: str, taken: Iterable[bytes] = ()) -> bytes:
    """IPv4 address, 8-bit random number, first 88 bits of MD5 of the prepared
    nickname (silc-spec 3.1.1), not one of the IDs `taken`: the random number tells
    apart up to 2^8 clients from one address with one nickname (a gateway's users),
    and with all of them taken there is none (ValueError; silc-commands NICK:
    SILC_STATUS_ERR_NICKNAME_IN_USE)."""
    nick_hash = hashlib.md5(prepared_nick.encode()).digest()[:11]
    used = {i[4] for i in taken if i[:4] == ip and i[5:] == nick_hash}
    free = [n for n in range(256) if n not in used]
    if not free:
        raise ValueError("2^8 clients from this address have this nickname")
    return ip + bytes([free[os.urandom(1)[0] % len(free)]]) + nick_hash


def channel_id(server: bytes, counter: int) -> bytes:
    """Router's Server ID address and port, 16-bit counter (silc-spec 3.4.1)."""
    return server[:6] + (counter % 0x10000).to_bytes(2, "big")
