"""IRC formatting codes -> plain text with XEP-0393 styling.

IRC marks styles with toggling control characters (specs/irc/irc-formatting.md):
bold 0x02, italics 0x1D, underline 0x1F, strikethrough 0x1E, monospace 0x11,
colour 0x03 (with up to two 1-2 digit numbers), hex colour 0x04 (RRGGBB
pairs), reverse 0x16, reset 0x0F. Bold, italics, strikethrough and monospace
become XEP-0393 spans (*bold*, _italic_, ~strike~, `mono`); everything else is
removed, and so are all other control characters, so nothing shows as garbage.

A span is only written where a XEP-0393 reader will see it as one (6.2: the
opening directive at the start, after whitespace or after another opening
directive; no whitespace just inside either directive; some text between
them; the directive character not inside). Otherwise the style is dropped.

Work grows linearly with the text (give or take a sort): a 16 KB line of
nothing but style toggles costs what 16 KB of text does.
"""

from __future__ import annotations

import re
import unicodedata

BOLD, ITALIC, STRIKE, MONO = "*", "_", "~", "`"
#: Nesting order when spans start together: outermost first; mono is innermost
#: because a preformatted span cannot hold other spans (XEP-0393 6.2.5).
ORDER = (BOLD, ITALIC, STRIKE, MONO)

_TOGGLES = {"\x02": BOLD, "\x1d": ITALIC, "\x1e": STRIKE, "\x11": MONO}
_RESET = "\x0f"
# "Two digits MUST always be read if available"; a comma only belongs to the
# code when a background colour follows it.
_COLOUR = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?")
# C0 and C1 controls, DEL, and the two noncharacters XML cannot carry.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_SPACES = re.compile("[\t\r\n]")


def irc_to_text(raw: str) -> str:
    """Convert one IRC message text to plain text with XEP-0393 spans."""
    if not _CONTROL.search(raw):  # most lines: nothing to convert
        return raw
    text, spans = _parse(raw)
    spans = _valid_spans(text, spans)
    return _render(text, spans)


def strip_formatting(raw: str) -> str:
    """Plain text only: every formatting code and control character removed."""
    return _parse(raw)[0]


def _clean(chunk: str) -> str:
    return _CONTROL.sub("", _SPACES.sub(" ", chunk))


def _parse(raw: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Plain text and the (start, end, directive) runs where each style is on."""
    out: list[str] = []
    length = 0
    active: dict[str, int] = {}  # directive -> start offset
    closed: dict[str, list[tuple[int, int]]] = {directive: [] for directive in ORDER}

    def open_(directive: str) -> None:
        # Off and on again at once ("\x02a\x02\x02b\x02") continues the span,
        # which can only be the directive's last one.
        runs = closed[directive]
        active[directive] = runs.pop()[0] if runs and runs[-1][1] == length else length

    def close(directive: str) -> None:
        start = active.pop(directive)
        if start < length:
            closed[directive].append((start, length))

    pos = 0
    for match in re.finditer(r"[\x02\x1d\x1e\x11\x0f\x03\x04]", raw):
        chunk = _clean(raw[pos:match.start()])
        out.append(chunk)
        length += len(chunk)
        code = match.group()
        pos = match.end()
        if code in _TOGGLES:
            directive = _TOGGLES[code]
            if directive in active:
                close(directive)
            else:
                open_(directive)
        elif code == _RESET:
            for directive in list(active):
                close(directive)
        else:  # colour: skip its parameters
            pos = _COLOUR.match(raw, match.start()).end()
    chunk = _clean(raw[pos:])
    out.append(chunk)
    length += len(chunk)
    for directive in list(active):
        close(directive)
    return "".join(out), [(start, end, d) for d, runs in closed.items() for start, end in runs]


def _is_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("Z")


def _valid_spans(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Trim, untangle and check spans so that each renders as XEP-0393 styling."""
    trimmed = []
    for start, end, directive in spans:
        while start < end and _is_space(text[start]):
            start += 1
        while end > start and _is_space(text[end - 1]):
            end -= 1
        if start < end and directive not in text[start:end]:
            trimmed.append((start, end, directive))
    # Outer spans first: earlier start, then longer, then the fixed order.
    trimmed.sort(key=lambda s: (s[0], -s[1], ORDER.index(s[2])))
    # A span is kept if it sits beside or inside every span kept before it, never
    # inside a preformatted one. Kept spans nest, so those still open where it starts
    # form a stack, innermost on top: checking the top is checking them all.
    kept: list[tuple[int, int, str]] = []
    open_: list[tuple[int, int, str]] = []
    for span in trimmed:
        start, end, _ = span
        while open_ and open_[-1][1] <= start:  # ended before: beside
            open_.pop()
        if not open_ or (end <= open_[-1][1] and open_[-1][2] != MONO):
            kept.append(span)
            open_.append(span)
    # Opening directives need the start of text, whitespace or another opening
    # directive before them; dropping one span can invalidate a later one.
    valid: list[tuple[int, int, str]] = []
    starts: set[int] = set()
    for start, end, directive in kept:
        if start == 0 or _is_space(text[start - 1]) or start in starts:
            valid.append((start, end, directive))
            starts.add(start)
    return valid


def _render(text: str, spans: list[tuple[int, int, str]]) -> str:
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    for start, end, directive in spans:  # outer spans come first
        opens.setdefault(start, []).append(directive)
        closes.setdefault(end, []).insert(0, directive)
    out = []
    for i in range(len(text) + 1):
        out.extend(closes.get(i, ()))
        out.extend(opens.get(i, ()))
        if i < len(text):
            out.append(text[i])
    return "".join(out)
