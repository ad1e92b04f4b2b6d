"""A scripted IRC server for tests: just enough IRC to register a client and
let it join channels, and the means to misbehave on cue.

It answers CAP (LS/REQ/END), PASS, SASL PLAIN, NICK (refusing the nicks in
`taken` with 433), USER, JOIN (echo, NAMES), TOPIC (echo), PING, and PRIVMSG with
echo-message (the echo carrying a `msgid` tag with message-tags), and
records every line it receives. A test then drives each connection through
its `Client`: `send` writes raw bytes or lines (garbage included), `expect`
waits for a line from the client, `silent = True` turns the link into a
black hole (reads, never answers), `pongs = False` leaves PINGs unanswered
(and so the client's lines unconfirmed), `close` hangs up.

Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib

SERVER = "scripted.test"
HOST = "127.0.0.1"


class Client:
    def __init__(self, ircd: ScriptedIrcd, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ircd = ircd
        self.reader = reader
        self.writer = writer
        self.received: list[str] = []
        self.nick: str | None = None
        self.user: str | None = None
        self.password: str | None = None
        self.account: str | None = None
        self.caps: set[str] = set()
        self.channels: set[str] = set()
        self.silent = False
        self.pongs = True
        self.registered = asyncio.Event()
        self.closed = asyncio.Event()
        self._cap_hold = False
        self._sasl_started = False
        self._arrived = asyncio.Condition()

    @property
    def mask(self) -> str:
        return f"{self.nick}!~{self.user}@{HOST}"

    def send(self, data: str | bytes) -> None:
        """A str is one line (CRLF added); bytes go out exactly as given."""
        if self.writer.is_closing():
            return
        self.writer.write(data if isinstance(data, bytes) else data.encode() + b"\r\n")

    def reply(self, numeric: str, *params: str) -> None:
        *middle, last = params
        self.send(" ".join([f":{SERVER}", numeric, self.nick or "*", *middle, ":" + last]))

    async def expect(self, start: str, timeout: float = 5.0, after: int = 0) -> str:
        """The first received line (from index `after` on) that starts with `start`."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                while True:
                    for line in self.received[after:]:
                        if line.startswith(start):
                            return line
                    await self._arrived.wait()

    def lines(self, start: str) -> list[str]:
        return [line for line in self.received if line.startswith(start)]

    def close(self) -> None:
        self.writer.close()

    async def serve(self) -> None:
        try:
            while line := await self.reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                async with self._arrived:
                    self.received.append(text)
                    self._arrived.notify_all()
                if not self.silent:
                    self.handle(text)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self.writer.close()

    def handle(self, line: str) -> None:
        if line.startswith("@"):  # message tags: recorded, not used
            line = line.partition(" ")[2]
        head, sep, trailing = line.partition(" :")
        words = head.split()
        if not words:
            return
        command, args = words[0].upper(), words[1:] + ([trailing] if sep else [])
        handler = getattr(self, f"on_{command.lower()}", None)
        if handler is not None:
            handler(args)

    # Registration

    def on_cap(self, args: list[str]) -> None:
        sub = args[0].upper() if args else ""
        if sub == "LS":
            self._cap_hold = True
            offered = list(self.ircd.caps) + (["sasl=PLAIN"] if self.ircd.accounts is not None else [])
            if self.ircd.cap_ls_lines:  # CAP 302: one capability a line, "*" until the last
                for cap in offered[:-1]:
                    self.send(f":{SERVER} CAP * LS * :{cap}")
                offered = offered[-1:]
            self.send(f":{SERVER} CAP * LS :{' '.join(offered)}")
        elif sub == "REQ":
            wanted = args[-1].split()
            offered = set(self.ircd.caps) | ({"sasl"} if self.ircd.accounts is not None else set())
            if all(cap in offered for cap in wanted):
                self.caps |= set(wanted)
                self.send(f":{SERVER} CAP * ACK :{' '.join(wanted)}")
            else:
                self.send(f":{SERVER} CAP * NAK :{' '.join(wanted)}")
        elif sub == "END":
            self._cap_hold = False
            self._maybe_register()

    def on_pass(self, args: list[str]) -> None:
        self.password = args[0] if args else None

    def on_authenticate(self, args: list[str]) -> None:
        if not self._sasl_started:
            self._sasl_started = True
            self.send("AUTHENTICATE +")
            return
        _, user, password = base64.b64decode(args[0]).decode().split("\0")
        if self.ircd.accounts.get(user) == password:
            self.account = user
            self.reply("900", self.mask, user, f"You are now logged in as {user}")
            self.reply("903", "SASL authentication successful")
        else:
            self.reply("904", "SASL authentication failed")

    def on_nick(self, args: list[str]) -> None:
        nick = args[0]
        if nick in self.ircd.taken or any(c.nick == nick for c in self.ircd.clients if c is not self):
            self.reply("433", nick, "Nickname is already in use")
            return
        if self.registered.is_set():
            self.send(f":{self.mask} NICK :{nick}")
        self.nick = nick
        self._maybe_register()

    def on_user(self, args: list[str]) -> None:
        self.user = args[0]
        self._maybe_register()

    def _maybe_register(self) -> None:
        if self.registered.is_set() or self._cap_hold or not (self.nick and self.user):
            return
        if self.ircd.password is not None and self.password != self.ircd.password:
            self.send("ERROR :Closing link: bad password")
            self.close()
            return
        self.reply("001", f"Welcome to the scripted IRC network {self.mask}")
        self.reply("005", "CASEMAPPING=rfc1459", "PREFIX=(ov)@+", "CHANTYPES=#", "TOPICLEN=300",
                   "are supported by this server")
        self.reply("422", "MOTD File is missing")
        self.registered.set()

    # Channels

    def on_join(self, args: list[str]) -> None:
        for channel in args[0].split(","):
            self.channels.add(channel)
            self.send(f":{self.mask} JOIN {channel}")
            self.reply("353", "=", channel, f"{self.nick} @op")
            self.reply("366", channel, "End of /NAMES list.")

    def on_topic(self, args: list[str]) -> None:
        if len(args) >= 2:
            self.send(f":{self.mask} TOPIC {args[0]} :{args[1]}")

    def on_privmsg(self, args: list[str]) -> None:
        if "echo-message" in self.caps and len(args) >= 2:
            self.ircd.msgids += 1
            tags = f"@msgid=scripted{self.ircd.msgids} " if "message-tags" in self.caps else ""
            self.send(f"{tags}:{self.mask} PRIVMSG {args[0]} :{args[1]}")

    def on_ping(self, args: list[str]) -> None:
        if self.pongs:
            self.send(f":{SERVER} PONG {SERVER} :{args[-1] if args else ''}")

    def on_quit(self, args: list[str]) -> None:
        self.close()


