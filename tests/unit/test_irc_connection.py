"""The hardened receive path: bad lines are dropped one by one, the rest still arrives."""

import asyncio

import pytest
from irc.client_aio import AioConnection, AioReactor

from bridge.core.coalesce import FLUSH_SIZE
from bridge.irc.connection import HardenedConnection, LineBuffer


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
async def conn():
    """A connection as `connect` leaves it, on a fake transport, recording events."""
    reactor = AioReactor(loop=asyncio.get_running_loop())
    seen = []
    c = HardenedConnection(reactor, "testnet",
                           lambda _, e: seen.append(e) if e.type != "all_raw_messages" else None)
    c.buffer, c.handlers, c.real_server_name, c.real_nickname = LineBuffer(), {}, "srv", "me"
    c.transport, c.connected = FakeTransport(), True
    c.seen = seen
    return c


def events(conn, *types):
    return [(e.type, e.source, e.target, e.arguments) for e in conn.seen if e.type in types]


GARBAGE = [
    b"      ",                          # only spaces
    b"   :bob!b@h PRIVMSG #c :leading",  # leading spaces
    b":bob!b@h PRIVMSG",                # no parameters
    b":bob!b@h PRIVMSG #c",             # no text
    b":bob!b@h NICK",
    b":bob!b@h KICK #c",
    b"QUIT",                            # no source, no parameters
    b"@",
    b":",
    b"@a=b;c :x",
    b"\x00\x01\x02",
    b":scripted.test 999 me weird :unknown numeric",
    b":scripted.test 005 me PREFIX=broken :are supported",
]


def test_garbage_in_one_read_does_not_stop_the_lines_after_it(conn):
    data = b"\r\n".join(GARBAGE + [b":bob!b@h PRIVMSG #c :still here", b""])
    conn.process_data(data)
    assert events(conn, "pubmsg") == [("pubmsg", "bob!b@h", "#c", ["still here"])]
    assert conn.connected and not conn.transport.closed


SAME_AS_LIBRARY = [
    ":bob!b@h PRIVMSG #c :hello there",
    ":bob!b@h PRIVMSG #c ::) colon first",
    ":bob!b@h PRIVMSG #c :",
    ":bob!b@h PRIVMSG me :a private word",
    ":bob!b@h PRIVMSG #c :\x01ACTION waves\x01",
    "@time=2026-11-25T10:00:00.000Z;account=bob :bob!b@h PRIVMSG #c :tagged",
    "@+draft/reply=x\\sy :bob!b@h PRIVMSG #c :escaped tag value",
    ":bob!b@h PRIVMSG #c one-word-without-colon",
    ":bob!b@h  PRIVMSG #c :two spaces",
    ":bob!b@h NOTICE #c :a notice",
    ":bob!b@h NOTICE me :a private notice",
    ":bob!b@h NOTICE #c :\x01VERSION reply\x01",
    ":server.test NOTICE me :*** from a server",
    ":bob!b@h JOIN #c",
    "@time=2026-11-25T10:00:00.000Z :bob!b@h JOIN #c",
    ":server.test PRIVMSG me :from a server",
    ":bob!b@h KICK #c eve :a reason with  spaces",
    ":bob!b@h   MODE #c +ov  eve bob",
    ":server.test 353 me = #c :@bob +eve carol",
    ":server.test 005 me CASEMAPPING=ascii NICKLEN=30 :are supported",
    "PING :token",
    ":bob!b@h QUIT :gone",
]


@pytest.mark.parametrize("line", SAME_AS_LIBRARY)
async def test_our_parsers_give_what_the_library_gives_on_ordinary_lines(conn, line):
    conn.process_data(line.encode() + b"\r\n")
    ours = [(e.type, e.source, e.target, e.arguments, e.tags) for e in conn.seen]
    conn.seen.clear()
    AioConnection._process_line(conn, line)  # the library's own parser
    library = [(e.type, e.source, e.target, e.arguments, e.tags) for e in conn.seen
               if e.type != "all_raw_messages"]
    assert ours == library and ours


