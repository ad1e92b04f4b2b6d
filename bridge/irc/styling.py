"""XEP-0393 styling -> IRC formatting codes (the reverse of `bridge.irc.formatting`).

*bold* becomes 0x02, _italic_ 0x1D, ~strike~ 0x1E and `mono` 0x11, the directives
replaced by the codes, where XEP-0393 6.2 sees a span: the opening directive at the
start of the line, after whitespace or after another opening directive, not followed by
whitespace; the closing one (lazily, the first that fits) not preceded by whitespace; some
text between them. A preformatted span holds no other spans. Preformatted blocks (from a
line starting with ``` to a line that is only ```) and quotations (lines starting with
`>`) are left as they are (6.1), and so are lines with no directive character at all.
A text returned unchanged (the same object) needs no codes kept on the wire.
"""

from __future__ import annotations

import re

CODES = {"*": "\x02", "_": "\x1d", "~": "\x1e", "`": "\x11"}
FENCE = "```"
_NO_CODES = dict.fromkeys(map(ord, CODES.values()))
#: Where a span could open (6.2): a directive at a line's start or after whitespace, not
#: followed by whitespace, looking through the codes taken out first. A nested span opens
#: right after its parent's directive, so a text without a match holds no span at all.
_OPENING = re.compile(r"[*_~`](?<![^\s\x02\x1d\x1e\x11][*_~`])(?=[\x02\x1d\x1e\x11]*[^\s\x02\x1d\x1e\x11])")


def text_to_irc(text: str) -> str:
    """`text` with its XEP-0393 spans as IRC formatting codes."""
    if _OPENING.search(text) is None:
        return text  # most messages (snake_case and a*b included): no span can open
    return _converted(text)


def _converted(text: str) -> str:
    text = text.translate(_NO_CODES)  # only the codes written here pass (`wire_lines`)
    out: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if fenced:
            fenced = line != FENCE
        elif line.startswith(FENCE):
            fenced = True
        elif not line.startswith(">"):
            line = _styled(line)
        out.append(line)
    return "\n".join(out)


def _styled(line: str) -> str:
    marks: dict[int, str] = {}  # index of a directive -> its code
    _spans(line, 0, len(line), marks)
    if not marks:
        return line
    return "".join(marks.get(i, c) for i, c in enumerate(line))


def _spans(line: str, start: int, end: int, marks: dict[int, str], depth: int = 0) -> None:
    """Mark the spans of `line[start:end]` (a block, or the inside of a span). Linear in
    the range: a directive with no closing one is not looked for again, and spans nest
    at most `len(CODES)` deep."""
    unclosed: set[str] = set()
    i = start
    while i < end:
        c = line[i]
        if c in CODES and c not in unclosed and (i == start or line[i - 1].isspace()) \
                and i + 1 < end and not line[i + 1].isspace():
            close = _closing(line, i, end)
            if close is None:
                unclosed.add(c)  # none for a later one either: it would hold less text
            else:
                marks[i] = marks[close] = CODES[c]
                if c != "`" and depth + 1 < len(CODES):
                    _spans(line, i + 1, close, marks, depth + 1)
                i = close + 1
                continue
        i += 1


def _closing(line: str, opening: int, end: int) -> int | None:
    """The first directive that closes the span opened at `opening` (None: no span).
    Some text must come between: not just other directive characters."""
    text = opening + 1
    while text < end and line[text] in CODES:
        text += 1
    j = line.find(line[opening], text + 1, end)
    while j != -1 and line[j - 1].isspace():
        j = line.find(line[opening], j + 1, end)
    return None if j == -1 else j
