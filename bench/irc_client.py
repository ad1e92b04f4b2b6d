"""A minimal IRC client for load: raw lines on a plain socket, nothing parsed but
what the bench needs (001, JOIN confirmation, PING, PRIVMSG)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: on_privmsg(sender_nick, target, text, arrival_ns)
PrivmsgHandler = Callable[[str, str, str, int], None]


class IrcError(Exception):
    pass


class IrcClient(asyncio.Protocol):
    """One registered IRC user. `on_privmsg` sees every PRIVMSG it receives."""

    def __init__(self, host: str, port: int, nick: str) -> None:
        self.host, self.port, self.nick = host, port, nick
        self.on_privmsg: PrivmsgHandler | None = None
        self.on_welcome: Callable[[IrcClient], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.welcomed: asyncio.Future[None] | None = None
        self.joins: dict[str, asyncio.Future[None]] = {}
        self.closed: str | None = None
        self._buffer = b""
        self._writable = asyncio.Event()
        self._writable.set()

    # -- connecting ----------------------------------------------------------------

    async def connect(self, timeout: float = 15.0) -> IrcClient:
        """Connect and register; returns after 001."""
        async with asyncio.timeout(timeout):
            await self.start()
            await self.welcomed
        return self

    async def start(self) -> None:
        """Connect and send NICK/USER without waiting for registration."""
        loop = asyncio.get_running_loop()
        self.welcomed = loop.create_future()
        await loop.create_connection(lambda: self, self.host, self.port)
        self.send(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :bench\r\n")

    async def join(self, channel: str, timeout: float = 15.0) -> None:
        """JOIN and wait for the end of the NAMES list (the join is complete)."""
        waiter = self.joins[channel.lower()] = asyncio.get_running_loop().create_future()
        self.send(f"JOIN {channel}\r\n")
        async with asyncio.timeout(timeout):
            await waiter

    def close(self, message: str = "bench done") -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"QUIT :{message}\r\n".encode())
            self.transport.close()

    # -- sending -------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise IrcError(f"{self.nick}: connection closed ({self.closed})")
        self.transport.write(data.encode() if isinstance(data, str) else data)

    @staticmethod
    def privmsg(target: str, text: str) -> bytes:
        return f"PRIVMSG {target} :{text}\r\n".encode()

    async def drain(self) -> None:
        await self._writable.wait()

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.closed or str(exc or "closed by server")
        self._writable.set()
        error = IrcError(f"{self.nick}: connection lost ({self.closed})")
        for future in (self.welcomed, *self.joins.values()):
            if future is not None and not future.done():
                future.set_exception(error)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        lines = (self._buffer + data).split(b"\r\n")
        self._buffer = lines.pop()
        for raw in lines:
            self._line(raw.decode("utf-8", "replace"), now)

    def _line(self, line: str, now: int) -> None:
        if line.startswith(":"):
            prefix, _, rest = line[1:].partition(" ")
        else:
            prefix, rest = "", line
        command, _, params = rest.partition(" ")
        if command == "PRIVMSG":
            target, _, text = params.partition(" :")
            if self.on_privmsg is not None:
                self.on_privmsg(prefix.partition("!")[0], target, text, now)
        elif command == "PING":
            self.send(f"PONG {params}\r\n")
        elif command == "001":
            if not self.welcomed.done():
                self.welcomed.set_result(None)
            if self.on_welcome is not None:
                self.on_welcome(self)
        elif command == "366":  # RPL_ENDOFNAMES: <me> <channel> :End of /NAMES list.
            channel = params.split(" ")[1].lower()
            waiter = self.joins.get(channel)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif command in ("433", "432") and not self.welcomed.done():
            self.welcomed.set_exception(IrcError(f"nick {self.nick} refused: {line}"))
        elif command == "ERROR":
            self.closed = line