@pytest.mark.parametrize(("line", "expected"), [
    (":srv PING \t", ("ping", "srv", "\t", ["\t"])),  # the library: no parameter, IndexError
    (":bob!b@h JOIN #a\u00a0b", ("join", "bob!b@h", "#a\u00a0b", [])),  # not two channels
    (":bob!b@h TOPIC #c x\ty", ("topic", "bob!b@h", "#c", ["x\ty"])),
])
async def test_parameters_are_split_on_spaces_only(conn, line, expected):
    conn.process_data(line.encode() + b"\r\n")
    assert events(conn, expected[0]) == [expected]
    assert conn.dropped_lines == 0


@pytest.mark.parametrize("word", ["\x1e", "\x1chi\x1f", "\x1e\x1e"])
def test_a_last_word_of_formatting_codes_without_a_colon_is_the_text(conn, word):
    conn.process_data(f":bob!b@h PRIVMSG #c {word}\r\n:bob!b@h NOTICE #c {word}\r\n".encode())
    assert events(conn, "pubmsg", "pubnotice") == [("pubmsg", "bob!b@h", "#c", [word]),
                                                  ("pubnotice", "bob!b@h", "#c", [word])]


def test_an_isupport_token_the_library_cannot_parse_costs_only_itself(conn):
    conn.process_data(b":scripted.test 005 me PREFIX=(ov)@+PREFIX=(o) CASEMAPPING=ascii "
                      b"TARGMAX=PRIVMSG:4:2 NICKLEN=30 :are supported\r\n")
    assert (conn.features.casemapping, conn.features.nicklen) == ("ascii", 30)
    assert conn.features.prefix == {"@": "o", "+": "v"}  # the default stays


def test_a_quit_without_a_reason_is_a_quit(conn):
    conn.process_data(b":bob!b@h QUIT\r\n:eve!e@h QUIT :gone\r\n")
    assert events(conn, "quit") == [("quit", "bob!b@h", None, [""]), ("quit", "eve!e@h", None, ["gone"])]
    assert conn.dropped_lines == 0


def test_invalid_utf8_falls_back_to_latin1_per_line(conn):
    conn.process_data(b":bob!b@h PRIVMSG #c :caf\xe9\r\n:bob!b@h PRIVMSG #c :caf\xc3\xa9\r\n")
    assert [a for *_, a in events(conn, "pubmsg")] == [["café"], ["café"]]


def test_lines_split_across_reads_and_bare_lf(conn):
    conn.process_data(b":bob!b@h PRIVMSG #c :hel")
    conn.process_data(b"lo\n:bob!b@h PRIVMSG #c :again\r")
    conn.process_data(b"\n")
    assert [a for *_, a in events(conn, "pubmsg")] == [["hello"], ["again"]]


def test_overlong_line_is_dropped_and_the_next_one_read(conn):
    conn.process_data(b":bob!b@h PRIVMSG #c :" + b"x" * 40000)
    conn.process_data(b"y" * 40000 + b"\r\n:bob!b@h PRIVMSG #c :next\r\n")
    assert [a for *_, a in events(conn, "pubmsg")] == [["next"]]
    assert conn.dropped_lines == 1
    assert len(conn.buffer._data) == 0


def test_the_longest_line_irc_allows_is_read_and_one_byte_more_is_not(conn):
    tags = b"@a=" + b"x" * (8191 - 4) + b" "  # IRCv3 message-tags: at most 8191 bytes
    message = b":bob!b@h PRIVMSG #c :"
    text = b"y" * (512 - len(message) - 2)  # the message: at most 512 bytes with CR LF
    conn.process_data(tags + message + text + b"\r\n")
    conn.process_data(tags + message + text + b"z\r\n")
    conn.process_data(tags + message + text + b"z")  # and arriving in pieces
    conn.process_data(b"\r\n" + message + b"next\r\n")
    assert [a[0][-3:] for *_, a in events(conn, "pubmsg")] == ["yyy", "ext"]
    assert conn.dropped_lines == 2


