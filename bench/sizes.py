"""Size scaling of what reads attacker-sized input: `python -m bench.sizes [--repeat N] [--write]`.

IRC formatting (`irc_to_text`), splitting (`wire_lines`) and the XMPP reflection filter (one
stanza fed in 512-byte reads) at 1x, 4x and 16x input sizes; linear code costs the same per
byte at every size. The best of `--repeat` runs is shown (the others wait for the CPU).
`--write` puts the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bridge.irc.formatting import irc_to_text
from bridge.irc.split import wire_lines
from bridge.xmpp.framing import ReflectionFilter

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "performance.md"
DOC_START = "<!-- bench:sizes:start (written by python -m bench.sizes --write) -->"
DOC_END = "<!-- bench:sizes:end -->"
SCALES = (1, 4, 16)
READ = 512  # bytes per read for the filter
HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='bridge.localhost'>")


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _formatting(unit: str) -> Callable[[int], tuple[int, Callable[[], object]]]:
    def case(size: int):
        text = _repeat(unit, size)
        return len(text.encode()), lambda: irc_to_text(text)
    return case


def _splitting(unit: str) -> Callable[[int], tuple[int, Callable[[], object]]]:
    def case(size: int):
        text = _repeat(unit, size)
        return len(text.encode()), lambda: wire_lines(text, lambda t: f"<alice> {t}", 400, 10**9)
    return case


def _filter(child: bytes) -> Callable[[int], tuple[int, Callable[[], object]]]:
    def case(size: int):
        body = child * (size // len(child))
        stanza = (b"<message type='chat' to='bridge.localhost' from='r@muc.localhost/bob'><body>"
                  + body + b"</body></message>")
        reads = [stanza[i:i + READ] for i in range(0, len(stanza), READ)]

        def run():
            reflections = ReflectionFilter()
            reflections.feed(HEADER)
            out = [reflections.feed(chunk) for chunk in reads]
            assert b"".join(out) == stanza
        return len(stanza), run
    return case


#: (what, input, base size in characters or bytes, case)
CASES = [
    ("IRC formatting", "plain words and a few codes", 1024, _formatting("word \x02bold\x02 \x0304red\x03 ")),
    ("IRC formatting", "style toggles only (\\x02\\x1d\\x1e\\x11a )", 1024,
     _formatting("\x02\x1d\x1e\x11a ")),
    ("IRC formatting", "colour codes (\\x0312,4a)", 1024, _formatting("\x0312,4a")),
    ("IRC splitting", "words", 4096, _splitting("word ")),
    ("IRC splitting", "CJK, no spaces", 4096, _splitting("\u4e00")),
    ("IRC splitting", "a letter and combining marks", 4096, _splitting("a" + "\u0301" * 4095)),
    ("reflection filter", "one stanza of text", 16384, _filter(b"x")),
    ("reflection filter", "one stanza of small elements (<a/>)", 16384, _filter(b"<a/>")),
    ("reflection filter", "one stanza of elements holding text (<b>y</b>)", 16384, _filter(b"<b>y</b>")),
    ("reflection filter", "one stanza of attributes with '>' (<a x='>'/>)", 16384, _filter(b"<a x='>'/>")),
    ("reflection filter", "one stanza of forwarded messages", 16384,
     _filter(b"<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>hi</body>"
             b"</message></forwarded>")),
]


def measure(case, size: int, repeat: int) -> tuple[int, float]:
    """Bytes and best seconds of one case at one size."""
    nbytes, run = case(size)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return nbytes, best


def table(repeat: int) -> list[str]:
    head = " | ".join(f"{s}x ns/B" for s in SCALES)
    lines = [f"| code | input | 1x size | {head} | 16x / 1x |",
             "|---|---|---:|" + "---:|" * (len(SCALES) + 1)]
    for what, label, base, case in CASES:
        per_byte = []
        size_1x = 0
        for scale in SCALES:
            nbytes, seconds = measure(case, base * scale, repeat)
            size_1x = size_1x or nbytes
            per_byte.append(seconds / nbytes * 1e9)
        cells = " | ".join(f"{ns:,.1f}" for ns in per_byte)
        lines.append(f"| {what} | {label} | {size_1x:,} B | {cells} | {per_byte[-1] / per_byte[0]:.2f} |")
        print(lines[-1], flush=True)
    return lines


def _machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu or platform.processor()}), Python {platform.python_version()}"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the table into docs/performance.md")
    args = parser.parse_args(argv)
    print(f"best of {args.repeat}; the filter reads {READ} bytes at a time", flush=True)
    lines = table(args.repeat)
    if args.write:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        block = [DOC_START, "",
                 f"Command: `python -m bench.sizes --repeat {args.repeat}`  ",
                 f"Date: {when}  ",
                 f"Machine: {_machine()}  ",
                 f"Commit: muc-bridge {_commit()}", "", *lines, "", DOC_END]
        text = DOC.read_text()
        start, end = text.find(DOC_START), text.find(DOC_END)
        if start < 0 or end < 0:
            raise SystemExit(f"{DOC} has no {DOC_START} ... {DOC_END} block")
        DOC.write_text(text[:start] + "\n".join(block) + text[end + len(DOC_END):])
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()
