"""Received IRC lines through the real `HardenedConnection` and the relay client's and
adapter's handlers (bridge/irc).

A session as a server could send it: registration (CAP, SASL, 001, 005, nick refusals),
joins and NAMES, then channel traffic (PRIVMSG, NOTICE, CTCP, JOIN, PART, KICK, QUIT, NICK,
TOPIC, ACCOUNT, AWAY, PING, numerics) with tags, formatting and odd but legal spacing;
some lines corrupted (parameters missing, bytes flipped, CR/NUL, invalid UTF-8, overlong),
the whole cut into reads as its seed says. What must hold:

- nothing escapes `process_data` (asyncio would close the connection);
- a line that follows the grammar of modern IRC, with the parameters its command
  requires, is never dropped: dropping is for lines that cannot be understood;
- what the adapter emits carries text with no control character (XML cannot carry them),
  and no message is longer than a line (a correction, `s/a/aaaa/g`, can make one longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Iterator

from irc.client_aio import AioReactor

from bridge.config_types import IrcNetworkConfig, SaslConfig
from bridge.core.events import Kick, Message, Part, Presence, Topic
from bridge.irc.adapter import IrcAdapter
from bridge.irc.connection import MAX_RECEIVED_LINE, HardenedConnection, LineBuffer
from tests.fuzz.engine import Target, Violation
from tests.fuzz.mutate import mutate, reads, with_reads

ME = "xbridge"
ROOMS = ("#chan", "#Other[x]", "&local")
NICKS = ["alice", "Bob", "bob", "c[a]t", "c{a}t", "x^y", "d-_|\\", ME, "XBridge", "xb_", "ж", "a" * 40]
SERVER = "irc.test"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")


class _Transport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


# --- the grammar (modern IRC client protocol, "Message format"; IRCv3 message-tags) ---

_TAG = re.compile(r"\+?(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+(?:=[^\x00\r\n; ]*)?")
_SOURCE = re.compile(r"[^\x00\r\n !@]+(?:![^\x00\r\n @]+)?(?:@[^\x00\r\n ]+)?")
_USER_SOURCE = re.compile(r"[^\x00\r\n !@:#&][^\x00\r\n !@]*![^\x00\r\n @]+@[^\x00\r\n ]+")
_MIDDLE = re.compile(r"[^\x00\r\n :][^\x00\r\n ]*")
_CHANNEL = re.compile(r"[#&][^\x00\x07\r\n ,:]*")
_NICK = re.compile(r"[^\x00\r\n #&:][^\x00\r\n ]*")
#: Parameters each command needs at least, and what must be a channel or nick.
_NEEDS = {"PRIVMSG": 2, "NOTICE": 2, "TAGMSG": 1, "REDACT": 2, "JOIN": 1, "PART": 1, "KICK": 2, "QUIT": 0,
          "NICK": 1,
          "TOPIC": 2, "ACCOUNT": 1, "AWAY": 0, "PING": 1, "PONG": 1, "ERROR": 1, "CAP": 2,
          "AUTHENTICATE": 1, "MODE": 1, "INVITE": 2,
          "001": 2, "002": 2, "005": 2, "332": 3, "331": 2, "333": 3, "353": 4, "366": 3,
          "372": 2, "376": 2, "396": 2, "403": 2, "404": 2, "405": 2, "432": 2, "433": 3,
          "436": 2, "437": 2, "471": 2, "473": 2, "474": 2, "475": 2, "477": 2, "482": 2,
          "900": 3, "901": 2, "902": 2, "903": 2, "904": 2, "905": 2, "906": 2, "907": 2}
_FROM_USERS = {"PRIVMSG", "NOTICE", "TAGMSG", "REDACT", "JOIN", "PART", "KICK", "QUIT", "NICK", "TOPIC",
               "ACCOUNT", "AWAY", "INVITE"}
# ISUPPORT tokens as the spec writes them (modern IRC, "Feature Advertisement").
_ISUPPORT = re.compile(r"-[A-Z0-9]+|[A-Z0-9]+(?:=(?:"
                       r"(?<=PREFIX=)(?:\([A-Za-z]*\)\S*)?|"
                       r"(?<=CHANLIMIT=)(?:[^\s:,]+:\d*(?:,[^\s:,]+:\d*)*)?|"
                       r"(?<=MAXLIST=)(?:[^\s:,]+:\d*(?:,[^\s:,]+:\d*)*)?|"
                       r"(?<=TARGMAX=)(?:[^\s:,]+:\d*(?:,[^\s:,]+:\d*)*)?|"
                       r"(?<!PREFIX=)(?<!CHANLIMIT=)(?<!MAXLIST=)(?<!TARGMAX=)[^\s]*))?")


def well_formed(line: str) -> bool:
    """Does `line` follow the grammar, with what its command needs?"""
    if "\x00" in line or "\r" in line or "\n" in line:
        return False
    rest = line
    if rest.startswith("@"):
        tags, _, rest = rest[1:].partition(" ")
        if not all(_TAG.fullmatch(t) for t in tags.split(";")):
            return False
    source = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        if not _SOURCE.fullmatch(source):
            return False
    command, _, rest = rest.partition(" ")
    if not (command.isascii() and (command.isalpha() or (command.isdigit() and len(command) == 3))):
        return False
    command = command.upper()
    params: list[str] = []
    while rest:
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        middle, _, rest = rest.partition(" ")
        if not _MIDDLE.fullmatch(middle):
            return False
        params.append(middle)
    needs = _NEEDS.get(command, 1 if command.isdigit() else None)  # any numeric: its target
    if needs is None or len(params) < needs:
        return False
    if command in _FROM_USERS and (source is None or not _USER_SOURCE.fullmatch(source)):
        return False
    if command in ("PRIVMSG", "NOTICE", "TAGMSG", "REDACT", "TOPIC", "PART", "KICK") \
            and not _CHANNEL.fullmatch(params[0]) \
            and not _NICK.fullmatch(params[0]):
        return False
    if command == "JOIN" and not all(_CHANNEL.fullmatch(c) for c in params[0].split(",")):
        return False
    if command in ("NICK", "KICK") and not _NICK.fullmatch(params[-1 if command == "NICK" else 1]):
        return False
    if command == "005" and not all(_ISUPPORT.fullmatch(t) for t in params[1:-1]):
        return False
    if command == "353" and not _CHANNEL.fullmatch(params[2]):
        return False
    return True


# --- the generator ---

_WORDS = ["hi", "there", "\x02bold\x02", "\x0304red", "\x1ditalic", "\x01ACTION waves\x01", "\x01VERSION\x01",
          ":)", "é", "😀", "a\tb", "\x0f", "\x16", "  ", "x" * 300]
_TAG_VALUES = ["2026-11-25T10:00:00.000Z", "2026-11-25T10:00:00Z", "0001-01-01T00:00:00.000Z",
               "9999-12-31T23:59:59.999Z", "2026-13-45T99:99:99Z", "yesterday", "", "a\\sb\\:c\\\\",
               "abc123", "\\", "+0000"]
_TAG_KEYS = ["time", "account", "msgid", "msgid", "+reply", "+draft/reply", "+draft/react", "+draft/unreact",
             "batch", "example.com/x", "label"]
#: Corrections of one's own last line (bridge.irc.adapter: s/old/new/ after a line with a msgid).
_SEDS = ["s/hi/hello/", "s/hi/hihi/g", "s/x/xx/g", "s/x/" + "x" * 40 + "/g", "s/x/" + "x" * 400 + "/g",
         "s/there/\\/there/", "s/ //g", "s/\\//\\\\/", "s/é/😀/g", "s/h/", "s//x/"]
_ISUPPORT_TOKENS = ["CASEMAPPING=rfc1459", "CASEMAPPING=ascii", "CASEMAPPING=strict-rfc1459",
                    "CASEMAPPING=rfc7613", "PREFIX=(ov)@+", "PREFIX=(qaohv)~&@%+", "PREFIX=",
                    "PREFIX=(o)", "CHANMODES=b,k,l,imnpst", "CHANTYPES=#&", "NICKLEN=30",
                    "TOPICLEN=390", "TOPICLEN=", "TOPICLEN=0", "HOSTLEN=64", "HOSTLEN=x",
                    "CHANLIMIT=#:20", "MAXLIST=b:60", "TARGMAX=PRIVMSG:4,NOTICE:", "-SAFELIST",
                    "NETWORK=Test", "SAFELIST", "EXCEPTS", "STATUSMSG=@+"]
_CAPS = ("multi-prefix account-tag account-notify extended-join server-time message-tags away-notify "
         "sasl=PLAIN,EXTERNAL")


def _mask(rng: random.Random, nick: str | None = None) -> str:
    nick = nick or rng.choice(NICKS)
    return f"{nick}!{rng.choice(['u', '~u', 'user'])}@{rng.choice(['h.test', 'gateway/x', '2001:db8::1'])}"


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.choice((0, 1, 3, 10))))


def _line(rng: random.Random) -> str:
    who = _mask(rng) if rng.random() < 0.5 else "alice!u@h.test"
    room = rng.choice(ROOMS + ("#unlinked", ME)) if rng.random() < 0.7 else ROOMS[0]
    kind = rng.randrange(24)
    if kind < 6:
        own = who.startswith("alice!") and room == ROOMS[0]  # alice corrects her own lines
        text = rng.choice(_SEDS) if rng.random() < (0.4 if own else 0.05) else _text(rng)
        line = f":{who} {rng.choice(['PRIVMSG', 'PRIVMSG', 'NOTICE'])} {room} :{text}"
        if rng.random() < 0.5:
            line = f"@msgid={rng.choice(['m1', 'm2', 'm' + str(rng.randrange(100))])} {line}"
    elif kind == 6:
        extended = f" {rng.choice(['acct', '*'])} :Real Name" if rng.random() < 0.5 else ""
        line = f":{who} JOIN {room}{extended}"
    elif kind == 7:
        line = f":{who} PART {room}" + (f" :{_text(rng)}" if rng.random() < 0.5 else "")
    elif kind == 8:
        line = f":{who} KICK {room} {rng.choice(NICKS)}" + (f" :{_text(rng)}" if rng.random() < 0.5 else "")
    elif kind == 9:
        line = f":{who} QUIT" + (f" :{_text(rng)}" if rng.random() < 0.6 else "")
    elif kind == 10:
        line = f":{who} NICK {rng.choice([':', ''])}{rng.choice(NICKS)}"
    elif kind == 11:
        line = f":{who} TOPIC {room} :{_text(rng)}"
    elif kind == 12:
        line = f":{who} ACCOUNT {rng.choice(['acct', '*', 'other'])}"
    elif kind == 13:
        line = f":{who} AWAY" + (f" :{_text(rng)}" if rng.random() < 0.5 else "")
    elif kind == 14:
        line = rng.choice([f"PING :{rng.choice(['tok', 'a b'])}", f":{SERVER} PONG {SERVER} :tok",
                           f"ERROR :{_text(rng)}"])
    elif kind == 15:
        names = " ".join(rng.choice(["@", "+", "@+", "~", "", ""]) + rng.choice(NICKS)
                         + rng.choice(["", "!u@h"]) for _ in range(rng.choice((0, 1, 5, 50))))
        line = f":{SERVER} 353 {ME} {rng.choice('=*@')} {room} :{names}"
    elif kind == 16:
        line = f":{SERVER} 005 {ME} " + " ".join(rng.sample(_ISUPPORT_TOKENS, 4)) + " :are supported"
    elif kind == 17:
        line = rng.choice([f":{SERVER} 332 {ME} {room} :{_text(rng)}", f":{SERVER} 331 {ME} {room} :No topic",
                           f":{SERVER} 366 {ME} {room} :End", f":{SERVER} 396 {ME} new.host :is your host"])
    elif kind == 18:
        reply = rng.choice(["403", "405", "471", "473", "474", "475", "477", "482", "404"])
        line = f":{SERVER} {reply} {ME} {room} :refused"
    elif kind == 19:
        line = rng.choice([f":{SERVER} CAP * LS :{_CAPS}", f":{SERVER} CAP * LS * :{_CAPS}",
                           f":{SERVER} CAP {ME} ACK :{_CAPS}", f":{SERVER} CAP {ME} NAK :sasl",
                           f":{SERVER} CAP {ME} DEL :away-notify", "AUTHENTICATE +",
                           f":{SERVER} 900 {ME} {_mask(rng, ME)} acct :logged in",
                           f":{SERVER} 903 {ME} :ok", f":{SERVER} 904 {ME} :failed"])
    elif kind == 20:
        line = f":{SERVER} {rng.choice(['433', '432', '436', '437'])} * {ME} :in use"
    elif kind == 21:
        line = f":{SERVER} 001 {rng.choice([ME, 'xb_'])} :Welcome {_mask(rng, ME)}"
    elif kind == 22:
        line = rng.choice([f":{_mask(rng, ME)} {rng.choice(['JOIN', 'PART', 'NICK'])} {room}",
                           f"@+draft/react=👍;+draft/reply=m1 :{who} TAGMSG {room}",
                           f"@+draft/unreact=x :{who} TAGMSG {room}", f":{who} TAGMSG {room}",
                           f":{who} REDACT {room} m{rng.randrange(3)}" + rng.choice(["", " :oops"]),
                           f":{_mask(rng, ME)} PRIVMSG {room} :{_text(rng)}"])
    else:
        line = f":{SERVER} {rng.randint(1, 999):03d} {ME} {room} :{_text(rng)}"
    if rng.random() < 0.3:
        tags = ";".join(f"{rng.choice(_TAG_KEYS)}={rng.choice(_TAG_VALUES)}"
                        for _ in range(rng.randint(1, 3)))
        line = f"@{tags} {line}"
    return line


def _corrupt(rng: random.Random, line: str) -> bytes:
    data = line.encode()
    kind = rng.randrange(6)
    if kind == 0:
        return mutate(rng, data)
    if kind == 1:  # parameters missing
        return data[:rng.randrange(len(data) + 1)]
    if kind == 2:
        return data.replace(b" ", rng.choice([b"  ", b"   ", b" : "]), rng.randint(1, 3))
    if kind == 3:
        return data + rng.choice([b"\xff\xfe", b"\xc3", b"\x00", b"\r\r", b" :"])
    if kind == 4:
        return b" " * rng.randint(1, 3) + data
    return data + b"x" * rng.choice((600, MAX_RECEIVED_LINE))


def generate(rng: random.Random) -> bytes:
    lines = [f":{SERVER} CAP * LS :{_CAPS}".encode(), f":{SERVER} 001 {ME} :Welcome".encode(),
             f":{_mask(rng, ME)} JOIN {ROOMS[0]}".encode()][:rng.randint(0, 3)]
    for _ in range(rng.choice((1, 5, 20, 60))):
        line = _line(rng)
        lines.append(_corrupt(rng, line) if rng.random() < 0.15 else line.encode())
    stream = b"".join(line + rng.choice((b"\r\n", b"\r\n", b"\n")) for line in lines)
    return with_reads(rng, stream)


# --- the harness ---

_LOOP: asyncio.AbstractEventLoop | None = None


@contextlib.contextmanager
def _loop() -> Iterator[None]:
    global _LOOP
    _LOOP = asyncio.new_event_loop()
    try:
        yield
    finally:
        _LOOP.close()
        _LOOP = None


def _session(sasl: bool) -> tuple[IrcAdapter, HardenedConnection, list]:
    """An adapter whose relay client is connected (to nothing): what `connect` leaves."""
    config = IrcNetworkConfig(name="net", host="irc.test", nick=ME, alt_nicks=("xb_",),
                              sasl=SaslConfig("acct", "pw") if sasl else None)
    emitted: list = []
    adapter = IrcAdapter(config, emitted.append)
    for room in ROOMS:
        adapter.add_endpoint(room, {})
    client = adapter.client
    client._reactor = AioReactor(loop=_LOOP)
    conn = HardenedConnection(client._reactor, "net", client._dispatch)
    conn.buffer, conn.handlers, conn.real_server_name, conn.real_nickname = LineBuffer(), {}, "", ME
    conn.transport, conn.connected, conn.server = _Transport(), True, "irc.test"
    client.conn = conn
    client._begin_registration()
    return adapter, conn, emitted


def _watch(conn: HardenedConnection, failures: list) -> None:
    """Note each line a parser or handler raised on, with what it raised."""
    for name in ("_process_line", "_process_privmsg"):
        inner = getattr(conn, name)

        def watched(line, inner=inner):
            try:
                return inner(line)
            except Exception as exc:
                failures.append((line, exc))
                raise

        setattr(conn, name, watched)


async def _feed(data: bytes) -> tuple[list, list]:
    adapter, conn, emitted = _session(sasl=data[0] & 1 == 1)
    failures: list = []
    _watch(conn, failures)
    for chunk in reads(data):
        if not conn.connected:
            break
        conn.process_data(chunk)
    await asyncio.sleep(0)  # the writes gathered for this turn
    return failures, emitted


def check(data: bytes) -> None:
    failures, emitted = _LOOP.run_until_complete(_feed(data))
    for line, exc in failures:
        if well_formed(line):
            raise Violation(f"a well-formed line was dropped: {type(exc).__name__}: {exc}") from exc
    for event in emitted:
        if isinstance(event, Message) and len(event.text) > MAX_RECEIVED_LINE:
            raise Violation(f"a message of {len(event.text):,} characters, from lines of at most "
                            f"{MAX_RECEIVED_LINE}")
        texts = {Message: ("text",), Topic: ("text",), Part: ("reason",), Kick: ("reason",),
                 Presence: ("status",)}.get(type(event), ())
        for name in texts:
            if _CONTROL.search(getattr(event, name)):
                raise Violation(f"{type(event).__name__}.{name} holds a control character")


TARGET = Target("irc-lines", "IRC byte stream in reads -> HardenedConnection + relay client + adapter",
                generate, check, bound=0.5, full=1_000_000, context=_loop)