def test_ctcp_action_with_and_without_final_delimiter(conn):
    conn.process_data(b":bob!b@h PRIVMSG #c :\x01ACTION waves\x01\r\n:bob!b@h PRIVMSG #c :\x01ACTION nods\r\n")
    assert [a for *_, a in events(conn, "action")] == [["waves"], ["nods"]]
    assert events(conn, "pubmsg") == []


def test_ctcp_only_at_the_start_and_no_low_level_dequoting(conn):
    conn.process_data(b":bob!b@h PRIVMSG #c :hi \x01VERSION\x01 there \x10n\r\n")
    assert [a for *_, a in events(conn, "pubmsg")] == [["hi \x01VERSION\x01 there \x10n"]]
    assert events(conn, "ctcp") == []


def test_other_ctcp_and_replies_are_their_own_events(conn):
    conn.process_data(b":bob!b@h PRIVMSG me :\x01VERSION\x01\r\n:bob!b@h NOTICE me :\x01VERSION x 1.0\x01\r\n")
    assert events(conn, "ctcp", "ctcpreply") == [
        ("ctcp", "bob!b@h", "me", ["VERSION", ""]),
        ("ctcpreply", "bob!b@h", "me", ["VERSION", "x 1.0"]),
    ]
    assert events(conn, "privmsg", "privnotice", "action") == []


def test_notices_public_and_private(conn):
    conn.process_data(b":bob!b@h NOTICE #c :to all\r\n:bob!b@h NOTICE me :to me\r\n")
    assert events(conn, "pubnotice", "privnotice") == [
        ("pubnotice", "bob!b@h", "#c", ["to all"]),
        ("privnotice", "bob!b@h", "me", ["to me"]),
    ]


def test_a_handler_that_fails_drops_only_its_line(conn):
    handler = conn.handler

    def broken(c, event):
        if event.arguments == ["boom"]:
            raise RuntimeError("handler bug")
        handler(c, event)

    conn.handler = broken
    conn.process_data(b":bob!b@h PRIVMSG #c :boom\r\n:bob!b@h PRIVMSG #c :fine\r\n")
    assert [a for *_, a in events(conn, "pubmsg")] == [["fine"]]


@pytest.mark.parametrize("line", ["PRIVMSG #c :a\r\nQUIT", "PRIVMSG #c :a\nQUIT", "PRIVMSG #c :a\0b"])
def test_send_refuses_line_breaks_and_nul(conn, line):
    with pytest.raises(ValueError):
        conn.send_raw(line)
    assert conn.transport.written == []


async def test_a_turn_s_first_line_goes_at_once_the_rest_share_one_write_with_crlf(conn):
    conn.send_raw("PRIVMSG #c :hi")
    assert conn.transport.written == [b"PRIVMSG #c :hi\r\n"]
    conn.send_raw("PRIVMSG #c :there")
    conn.send_raw("PRIVMSG #c :all")
    await asyncio.sleep(0)
    assert conn.transport.written == [b"PRIVMSG #c :hi\r\n", b"PRIVMSG #c :there\r\nPRIVMSG #c :all\r\n"]


async def test_a_long_burst_starts_going_out_before_the_turn_ends_in_order(conn):
    lines = [f"PRIVMSG #c :{n:04} {'x' * 100}" for n in range(3 * FLUSH_SIZE // 100)]
    for line in lines:
        conn.send_raw(line)
    assert len(conn.transport.written) >= 2  # the server can start on them already
    await asyncio.sleep(0)
    assert b"".join(conn.transport.written) == "".join(f"{line}\r\n" for line in lines).encode()


async def test_quit_goes_out_at_once(conn):
    conn.send_raw("PRIVMSG #c :first")
    conn.send_raw("PRIVMSG #c :last")
    conn.send_raw("QUIT :bye")
    assert b"".join(conn.transport.written) == b"PRIVMSG #c :first\r\nPRIVMSG #c :last\r\nQUIT :bye\r\n"
