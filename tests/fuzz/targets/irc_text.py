"""IRC formatting (bridge/irc/formatting.py) and splitting (bridge/irc/split.py).

irc-formatting: a received IRC text, as the connection decodes it (UTF-8, else latin-1),
made of words, every formatting code, colours with and without their digits, controls,
combining marks and emoji. `irc_to_text` and `strip_formatting` must return text with no
control character XML cannot carry or IRC uses for formatting, keep every other
character in order, and take time linear in the text.

irc-split: any text to relay, a budget, `max_lines` and a format. Every line from
`wire_lines` must fit the budget and hold no CR, LF, NUL or other control; there are at
most `max_lines`; and when nothing is cut, the lines hold every character of the text but
white space and controls, in order.
"""

from __future__ import annotations

import random
import re

from bridge.irc.connection import MAX_RECEIVED_LINE, decode
from bridge.irc.formatting import irc_to_text, strip_formatting
from bridge.irc.split import clean, split_bytes, truncate, wire_lines
from tests.fuzz.engine import Target, Violation
from tests.fuzz.mutate import mutate

_CODES = ["\x02", "\x1d", "\x1f", "\x1e", "\x11", "\x16", "\x0f", "\x03", "\x034", "\x0312",
          "\x0312,", "\x034,5", "\x0312,05", "\x03,5", "\x04", "\x04ff00ff", "\x04FF00FF,00ff00",
          "\x04abc", "\x01", "\x00", "\x7f", "\x85", "\x9f", "\t", "\r", "\n", "\ufffe"]
_WORDS = ["a", "word", "*", "_", "~", "`", " ", "  ", "\u00a0", "\u3000", "é", "e\u0301",
          "\u0301\u0301", "😀", "👩\u200d💻", "\u200d", "\ufe0f", "ж", "中文", "\U0010ffff", "12", ",3"]
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")  # what irc_to_text must never return
_DIRECTIVES = str.maketrans("", "", "*_~`")
_SPACE = re.compile(r"\s+")


def _irc_text(rng: random.Random, size: int) -> str:
    parts = []
    while sum(map(len, parts)) < size:
        if rng.random() < 0.4:
            parts.append(rng.choice(_CODES))
        else:
            parts.append(rng.choice(_WORDS))
    return "".join(parts)


def generate_formatting(rng: random.Random) -> bytes:
    if rng.random() < 0.03:  # one code over and over, as long as a line may be
        unit = "".join(rng.choice(_CODES + _WORDS) for _ in range(rng.randint(1, 4)))
        text = unit * (rng.choice((100, 1000, MAX_RECEIVED_LINE)) // len(unit))
    else:
        text = _irc_text(rng, rng.choice((4, 16, 64, 200, 400)) if rng.random() < 0.95 else 2000)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.2:
        data = mutate(rng, data)
    return data[:2 * MAX_RECEIVED_LINE]


def check_formatting(data: bytes) -> None:
    raw = decode(data)
    styled, plain = irc_to_text(raw), strip_formatting(raw)
    for out in (styled, plain):
        if _BAD.search(out):
            raise Violation(f"control character {_BAD.search(out).group()!r} left in the text")
    # irc_to_text only adds directives (and never drops a character strip_formatting keeps).
    if styled.translate(_DIRECTIVES) != plain.translate(_DIRECTIVES):
        raise Violation("styled text is not the plain text with directives")


def generate_split(rng: random.Random) -> bytes:
    budget = rng.choice((0, 1, 3, 4, 5, 10, 50, 100, 300, 400, 450, 510))
    max_lines = rng.choice((1, 1, 2, 5, 10, 100, 255))  # the config wants at least 1
    fmt = rng.randrange(len(_FORMATS))
    words = _WORDS + ["\n", "\r\n", "\r", "\x00", "\x01", "\x1b", "\u2028", "x" * 500, "é" * 300]
    size = rng.choice((0, 10, 100, 300, 1000))
    if budget >= 50 and rng.random() < 0.05:
        size = rng.choice((5000, 30000))
    parts: list[str] = []
    while sum(map(len, parts)) <= size:
        parts.append(rng.choice(words))
    text = "".join(parts)
    data = bytes([budget >> 8, budget & 0xFF, max_lines, fmt]) + text.encode()
    if rng.random() < 0.2:
        data = data[:4] + mutate(rng, data[4:])
    return data


_FORMATS = ["{text}", "<{nick}> {text}", "* {nick} {text}", "{text}{text}", "{nick}\n{text}"]
_NICK = "ni\u0301ck\r\n"


def check_split(data: bytes) -> None:
    if len(data) < 4:
        return
    budget, max_lines, fmt = data[0] << 8 | data[1], max(data[2], 1), _FORMATS[data[3] % len(_FORMATS)]
    text = data[4:].decode("utf-8", "replace")

    def render(piece: str) -> str:
        return fmt.format(nick=_NICK, text=piece)

    lines = wire_lines(text, render, budget, max_lines)
    for line in lines:
        if len(line.encode()) > budget:
            raise Violation(f"a line of {len(line.encode())} bytes over a budget of {budget}")
        if clean(line) != line:
            raise Violation("a line holds a line break or a control character")
    if len(lines) > max(max_lines, 2):  # when cut: at least one line of text, and the marker
        raise Violation(f"{len(lines)} lines for max_lines {max_lines}")
    cut = lines and lines[-1].startswith("[…")  # the marker, maybe truncated to the budget
    if fmt == "{text}" and budget >= 4 and not cut:
        wanted = _SPACE.sub("", clean(text))
        if _SPACE.sub("", "".join(lines)) != wanted:
            raise Violation("the lines lost or changed characters of the text")
    for limit in {1 if len(text) <= 100 else 4, 4 if len(text) <= 1000 else budget, budget or 1}:
        pieces = split_bytes(text, limit)
        if limit >= 4 and any(len(p.encode()) > limit for p in pieces):
            raise Violation("split_bytes made a piece over its limit")
        if _SPACE.sub("", "".join(pieces)) != _SPACE.sub("", text):
            raise Violation("split_bytes lost or changed characters")
    if not truncate(text, budget).encode() == text.encode()[:budget].decode(errors="ignore").encode():
        raise Violation("truncate is not the longest prefix that fits")


FORMATTING = Target("irc-formatting", "IRC text with every code -> irc_to_text, strip_formatting",
                    generate_formatting, check_formatting, bound=0.25, full=1_000_000)
SPLIT = Target("irc-split", "any text, budget, max_lines, format -> wire_lines, split_bytes, truncate",
               generate_split, check_split, bound=0.25, full=1_000_000)
