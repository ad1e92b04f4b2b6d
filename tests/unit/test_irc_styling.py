import pytest

from bridge.irc.formatting import irc_to_text
from bridge.irc.styling import text_to_irc

B, I, S, M = "\x02", "\x1d", "\x1e", "\x11"


@pytest.mark.parametrize("text, irc", [
    ("plain *bold* _it_ ~gone~ `code`", f"plain {B}bold{B} {I}it{I} {S}gone{S} {M}code{M}"),
    ("plain *_emphasis_* plain", f"plain {B}{I}emphasis{I}{B} plain"),  # XEP-0393 6.2 examples
    ("`*not bold*` *bold*", f"{M}*not bold*{M} {B}bold{B}"),
    ("* plain *strong*", f"* plain {B}strong{B}"),
    ("*one* and *two*", f"{B}one{B} and {B}two{B}"),
    ("*a b *c d*", f"{B}a b *c d{B}"),  # lazily matched: the first closing that fits
])
def test_spans_become_irc_codes(text, irc):
    assert text_to_irc(text) == irc


@pytest.mark.parametrize("text", [
    "not strong*", "*not strong", "*not \n strong*", "*not *strong", "**", "***", "****",
    "snake_case_name", "2 * 3 * 4", "a*b*c", "> *quoted*", "```\n*in a block*\n```",
])
def test_what_is_no_span_is_left_as_it_is(text):
    assert text_to_irc(text) == text


def test_a_code_block_ends_at_its_fence_and_styling_resumes():
    assert text_to_irc("```py\nx = *y*\n```\n*after*") == f"```py\nx = *y*\n```\n{B}after{B}"


def test_a_plain_text_is_returned_as_is():
    text = "nothing to style here, " * 100
    assert text_to_irc(text) is text


def test_round_trip_with_the_irc_direction():
    for text in ("say *this* and _that_ ~not~ `x`", "*_both_*"):
        assert irc_to_text(text_to_irc(text)) == text


def test_a_long_line_of_unclosed_directives_stays_fast_and_unchanged():
    text = "*a _b ~c `d " * 4000  # no span closes: each directive is looked for once
    assert text_to_irc(text) == text


def test_only_the_codes_written_here_reach_the_wire():
    from bridge.irc.split import wire_lines
    styled = text_to_irc("\x02*b*\x1d and \x03 colour")
    assert styled == f"{B}b{B} and \x03 colour"
    lines = wire_lines(styled, lambda t: f"<a> {t}", 400, 4, styled=True)
    assert lines == [f"<a> {B}b{B} and  colour"]
    assert wire_lines(f"{B}x{B}", lambda t: t, 400, 4) == ["x"]  # unstyled: no code passes


def test_a_text_the_quick_check_passes_over_holds_no_span():
    """`text_to_irc` returns a text unchanged when no directive could open a span there;
    the full conversion must agree (random texts over the characters that matter)."""
    import random

    from bridge.irc import styling
    rng = random.Random(393)
    alphabet = "ab *_~`>\n\t\x02\x1d\x11"
    skipped = 0
    for _ in range(100000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        if styling._OPENING.search(text) is None:
            skipped += 1
            assert styling._converted(text) == text.translate(styling._NO_CODES), repr(text)
    assert skipped > 1000
