"""Outgoing text -> IRC lines that fit on the wire and cannot inject commands.

An IRC line is at most 512 bytes with its CRLF, and that limit holds for the
line the server relays to everyone else, which carries our full prefix
(`:nick!user@host PRIVMSG #chan :` ... CRLF; modern-irc-client-protocol.md,
"Message format"). `text_budget` computes how many bytes of text fit;
`wire_lines` turns any text into lines of at most that size, split at word
boundaries where possible and never inside a UTF-8 character, with CR, LF and
NUL (and every other control character) unable to reach the socket.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

MAX_LINE = 512  # bytes, CRLF included
#: Assumed until the server tells us our real host (RFC 2812 caps hostnames at 63).
WORST_HOST = 63

_NEWLINES = re.compile(r"\r\n|\r|\n")
# Every C0 control but tab (CTCP's 0x01, IRC formatting, NUL), DEL, and C1.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: The same but the formatting codes `bridge.irc.styling` writes (bold, monospace, italics,
#: strikethrough), for a text it styled.
_CONTROL_BUT_STYLE = re.compile("[\x00\x01\x03-\x08\x0a-\x10\x12-\x1c\x1f\x7f-\x9f]")


def text_budget(command: str, target: str, nick: str, user: str, host: str) -> int:
    """Bytes left for the text of `command target :text` as the server relays it."""
    prefix = f":{nick}!{user}@{host} {command} {target} :"
    return MAX_LINE - 2 - len(prefix.encode())


def clean(text: str) -> str:
    """One line's worth of text: line breaks become spaces, controls vanish."""
    if text.isprintable():  # no control of any kind (the common case): nothing to do
        return text
    return _CONTROL.sub("", _NEWLINES.sub(" ", text))


def truncate(text: str, limit: int) -> str:
    """The longest prefix of `text` that is at most `limit` bytes in UTF-8."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:max(0, limit)].decode(errors="ignore")


def wire_lines(
    text: str,
    render: Callable[[str], str],
    budget: int,
    max_lines: int,
    styled: bool = False,
) -> list[str]:
    """Split `text` into rendered lines of at most `budget` bytes each (`styled`: keeping
    the formatting codes of `bridge.irc.styling`).

    `render` wraps one piece of text (e.g. "<alice> {text}"); it is applied to
    every piece. Blank lines are skipped. When more than `max_lines` lines
    result, the last kept line says how many were cut.
    """
    if text.isprintable():  # one line, no control of any kind: most messages
        rendered = render(text.strip())
        if rendered.isprintable() and len(rendered.encode()) <= budget and text.strip():
            return [rendered]
    return _wire_lines(text, render, budget, max_lines, styled)


def _wire_lines(text: str, render: Callable[[str], str], budget: int, max_lines: int,
                styled: bool) -> list[str]:
    controls = _CONTROL_BUT_STYLE if styled else _CONTROL
    overhead = len(clean(render("")).encode())
    room = max(budget - overhead, 4)  # always room for one character
    pieces: list[str] = []
    for line in _NEWLINES.split(text):
        line = controls.sub("", line).strip()
        if line:
            pieces.extend(split_bytes(line, room))
    if len(pieces) > max_lines:
        keep = max(max_lines - 1, 1)
        cut = len(pieces) - keep
        pieces = pieces[:keep] + [f"[… {cut} more line{'s' if cut != 1 else ''} cut]"]
    # `clean` again in case `render` itself brings a line break; `truncate`
    # in case it uses the text twice: the budget is a hard limit.
    return [truncate(controls.sub("", _NEWLINES.sub(" ", render(piece))), budget) for piece in pieces]


def split_bytes(line: str, limit: int) -> list[str]:
    """Split one line into pieces of at most `limit` UTF-8 bytes, preferring
    to break at whitespace and never inside a character or before a
    combining mark (unless one letter's marks alone are over the limit).
    Linear in the line: each piece is measured from where the last one ended."""
    pieces = []
    start, left = 0, len(line.encode())  # `left`: the bytes of line[start:]
    while left > limit:
        cut = _fit(line, start, limit)
        space = line.rfind(" ", start, cut + 1)
        if space > start:
            head, rest = line[start:space], space + 1
        else:
            head, rest = line[start:cut], cut
        while rest < len(line) and line[rest].isspace():
            rest += 1
        left -= len(line[start:rest].encode())
        start = rest
        head = head.rstrip()
        if head:
            pieces.append(head)
    if start < len(line):
        pieces.append(line[start:])
    return pieces


def _fit(line: str, start: int, limit: int) -> int:
    """Where the piece from `start` ends: as many characters as fit in `limit`
    bytes (at least one), moved back so that no combining mark starts the next
    piece, unless that would leave only the marks' own letter."""
    fits = len(line[start:start + limit].encode()[:limit].decode(errors="ignore"))
    cut = start + max(fits, 1)
    end = cut
    while end > start + 1 and _joins_at(line, end):
        end -= 1
    return cut if end == start + 1 and _joins_at(line, end) else end


def _joins_at(line: str, i: int) -> bool:
    """Does line[i] belong to the character before it?"""
    return i < len(line) and (_joins_previous(line[i]) or line[i - 1] == "\u200d")


def _joins_previous(ch: str) -> bool:
    """Combining marks, variation selectors and the zero-width joiner belong
    to the character before them."""
    return unicodedata.category(ch) in ("Mn", "Mc", "Me") or ch == "\u200d"
