"""Outgoing IRC lines fit the wire with the relay prefix and cannot inject commands."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.irc.split import MAX_LINE, clean, split_bytes, text_budget, wire_lines


def relay(text: str) -> str:
    return f"<alice> {text}"


def on_the_wire(line: str, nick="xbridge", user="~xbridge", host="h" * 63, chan="#hackers") -> bytes:
    """The line as the server relays it to the channel's other members."""
    return f":{nick}!{user}@{host} PRIVMSG {chan} :{line}\r\n".encode()


BUDGET = text_budget("PRIVMSG", "#hackers", "xbridge", "~xbridge", "h" * 63)


def test_budget_counts_the_relayed_prefix_and_crlf():
    assert len(on_the_wire("x" * BUDGET)) == MAX_LINE


def test_short_text_is_one_line():
    assert wire_lines("hello", relay, BUDGET, 5) == ["<alice> hello"]


def test_long_text_splits_at_word_boundaries():
    words = [f"word{i:03d}" for i in range(150)]
    lines = wire_lines(" ".join(words), relay, BUDGET, 10)
    assert len(lines) > 1
    assert all(len(on_the_wire(line)) <= MAX_LINE for line in lines)
    assert all(line.startswith("<alice> ") for line in lines)
    # Every word arrives whole, in order.
    assert [w for line in lines for w in line.removeprefix("<alice> ").split()] == words


def test_multibyte_text_never_splits_a_character():
    text = "ж" * 400 + "😀" * 200  # no spaces at all: hard splits
    lines = wire_lines(text, relay, BUDGET, 10)
    assert all(len(on_the_wire(line)) <= MAX_LINE for line in lines)
    assert "".join(line.removeprefix("<alice> ") for line in lines) == text


def test_combining_marks_stay_with_their_letter():
    text = "e\u0301" * 300  # é as e + combining acute
    pieces = split_bytes(text, 101)
    assert all(not p.startswith("\u0301") for p in pieces)
    assert "".join(pieces) == text


def test_marks_longer_than_a_line_fill_lines_rather_than_one_line_each():
    text = "a" + "\u0301" * 1000  # one letter, 2000 bytes of marks: it must be cut somewhere
    pieces = split_bytes(text, 101)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 101 for p in pieces) and len(pieces) <= 21


def test_cr_lf_nul_cannot_reach_the_socket():
    lines = wire_lines("hi\r\nQUIT :x\x00\rNICK evil\nPRIVMSG #x :y", relay, BUDGET, 10)
    assert lines == ["<alice> hi", "<alice> QUIT :x", "<alice> NICK evil", "<alice> PRIVMSG #x :y"]
    assert not any(ch in line for line in lines for ch in "\r\n\x00")


def test_control_characters_and_ctcp_are_removed():
    assert wire_lines("\x01DCC SEND x\x01 \x02b\x03", relay, BUDGET, 5) == ["<alice> DCC SEND x b"]


def test_nick_in_the_format_cannot_inject_either():
    lines = wire_lines("hi", lambda t: f"<a\r\nQUIT :b> {t}", BUDGET, 5)
    assert lines == ["<a QUIT :b> hi"]


def test_blank_lines_are_skipped():
    assert wire_lines("a\n\n  \nb", relay, BUDGET, 5) == ["<alice> a", "<alice> b"]


def test_too_many_lines_are_cut_with_a_count():
    text = "\n".join(f"line {i}" for i in range(12))
    assert wire_lines(text, relay, BUDGET, 5) == [
        "<alice> line 0", "<alice> line 1", "<alice> line 2", "<alice> line 3",
        "<alice> [… 8 more lines cut]",
    ]


def test_cap_counts_wire_lines_of_a_long_line_too():
    lines = wire_lines("x" * (BUDGET * 3), relay, BUDGET, 2)
    assert len(lines) == 2
    assert lines[1] == "<alice> [… 3 more lines cut]"


@settings(max_examples=200)
@given(st.text(max_size=1500), st.integers(min_value=1, max_value=8))
def test_any_text_gives_safe_lines(text, max_lines):
    lines = wire_lines(text, relay, BUDGET, max_lines)
    assert len(lines) <= max(max_lines, 2)
    for line in lines:
        assert len(on_the_wire(line)) <= MAX_LINE
        assert not any(ch in line for ch in "\r\n\x00")
        line.encode()  # valid UTF-8: no lone surrogates produced by a split


@given(st.text(st.characters(max_codepoint=0x3000)))
def test_clean_turns_line_breaks_into_spaces_and_drops_every_other_control_but_tab(text):
    def control(ch: str) -> bool:
        return ch != "\t" and (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F)
    one_line = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    assert clean(text) == "".join(ch for ch in one_line if not control(ch))


def test_the_one_line_shortcut_gives_what_the_full_split_gives():
    """`wire_lines` returns a printable one-line text at once when it fits; the full
    split must agree (random texts and renders, some too long, some blank)."""
    import random

    from bridge.irc import split
    rng = random.Random(512)
    alphabet = ["a", "b", " ", "é", "\u3042", "\u0301"] * 6 + ["\xa0", "\t", "\x02", "\n"]
    renders = [lambda t: t, lambda t: f"<alice> {t}", lambda t: t + t, lambda t: f"\x02{t}"]
    taken = 0
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        taken += text.isprintable() and bool(text.strip())
        render, budget, styled = rng.choice(renders), rng.randrange(8, 60), rng.random() < 0.3
        full = split._wire_lines(text, render, budget, 4, styled)
        assert split.wire_lines(text, render, budget, 4, styled) == full, (text, budget)
    assert taken > 3000
