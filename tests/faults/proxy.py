"""A TCP fault proxy on loopback: put it between a client and its server, then break the link.

    proxy = FaultProxy("127.0.0.1", server_port)
    await proxy.start()                 # the client connects to proxy.port
    proxy.blackhole()                   # ... a dead route
    proxy.pass_()                       # new connections work again
    proxy.reset()                       # every connection ends with an RST
    await proxy.inject(b"<bad>", TO_CLIENT, boundary=(b"</message>",))
    await proxy.close()

Modes, switchable at any moment:
- `pass`: bytes flow both ways.
- `blackhole`: every connection open now, and every one accepted while the mode lasts, is
  *black*: its sockets stay open, bytes in both directions are read and dropped, and an end
  that closes is not told to the other (the route is dead). A black connection never carries
  data again (what was dropped cannot be replayed, so its stream is broken): when the mode
  ends, a black connection one end of which has gone is reset at the other end (as the first
  retransmission after the route's return meets an RST), and so is one whose end goes later.
  The proxy reads what it drops, so the kernel acknowledges it: TCP-level backstops
  (TCP_USER_TIMEOUT, keepalive) do not fire; only the application can notice the silence.
- `refuse`: each new connection is closed at once with an RST, as by a host whose server is
  down; connections open now are left alone.
- `reset()` (an action, not a mode): every current connection is closed with an RST toward
  both ends (SO_LINGER 0), so the server forgets the session too. New connections are accepted
  as the mode says.
- `inject(data, direction)`: bytes written into every passing connection toward the client or
  the server, optionally only at a boundary (right after forwarded bytes that end with one of
  `boundary`), so that they do not land inside a line or a stanza.
- `await forwarded(direction, match)`: returns right after the next bytes forwarded that way (for
  which `match(chunk)` is true), so that a fault can land at a chosen moment (e.g. just after
  the client wrote a message).

When one end closes or resets, the other end is closed the same way. Counters: bytes forwarded
and dropped per direction, connections accepted and refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

TO_SERVER = "to_server"
TO_CLIENT = "to_client"
DIRECTIONS = (TO_SERVER, TO_CLIENT)

PASS = "pass"
BLACKHOLE = "blackhole"
REFUSE = "refuse"

CHUNK = 65536
CONNECT_TIMEOUT = 5.0


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close at once, sending an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class Counters:
    connections: int = 0  # accepted and connected upstream
    refused: int = 0  # closed at once (refuse mode, or the upstream did not answer)
    forwarded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, 0))


class _Pipe:
    """One direction of one connection: reads from `source`, writes to `sink`."""

    def __init__(self, conn: _Connection, direction: str, source: asyncio.StreamReader,
                 sink: asyncio.StreamWriter) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.sink = sink
        self.at_boundary = True  # nothing forwarded yet, or the last bytes ended a unit
        self.waiting: list[tuple[bytes, tuple[bytes, ...], asyncio.Future]] = []
        self.watchers: list[tuple[Callable[[bytes], bool], asyncio.Future]] = []

    async def run(self) -> None:
        counters = self.conn.proxy.counters
        try:
            while chunk := await self.source.read(CHUNK):
                if self.conn.black:
                    counters.dropped[self.direction] += len(chunk)
                    continue
                self.sink.write(chunk)
                counters.forwarded[self.direction] += len(chunk)
                self._flush_injections(chunk)
                if self.watchers:
                    self._tell_watchers(chunk)
                await self.sink.drain()
            self.conn.closed_by(self, rst=False)
        except (ConnectionError, OSError):
            self.conn.closed_by(self, rst=True)

    def _tell_watchers(self, chunk: bytes) -> None:
        still = []
        for match, watcher in self.watchers:
            if watcher.done():
                continue
            if match(chunk):
                watcher.set_result(None)
            else:
                still.append((match, watcher))
        self.watchers = still

    def inject(self, data: bytes, boundary: tuple[bytes, ...], done: asyncio.Future) -> None:
        if not boundary or self.at_boundary:
            self._write(data, done)
        else:
            self.waiting.append((data, boundary, done))

    def _flush_injections(self, chunk: bytes) -> None:
        self.at_boundary = False
        still = []
        for data, boundary, done in self.waiting:
            if chunk.endswith(boundary):
                self._write(data, done)
            else:
                still.append((data, boundary, done))
        self.waiting = still
        # Without a pending boundary, any unit end will do for a later injection.
        self.at_boundary = chunk.endswith((b"\n", b">"))

    def _write(self, data: bytes, done: asyncio.Future) -> None:
        self.sink.write(data)
        self.conn.proxy.counters.injected[self.direction] += len(data)
        if not done.done():
            done.set_result(None)

    def cancel_waiting(self) -> None:
        for _, _, done in self.waiting:
            if not done.done():
                done.set_exception(ConnectionResetError("the connection closed before a boundary"))
        self.waiting = []


class _Connection:
    def __init__(self, proxy: FaultProxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 server: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.client_writer = client[1]
        self.server_writer = server[1]
        self.black = proxy.mode == BLACKHOLE
        self.pipes = {TO_SERVER: _Pipe(self, TO_SERVER, client[0], server[1]),
                      TO_CLIENT: _Pipe(self, TO_CLIENT, server[0], client[1])}
        self.tasks = [asyncio.create_task(pipe.run(), name=f"proxy {proxy.name} {d}")
                      for d, pipe in self.pipes.items()]
        self.closed = False
        self.gone = False  # an end has closed (hidden from the other while black)

    def closed_by(self, pipe: _Pipe, rst: bool) -> None:
        """One end went away: the other end learns it the same way (FIN or RST); through a
        dead route it learns nothing until the route is back, then gets an RST."""
        self.gone = True
        if self.black:
            if self.proxy.mode != BLACKHOLE:
                self.abort()
        elif rst:
            self.abort()
        elif not self.closed:
            with contextlib.suppress(OSError, RuntimeError):
                if pipe.sink.can_write_eof():
                    pipe.sink.write_eof()
            if all(p.source.at_eof() for p in self.pipes.values()):
                self.close()

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.server_writer):
            abort_with_rst(writer)
        self._forget()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.server_writer):
            writer.close()
        self._forget()

    def _forget(self) -> None:
        for pipe in self.pipes.values():
            pipe.cancel_waiting()
        self.proxy._connections.discard(self)


class FaultProxy:
    """Listens on a free loopback port and forwards each connection to `upstream`."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1",
                 name: str = "") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.name = name or f"proxy to {upstream_port}"
        self.mode = PASS
        self.counters = Counters()
        self._connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._tasks:  # their pipes end with the connections; one still connecting may not
            _, late = await asyncio.wait(self._tasks, timeout=1.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- faults ---------------------------------------------------------------------------
    def pass_(self) -> None:
        self.mode = PASS
        for conn in list(self._connections):
            if conn.black and conn.gone:
                conn.abort()

    def blackhole(self) -> None:
        self.mode = BLACKHOLE
        for conn in self._connections:
            conn.black = True

    def refuse(self) -> None:
        self.mode = REFUSE
        for conn in list(self._connections):
            if conn.black and conn.gone:
                conn.abort()

    def reset(self) -> int:
        """RST every current connection; returns how many there were."""
        conns = list(self._connections)
        for conn in conns:
            conn.abort()
        return len(conns)

    async def inject(self, data: bytes, direction: str, boundary: tuple[bytes, ...] = (),
                     timeout: float = 5.0) -> int:
        """Write `data` into every passing connection toward `direction`'s end, at the next
        `boundary` if given; returns once written everywhere (how many connections)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        loop = asyncio.get_running_loop()
        pending = []
        for conn in self._connections:
            if not conn.black:
                done = loop.create_future()
                conn.pipes[direction].inject(data, boundary, done)
                pending.append(done)
        async with asyncio.timeout(timeout):
            await asyncio.gather(*pending)
        return len(pending)

    async def forwarded(self, direction: str, match: Callable[[bytes], bool] = bool,
                        timeout: float = 5.0) -> None:
        """Return right after the next bytes forwarded toward `direction`'s end (on any
        connection) for which `match(chunk)` is true."""
        watcher = asyncio.get_running_loop().create_future()
        for conn in self._connections:
            conn.pipes[direction].watchers.append((match, watcher))
        async with asyncio.timeout(timeout):
            await watcher

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    # -- connections ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            abort_with_rst(writer)  # closing: the top of this connection's own task ends here
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == REFUSE:
            self.counters.refused += 1
            abort_with_rst(writer)
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                upstream = await asyncio.open_connection(*self.upstream)
        except (OSError, TimeoutError):
            self.counters.refused += 1
            abort_with_rst(writer)
            return
        self.counters.connections += 1
        conn = _Connection(self, (reader, writer), upstream)
        self._connections.add(conn)
        try:
            await asyncio.gather(*conn.tasks)
        finally:
            for task in conn.tasks:
                task.cancel()
            if not conn.closed and not conn.black:
                conn.abort()
