"""The `irc` library's asyncio connection, hardened against bad input.

`irc.client_aio.AioConnection` decodes received lines as strict UTF-8 and
lets every exception from parsing or from an event handler escape into
`asyncio.Protocol.data_received`, where asyncio treats it as fatal and closes
the transport. One line of invalid UTF-8, a line of only spaces, a line with
leading spaces or a PRIVMSG without its parameters is enough to drop the
connection (and the rest of that read). This subclass overrides the minimum:

- `buffer_class`: lines are split on LF (a CR before it is dropped), decoded
  as UTF-8 with a per-line latin-1 fallback, and bounded in length.
- `process_data`: each line is parsed and dispatched on its own; a line that
  fails is logged as `irc_line_dropped` and skipped. A user's PRIVMSG, most of
  what a busy channel sends, takes a short parser of its own.
- `_process_line`: parameters are split on spaces only (`parse`), as the grammar says;
  the library splits on whatever Python calls white space, so `PING <tab>` had no
  parameter and failed, and a parameter holding a tab or a no-break space was cut.
- `features`: an ISUPPORT token whose value the library cannot parse (`PREFIX=(ov)@+)x`)
  is skipped alone, logged; the rest of its 005 line still counts.
- `_handle_other`: a QUIT without a reason (it is optional: modern IRC, "QUIT
  message") is a QUIT all the same; the library drops it.
- `_handle_message`: CTCP as the modern spec has it (specs/irc/ctcp.md): only
  a text that starts with 0x01 is CTCP, the final 0x01 is optional, and no
  obsolete low-level dequoting (which turns "\\x10n" into a newline).
- `send_raw`: the single place where lines reach the socket refuses CR, LF
  and NUL, whatever the caller did; lines sent in one loop turn share one write
  (`bridge.core.coalesce`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from irc.client import Event, NickMask, ServerNotConnectedError, is_channel
from irc.client_aio import AioConnection
from irc.events import Command
from irc.features import FeatureSet
from irc.message import Tag

from bridge.core.coalesce import Coalescer

log = structlog.get_logger(__name__)

#: Longest line kept, CR LF included: 8191 bytes of message tags (IRCv3 message-tags,
#: "Size limit") plus a 512-byte message. Anything longer is dropped unread: no IRC
#: server sends it, and a parser need not see it.
MAX_RECEIVED_LINE = 8191 + 512


class LineBuffer:
    """Received bytes -> decoded lines, never holding more than one line's limit."""

    def __init__(self, limit: int = MAX_RECEIVED_LINE) -> None:
        self.limit = limit
        self._data = bytearray()
        self._skipping = False  # inside an overlong line: drop up to its LF
        self.overlong = 0

    def feed(self, data: bytes) -> None:
        self._data += data

    def __iter__(self):
        while True:
            end = self._data.find(b"\n")
            if end < 0:
                if len(self._data) >= self.limit:  # longer than the limit once its LF comes
                    if not self._skipping:
                        self.overlong += 1
                    self._skipping = True
                    self._data.clear()
                return
            raw = bytes(self._data[:end])
            del self._data[:end + 1]
            if self._skipping:
                self._skipping = False
            elif end + 1 > self.limit:
                self.overlong += 1
            else:
                yield decode(raw.removesuffix(b"\r"))