class ScriptedIrcd:
    def __init__(
        self,
        *,
        caps: tuple[str, ...] = ("multi-prefix", "server-time", "message-tags", "account-tag",
                                 "extended-join", "away-notify", "echo-message"),
        accounts: dict[str, str] | None = None,
        password: str | None = None,
        taken: tuple[str, ...] = (),
        cap_ls_lines: bool = False,
    ) -> None:
        self.caps = caps
        self.cap_ls_lines = cap_ls_lines
        self.accounts = accounts  # SASL PLAIN offered when set
        self.password = password
        self.taken = set(taken)
        self.clients: list[Client] = []
        self.host = HOST
        self.port = 0
        self.msgids = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._connected = asyncio.Condition()

    async def start(self) -> ScriptedIrcd:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in self.clients:
            client.close()
        if self._tasks:  # closed sockets end them; cancelling makes asyncio log noise
            _, stuck = await asyncio.wait(self._tasks, timeout=2)
            for task in stuck:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    async def client(self, n: int = 0, timeout: float = 5.0) -> Client:
        """The n-th connection (0-based), once it is registered."""
        async with asyncio.timeout(timeout):
            async with self._connected:
                await self._connected.wait_for(lambda: len(self.clients) > n)
            client = self.clients[n]
            await client.registered.wait()
            return client

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = Client(self, reader, writer)
        async with self._connected:
            self.clients.append(client)
            self._connected.notify_all()
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await client.serve()
        finally:
            self._tasks.discard(task)


class Recorder:
    """An adapter's event sink for tests: keeps every event, waits for one."""

    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate, timeout: float = 5.0):
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(adapter):
    """Run `adapter` for the duration of the block, then close it."""
    task = asyncio.create_task(adapter.run())
    try:
        yield adapter
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await adapter.close()
