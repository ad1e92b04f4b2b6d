"""IRC formatting codes become XEP-0393 styling or disappear, never garbage."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.irc.formatting import irc_to_text, strip_formatting

B, I, U, S, M, C, H, R, O = "\x02", "\x1d", "\x1f", "\x1e", "\x11", "\x03", "\x04", "\x16", "\x0f"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain text", "plain text"),
        (f"{B}bold{B} text", "*bold* text"),
        (f"an {I}italic{I} word", "an _italic_ word"),
        (f"{S}gone{S}", "~gone~"),
        (f"run {M}make test{M} now", "run `make test` now"),
        (f"{U}underlined{U}", "underlined"),
        (f"{R}reversed{R}", "reversed"),
        # Unterminated styles end with the message; reset ends them all.
        (f"{B}to the end", "*to the end*"),
        (f"{B}{I}both{O} plain", "*_both_* plain"),
        (f"{B}bold {I}both{I} bold{B}", "*bold _both_ bold*"),
        # Whitespace just inside a directive moves outside it.
        (f"say{B} loud {B}now", "say *loud* now"),
        # Off and on again at once is one span.
        (f"{B}a{B}{B}b{B}", "*ab*"),
        # Colours vanish with their parameters, never eat the text.
        (f"I love {C}3IRC! {C}It is the {C}7best protocol ever!",
         "I love IRC! It is the best protocol ever!"),
        (f"{C}04,12red on blue{C} and {C}1234", "red on blue and 34"),
        (f"{C},comma", ",comma"),
        (f"{C}5,comma", ",comma"),
        (f"{H}FF0000red{H} {H}00FF00,0000FFgreen on blue{H}", "red green on blue"),
        (f"{H}not hex", "not hex"),
        (f"IRC {B}is {C}4,12so {C}great{O}!", "IRC *is so great*!"),
        # Spec example: "Rules: Don't spam 5[C]13,8,6[C],7,8, and ..."
        (f"Don't spam 5{C}13,8,6{C},7,8, and especially not {B}9{B}{I}!",
         "Don't spam 5,6,7,8, and especially not *9*!"),
    ],
)
def test_codes_become_styling_or_vanish(raw, expected):
    assert irc_to_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Inside a word a XEP-0393 reader would show the asterisks: drop the style.
        (f"foo{B}bar{B}", "foobar"),
        # A span cannot open right after another span closes.
        (f"{B}a{B}{I}b{I}", "*a*b"),
        # Crossing spans cannot nest: the later one goes.
        (f"{B}one {I}two{B} three{I}", "*one two* three"),
        # Nothing styles inside a preformatted span.
        (f"{M}code {B}bold{B}{M}", "`code bold`"),
        # The directive character inside the span would end it early.
        (f"{B}2*3=6{B}", "2*3=6"),
        # Empty or blank spans are not spans.
        (f"{B}{B}x", "x"),
        (f"a{B}   {B}b", "a   b"),
    ],
)
def test_styles_a_reader_would_misparse_are_dropped(raw, expected):
    assert irc_to_text(raw) == expected


def test_a_line_of_nothing_but_style_toggles():
    # 16 KB of toggles: once seconds of work (quadratic), now linear (~0.1 s here).
    raw = f"{B}{I}{S}{M}a " * 2700
    assert irc_to_text(raw) == "*_~`a`~_* a " * 1350


def test_control_characters_never_survive():
    raw = "a\x00b\x01ACTION\x01c\x07d\x1be[31m\x7ff\x85g\r\nh\ti\ufffe"
    assert irc_to_text(raw) == "abACTIONcde[31mfg  h i"


def test_strip_formatting_keeps_only_text():
    assert strip_formatting(f"{B}bold{B} {C}4red {I}it") == "bold red it"


_IRC_TEXT = st.text(
    alphabet=st.sampled_from(list("ab *_~`,0123456789F\u00e9\U0001f600") + [B, I, U, S, M, C, H, R, O, "\x00", "\x01"]),
    max_size=40,
)


@given(_IRC_TEXT)
def test_output_is_clean_and_keeps_the_words(raw):
    out = irc_to_text(raw)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in out)
    # Removing the added directives gives back exactly the stripped text.
    plain = strip_formatting(raw)
    assert len(out) >= len(plain)
    it = iter(out)
    assert all(ch in it for ch in plain)  # plain is a subsequence of out
