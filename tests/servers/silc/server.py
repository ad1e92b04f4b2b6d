"""SilcTestServer: connections, handshakes and packet relay of the test server.

silc-spec 4.1 drives a connection: key exchange (ske.respond), connection
authentication (silc-ke-auth 3), NEW_CLIENT and NEW_ID, then packets.  The
server relays channel messages without decrypting them (silc-pp 2.5.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable

import structlog

from . import commands, ske
from .cell import Cell, Client
from .crypto import CIPHERS, KeyPair, SilcPublicKey, cached_key_pair, digest
from .identifiers import client_id, prepare_nickname, server_id
from .numbers import CONN_CLIENT, AuthMethod, NotifyType, PacketType, Status
from .packet import MalformedPacket, Packet, PacketError, PacketStream
from .wire import ID_CHANNEL, ID_CLIENT, ID_SERVER, Command, ConnectionAuth, DecodeError, NewClient, SilcId, u16, u32

log = structlog.get_logger(__name__)

AUTH_METHODS = {"none": AuthMethod.NONE, "passphrase": AuthMethod.PASSPHRASE,
                "publickey": AuthMethod.PUBLIC_KEY}


class Disconnect(Exception):
    """Close this connection after sending DISCONNECT with `status`."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


class SilcTestServer:
    """A SILC server on 127.0.0.1 for tests; see the package docstring."""

    def __init__(
        self,
        *,
        auth: str = "none",
        passphrase: str | None = None,
        client_keys: tuple[str, ...] = (),
        algorithms: ske.Algorithms | None = None,
        key_pair: KeyPair | None = None,
        server_name: str = "silc.test",
        motd: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        handshake_timeout: float = 10.0,
    ) -> None:
        if auth not in AUTH_METHODS:
            raise ValueError(f"auth must be one of {sorted(AUTH_METHODS)}, not {auth!r}")
        if auth == "passphrase" and not passphrase:
            raise ValueError("auth='passphrase' needs passphrase=")
        self.auth = auth
        self.passphrase = passphrase
        self.client_keys = {fp.lower().replace(":", "").replace(" ", "") for fp in client_keys}
        self.algorithms = algorithms or ske.Algorithms()
        self.motd = motd
        self.host = host
        self.port = port
        self.handshake_timeout = handshake_timeout
        self.cell = Cell(server_name, key_pair or cached_key_pair("silc-test-server", "UN=silcd, HN=silc.test"))
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Condition()

    # --- lifecycle ---

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.cell.server_id = server_id(ipaddress.ip_address(self.host).packed[-4:], self.port)
        log.info("silc_test_server_started", host=self.host, port=self.port, fingerprint=self.fingerprint)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # its connections next: waiting for them first never ends on uvloop
        await self.drop_all()

    async def __aenter__(self) -> SilcTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- what tests look at ---

    @property
    def server_name(self) -> str:
        return self.cell.server_name

    @property
    def server_id(self) -> bytes:
        return self.cell.server_id

    @property
    def public_key(self) -> SilcPublicKey:
        return self.cell.key_pair.public

    @property
    def fingerprint(self) -> str:
        """SHA-1 of the server's encoded SILC public key, lowercase hex (silc-spec 3.11)."""
        return self.public_key.fingerprint

    def nicks(self) -> list[str]:
        return sorted(c.nick for c in self.cell.registered())

    def channel_nicks(self, channel: str) -> list[str]:
        found = self.cell.channel_by_name(channel)
        return sorted(c.nick for c in found.members) if found else []

    def topic(self, channel: str) -> str | None:
        found = self.cell.channel_by_name(channel)
        return found.topic if found else None

    def channel_mode(self, channel: str) -> int | None:
        """The channel's mode mask (silc-commands CMODE), None if there is no such channel."""
        found = self.cell.channel_by_name(channel)
        return found.mode if found else None

    def client(self, nick: str) -> Client | None:
        """The connection behind a nickname (its `.fingerprint`, `.session`, ...)."""
        return self.cell.client_by_nick(nick)

    @property
    def connections(self) -> int:
        return len(self.cell.clients)

    async def wait_until(self, predicate: Callable[[SilcTestServer], bool], timeout: float = 5.0) -> None:
        """Wait until `predicate(server)` holds, e.g. `lambda s: "bob" in s.nicks()`."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)

    # --- what tests do ---

    def change_key(self, key_pair: KeyPair | None = None) -> str:
        """Use another key pair from the next key exchange on (to test key
        pinning); returns the new fingerprint.  Existing sessions go on."""
        self.cell.key_pair = key_pair or KeyPair.generate("UN=silcd, HN=silc.test")
        log.info("silc_test_server_key_changed", fingerprint=self.fingerprint)
        return self.fingerprint

    async def kick(self, nick: str, channel: str, comment: str = "") -> None:
        """Kick as the server: KICKED with the Server ID as kicker."""
        client, found = self._require(nick), self.cell.channel_by_name(channel)
        if found is None or client not in found.members:
            raise KeyError(f"{nick} is not on {channel}")
        self.cell.kick(found, client, comment, self.cell.server_id_payload)
        await self._notify_changed()

    async def kill(self, nick: str, comment: str = "killed by test") -> None:
        """KILLED to the victim's channels and the victim (silc-commands KILL),
        then DISCONNECT and close."""
        client = self._require(nick)
        args = [(1, client.id_payload), (2, comment.encode()), (3, self.cell.server_id_payload)]
        for peer in [*self.cell.peers_of(client), client]:
            peer.notify(NotifyType.KILLED, *args)
        self.cell.forget(client, notify=False)
        await self._close(client, Status.ERR_NO_ROUTER_PRIV, comment)

    async def disconnect(self, nick: str, message: str = "disconnected by test") -> None:
        """DISCONNECT (silc-pp 2.3.3) to one client, then close; peers see SIGNOFF."""
        client = self._require(nick)
        self.cell.forget(client, message=message)
        await self._close(client, Status.OK, message)

    async def drop(self, nick: str) -> None:
        """Cut one client's TCP connection without a word; peers see SIGNOFF."""
        client = self._require(nick)
        client.stream.writer.transport.abort()
        await self.wait_until(lambda s: client not in s.cell.clients)

    def blackhole(self, nick: str) -> None:
        """Stop answering one client without closing its connection: nothing
        reaches it any more and what it sends is read and dropped (a dead
        route, as the client sees it)."""
        self._require(nick).blackholed = True

    async def drop_all(self) -> None:
        """Cut every connection at once (to test reconnects)."""
        for client in list(self.cell.clients):
            client.stream.writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def _require(self, nick: str) -> Client:
        client = self.cell.client_by_nick(nick)
        if client is None:
            raise KeyError(f"no client {nick!r}")
        return client

    async def _close(self, client: Client, status: Status, message: str) -> None:
        client.send(PacketType.DISCONNECT, bytes([status]) + message.encode())
        client.stream.writer.close()
        await self._notify_changed()

    async def _notify_changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- one connection ---

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        host = writer.get_extra_info("peername")[0]
        client = Client(self.cell, PacketStream(reader, writer), host)
        self.cell.clients.append(client)
        try:
            await self._handshake(client)
            await self._serve(client)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("silc_client_closed", nick=client.nick or None, host=host)
        except asyncio.TimeoutError:
            log.warning("silc_client_timeout", nick=client.nick or None, host=host)
        except ske.SkeError as exc:
            log.warning("silc_ske_failed", host=host, status=exc.status.name, detail=str(exc))
        except PacketError as exc:  # framing lost, or a bad MAC: nothing after it can be trusted
            log.warning("silc_packet_unframeable", nick=client.nick or None, host=host, error=str(exc))
        except Disconnect as exc:
            log.warning("silc_client_refused", nick=client.nick or None, host=host,
                        status=exc.status.name, reason=str(exc))
            client.send(PacketType.DISCONNECT, bytes([exc.status]) + str(exc).encode())
        finally:
            self.cell.forget(client)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
            self._tasks.discard(task)
            await self._notify_changed()

    async def _handshake(self, client: Client) -> None:
        ids = dict(src_type=ID_SERVER, src_id=self.cell.server_id)
        client.session = await ske.respond(
            client.stream, lambda: self.cell.key_pair, self.algorithms, ids, self.handshake_timeout
        )
        s = client.session
        log.info("silc_ske_done", host=client.host, cipher=s.cipher, hmac=s.hmac, hash=s.hash,
                 group=s.group, client_key=client.fingerprint)
        await self._authenticate(client)
        await self._register(client)

    async def _next_handshake_packet(self, client: Client) -> Packet:
        while True:
            packet = await asyncio.wait_for(client.stream.receive(), self.handshake_timeout)
            if packet.type != PacketType.HEARTBEAT:
                return packet

    async def _authenticate(self, client: Client) -> None:
        """silc-ke-auth 3; CONNECTION_AUTH is needed even for "none" (README)."""
        while True:
            packet = await self._next_handshake_packet(client)
            if packet.type == PacketType.CONNECTION_AUTH_REQUEST:
                # silc-pp 2.3.15: the same payload back, with the method we want.
                client.send(PacketType.CONNECTION_AUTH_REQUEST,
                            u16(CONN_CLIENT) + u16(AUTH_METHODS[self.auth]))
                continue
            if packet.type != PacketType.CONNECTION_AUTH:
                raise PacketError(f"expected CONNECTION_AUTH, got {packet!r}")
            try:
                auth = ConnectionAuth.decode(packet.data)
                ok = auth.conn_type == CONN_CLIENT and self._auth_ok(client, auth.auth_data)
            except DecodeError:
                ok = False
            if not ok:
                client.send(PacketType.FAILURE, u32(1))  # SILC_AUTH_FAILED, silc-ke-auth 3.3
                raise Disconnect(Status.ERR_AUTH_FAILED, "authentication failed")
            client.send(PacketType.SUCCESS, u32(0))  # SILC_AUTH_OK
            return

    def _auth_ok(self, client: Client, data: bytes) -> bool:
        if self.auth == "none":
            return True  # like silcd: whatever the client sent
        if self.auth == "passphrase":
            return data == self.passphrase.encode()
        # silc-ke-auth 3.2.2: a signature over hash(HASH | start payload), by a
        # key we know, which must be the key the client showed in SKE.
        key, s = client.public_key, client.session
        if key is None or key.fingerprint not in self.client_keys:
            return False
        return key.verify(data, digest(s.hash, s.ske_hash + s.initiator_start))

    async def _register(self, client: Client) -> None:
        while (packet := await self._next_handshake_packet(client)).type != PacketType.NEW_CLIENT:
            log.warning("silc_packet_before_registration", host=client.host, packet=repr(packet))
        try:
            new = NewClient.decode(packet.data)
            nick = new.nickname or new.username  # silcd's optional nickname field (README)
            client.prepared_nick = prepare_nickname(nick)
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            raise Disconnect(Status.ERR_INCOMPLETE_INFORMATION, f"bad NEW_CLIENT: {exc}") from exc
        client.nick = nick
        client.username = new.username if "@" in new.username else f"{new.username}@{client.host}"
        client.realname = new.realname or new.username
        try:
            client.id = client_id(self.cell.server_id[:4], client.prepared_nick, self.cell.client_ids())
        except ValueError as exc:
            raise Disconnect(Status.ERR_NICKNAME_IN_USE, str(exc)) from exc
        client.send(PacketType.NEW_ID, client.id_payload)
        cipher = client.session.cipher
        for line in (
            f"Welcome to the SILC Network {client.username}",
            f"Your host is {self.server_name}, running version {commands.SERVER_VERSION}",
            f"I have {len(self.nicks())} clients and {len(self.cell.channels)} channels formed",
            f"Your connection is secured with {cipher} cipher, key length {CIPHERS[cipher][0] * 8} bits",
            f"Your current nickname is {client.nick}",
        ):
            client.notify(NotifyType.NONE, (1, line.encode()))
        if self.motd:
            client.notify(NotifyType.MOTD, (1, self.motd.encode()))
        log.info("silc_client_registered", nick=nick, host=client.host, key=client.fingerprint)
        await self._notify_changed()

    async def _serve(self, client: Client) -> None:
        handlers = {
            PacketType.COMMAND: lambda c, p: commands.run(self.cell, c, Command.decode(p.data)),
            PacketType.CHANNEL_MESSAGE: self._channel_message,
            PacketType.PRIVATE_MESSAGE: self._relay_to_client,
            PacketType.PRIVATE_MESSAGE_KEY: self._relay_to_client,
            PacketType.KEY_AGREEMENT: self._relay_to_client,
            PacketType.HEARTBEAT: lambda c, p: None,
            PacketType.REKEY: self._rekey_start,
            PacketType.KEY_EXCHANGE_1: self._rekey_pfs,
            PacketType.REKEY_DONE: self._rekey_done,
        }
        while True:
            try:
                packet = await client.stream.receive()
            except MalformedPacket as exc:
                log.warning("silc_packet_dropped", nick=client.nick, error=str(exc))
                continue
            if client.blackholed:
                continue
            client.last_receive = time.monotonic()
            if packet.type == PacketType.DISCONNECT:
                log.info("silc_client_sent_disconnect", nick=client.nick)
                return
            # silc-spec 3.8.1: the Source ID must be the sender's.
            if packet.src_type != ID_CLIENT or packet.src_id not in (client.id, client.old_id):
                log.warning("silc_packet_bad_source", nick=client.nick, packet=repr(packet))
                continue
            handler = handlers.get(packet.type)
            if handler is None:
                log.warning("silc_packet_unexpected", nick=client.nick, packet=repr(packet))
                continue
            try:
                handler(client, packet)
            except (DecodeError, UnicodeDecodeError, ValueError) as exc:
                log.warning("silc_payload_malformed", nick=client.nick, packet=repr(packet), error=repr(exc))
            except Exception:  # a bug here must show, but not take the server down
                log.exception("silc_packet_handler_failed", nick=client.nick, packet=repr(packet))
            await self._notify_changed()

    # --- relaying ---

    def _channel_message(self, client: Client, packet: Packet) -> None:
        """To every other member, as the sender encrypted it (silc-spec 4.7)."""
        channel = self.cell.channel_by_id(SilcId(packet.dst_type, packet.dst_id))
        if channel is None:
            # silc-spec 4.7: NOTIFY ERROR for an unknown channel.
            client.notify(NotifyType.ERROR, (1, bytes([Status.ERR_NO_SUCH_CHANNEL_ID])),
                          (2, SilcId(packet.dst_type, packet.dst_id).payload()))
            return
        if client not in channel.members:
            log.warning("silc_channel_message_not_member", nick=client.nick, channel=channel.name)
            return
        for member in channel.members:
            if member is not client:
                member.send(PacketType.CHANNEL_MESSAGE, packet.data, flags=packet.flags,
                            src=(ID_CLIENT, packet.src_id), dst=(ID_CHANNEL, channel.id))

    def _relay_to_client(self, client: Client, packet: Packet) -> None:
        """Private messages (and their key packets) to the destination client,
        re-encrypted with its session key unless under a private key (silc-pp 2.5.3)."""
        target = self.cell.client_by_id(SilcId(packet.dst_type, packet.dst_id))
        if target is None:
            # silc-spec 4.5: NOTIFY ERROR for an unknown client.
            client.notify(NotifyType.ERROR, (1, bytes([Status.ERR_NO_SUCH_CLIENT_ID])),
                          (2, SilcId(packet.dst_type, packet.dst_id).payload()))
            return
        target.send(packet.type, packet.data, flags=packet.flags,
                    src=(ID_CLIENT, packet.src_id), dst=(ID_CLIENT, target.id))

    # --- rekey, responder side of silc-spec 4.8 ---

    def _rekey_start(self, client: Client, packet: Packet) -> None:
        """Without PFS the new keys come from the old initiator sending key at
        once; with PFS, from a new Diffie-Hellman exchange (KEY_EXCHANGE_1 next)."""
        session = client.session
        if session.pfs:
            client.rekey = {"pfs": True}
        else:
            self._rekey_send_side(client, ske.rekeyed(session, session.keys.send_key))

    def _rekey_pfs(self, client: Client, packet: Packet) -> None:
        if not client.rekey or not client.rekey.get("pfs"):
            raise ValueError("KEY_EXCHANGE_1 outside a PFS rekey")
        ours, shared = ske.pfs_respond(client.session, ske.KePayload.decode(packet.data))
        client.send(PacketType.KEY_EXCHANGE_2, ours.encode())
        self._rekey_send_side(client, ske.rekeyed(client.session, shared))

    def _rekey_send_side(self, client: Client, new: ske.Session) -> None:
        client.send(PacketType.REKEY_DONE)  # still under the old keys
        ske.install_keys(client.stream, new, responder=True, receive=False)
        client.rekey = {"session": new}

    def _rekey_done(self, client: Client, packet: Packet) -> None:
        if not client.rekey or "session" not in client.rekey:
            raise ValueError("REKEY_DONE without a rekey")
        new = client.rekey["session"]
        ske.install_keys(client.stream, new, responder=True, send=False)
        client.session, client.rekey = new, None
        log.info("silc_rekey_done", nick=client.nick, pfs=new.pfs)