def decode(raw: bytes) -> str:
    """UTF-8, or latin-1 (which decodes anything) when the line is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse(line: str) -> tuple[str | None, str | None, str, list[str]]:
    """A received line's tags, source, command and parameters, as modern IRC's "Message
    format" reads them: parts and parameters are separated by spaces (0x20) and nothing
    else; a parameter that starts with a colon is the last and may hold spaces."""
    tags = source = None
    if line[:1] == "@":
        tags, _, line = line[1:].partition(" ")
        line = line.lstrip(" ")
    if line[:1] == ":":
        source, _, line = line[1:].partition(" ")
        line = line.lstrip(" ")
    command, _, rest = line.partition(" ")
    if not command:
        raise ValueError("a line without a command")
    params: list[str] = []
    while rest := rest.lstrip(" "):
        if rest[0] == ":":
            params.append(rest[1:])
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    return tags, source, command, params


class Features(FeatureSet):
    """ISUPPORT tokens, each on its own: one the library cannot parse is skipped."""

    def __init__(self, network: str) -> None:
        super().__init__()
        self.network = network

    def load_feature(self, feature: str) -> None:
        try:
            super().load_feature(feature)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            log.warning("irc_isupport_token_skipped", network=self.network,
                        token=feature.partition("=")[0][:32], error=type(exc).__name__)


class HardenedConnection(AioConnection):
    buffer_class = LineBuffer

    def __init__(self, reactor, network: str, handler: Callable[[HardenedConnection, Event], object]) -> None:
        """`handler(conn, event)` takes every event of this connection, instead of the
        reactor's sorted list of global handlers (one lock and one sort per line)."""
        super().__init__(reactor)
        self.handler = handler
        self.network = network
        self.features = Features(network)
        self.last_received = time.monotonic()
        self.dropped_lines = 0
        self._writes = Coalescer(self._write)

    def process_data(self, new_data: bytes) -> None:
        self.last_received = time.monotonic()
        overlong = self.buffer.overlong
        self.buffer.feed(new_data)
        for line in self.buffer:
            if not self.connected:  # a handler hung up: the rest is for nobody
                break
            log.debug("irc_recv", network=self.network, line=line)
            if not line:
                continue
            try:
                if not self._process_privmsg(line):
                    self._process_line(line)
            except Exception as exc:
                self.dropped_lines += 1
                log.warning("irc_line_dropped", network=self.network, error=type(exc).__name__,
                            command=_command_of(line))
                log.debug("irc_line_dropped_detail", network=self.network, line=line, exc_info=True)
        if self.buffer.overlong != overlong:
            self.dropped_lines += self.buffer.overlong - overlong
            log.warning("irc_line_dropped", network=self.network, error="overlong",
                        limit=self.buffer.limit)

    def _process_privmsg(self, line: str) -> bool:
        """A user's `PRIVMSG target :text` or NOTICE (or `PRIVMSG target word`), the bulk of
        a busy channel, parsed without the library's generic grammar; False for any other line.

        Gives the same events as `_process_line` except its `all_raw_messages`,
        which nothing here listens to, and where the library is wrong: it splits
        parameters on what Python calls white space, so a last parameter without a colon
        made only of IRC formatting codes (0x1C-0x1F) vanished and the line failed."""
        tags = None
        if line[0] == "@":
            tags, _, line = line[1:].partition(" ")
        if line[:1] != ":" or not self.real_server_name:
            return False
        prefix, _, line = line[1:].partition(" ")
        command, _, line = line.partition(" ")
        target, _, text = line.partition(" ")
        if text[:1] == ":":
            text = text[1:]
        elif not text or " " in text:
            return False
        if command not in ("PRIVMSG", "NOTICE") or not prefix or not target:
            return False
        self._handle_message([target, text], command.lower(), NickMask(prefix), Tag.from_group(tags))
        return True

    def _handle_event(self, event: Event) -> None:
        self.handler(self, event)

    def _process_line(self, line: str) -> None:
        """The library's dispatch of one line (without its `all_raw_messages` event,
        which nothing here listens to), over `parse`."""
        tags, prefix, word, arguments = parse(line)
        source = NickMask.from_group(prefix)
        command = Command.lookup(word)
        if source and not self.real_server_name:
            self.real_server_name = source
        if command == "nick":
            if source.nick == self.real_nickname:
                self.real_nickname = arguments[0]
        elif command == "welcome":  # the nick we were given, whatever we asked for
            self.real_nickname = arguments[0]
        elif command == "featurelist":
            self.features.load(arguments)
        handler = self._handle_message if command in ("privmsg", "notice") else self._handle_other
        handler(arguments, command, source, Tag.from_group(tags))

    def _handle_other(self, arguments, command, source, tags) -> None:
        if command == "quit" and not arguments:
            arguments = [""]
        super()._handle_other(arguments, command, source, tags)

    def _handle_message(self, arguments, command, source, tags) -> None:
        target, text = arguments[0], arguments[1]
        public = bool(is_channel(target))
        if text.startswith("\x01"):
            body = text[1:].removesuffix("\x01")
            ctcp, _, param = body.partition(" ")
            ctcp = ctcp.upper()
            kind = "ctcp" if command == "privmsg" else "ctcpreply"
            self._handle_event(Event(kind, source, target, [ctcp, param], tags))
            if kind == "ctcp" and ctcp == "ACTION":
                self._handle_event(Event("action", source, target, [param], tags))
            return
        if command == "privmsg":
            kind = "pubmsg" if public else "privmsg"
        else:
            kind = "pubnotice" if public else "privnotice"
        self._handle_event(Event(kind, source, target, [text], tags))

    def send_raw(self, string: str) -> None:
        """Queue one line for this loop turn's write (QUIT goes out at once, since
        the library closes the transport right after it)."""
        if "\r" in string or "\n" in string or "\0" in string:
            raise ValueError("CR, LF or NUL in an outgoing IRC line")
        if self.transport is None:
            raise ServerNotConnectedError("Not connected.")
        log.debug("irc_send", network=self.network, line=_redacted(string))
        self._writes.add(self._prep_message(string))
        if string.startswith("QUIT"):
            self._writes.flush()

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


def _command_of(line: str) -> str:
    """The command word of a raw line, for logs (never the message text)."""
    words = line.split(" ")
    for word in words[:3]:
        if word and word[0] not in "@:":
            return word[:32]
    return ""


def _redacted(line: str) -> str:
    """`line` for a debug log, without passwords."""
    command, _, rest = line.partition(" ")
    if command in ("PASS", "WEBIRC") or (command == "AUTHENTICATE" and rest not in ("PLAIN", "+", "*")):
        return f"{command} <redacted>"
    return line
