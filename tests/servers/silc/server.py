"""A standalone SILC server for tests, written from the drafts (silc-spec 4,
silc-commands), behaving like silcd 1.1 where the README says so.

One cell, no router: the server creates channels and their keys itself
(silc-spec 4.3/4.4) and relays channel messages without decrypting them
(silc-pp 2.5.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from . import ske
from .crypto import CIPHERS, HMACS, PK_TYPE_SILC, KeyPair, SilcPublicKey, cached_key_pair, digest
from .identifiers import channel_id, client_id, prepare_channel, prepare_nickname, server_id
from .message import ChannelKey
from .numbers import (
    CONN_CLIENT,
    CUMODE_FOUNDER,
    CUMODE_OPERATOR,
    AuthMethod,
    Cmd,
    NotifyType,
    PacketType,
    Status,
)
from .packet import MalformedPacket, Packet, PacketError, PacketStream
from .wire import (
    ID_CHANNEL,
    ID_CLIENT,
    ID_SERVER,
    ArgMap,
    ChannelKeyPayload,
    Command,
    ConnectionAuth,
    DecodeError,
    NewClient,
    Notify,
    Reader,
    SilcId,
    channel_payload,
    public_key_payload,
    status_payload,
    u16,
    u16_bytes,
    u32,
)

log = structlog.get_logger(__name__)

SERVER_VERSION = "muc-bridge SILC test server 1.0"
CHANNEL_CIPHER = "aes-256-cbc"  # silcd's channel defaults (README)
CHANNEL_HMAC = "hmac-sha1-96"
MAX_WRITE_BUFFER = 4 * 1024 * 1024
ATTR_USER_PUBLIC_KEY, ATTR_SERVER_PUBLIC_KEY = 12, 13  # silc-presence-attrs 2.5
ATTR_FLAG_INVALID, ATTR_FLAG_VALID = 0x01, 0x02


class CommandError(Exception):
    """Answer the command with this status and these extra reply arguments."""

    def __init__(self, status: Status, *args: tuple[int, bytes]) -> None:
        super().__init__(status.name)
        self.status = status
        self.args = list(args)


class Disconnect(Exception):
    """Close this connection after sending DISCONNECT with `status`."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class Channel:
    name: str
    prepared: str
    id: bytes
    key: ChannelKey
    members: dict[Client, int] = field(default_factory=dict)  # client -> channel user mode
    topic: str | None = None

    @property
    def id_payload(self) -> bytes:
        return SilcId(ID_CHANNEL, self.id).payload()


class Client:
    """One client connection, from key exchange to signoff."""

    def __init__(self, server: SilcTestServer, stream: PacketStream, host: str) -> None:
        self.server = server
        self.stream = stream
        self.host = host
        self.session: ske.Session | None = None
        self.id: bytes | None = None
        self.old_id: bytes | None = None  # accepted as source while a NICK reply is in flight
        self.nick = ""
        self.prepared_nick = ""
        self.username = ""
        self.realname = ""
        self.channels: list[Channel] = []
        self.last_receive = time.monotonic()
        self.rekey: dict | None = None  # responder rekey in progress

    @property
    def public_key(self) -> SilcPublicKey | None:
        return self.session.peer_key if self.session else None

    @property
    def registered(self) -> bool:
        return self.id is not None

    @property
    def id_payload(self) -> bytes:
        return SilcId(ID_CLIENT, self.id).payload()

    @property
    def fingerprint(self) -> str | None:
        return self.public_key.fingerprint if self.public_key else None

    def send(self, ptype: int, data: bytes = b"", *, flags: int = 0,
             src: tuple[int, bytes] | None = None, dst: tuple[int, bytes] | None = None,
             long_pad: bool = False) -> None:
        src_type, src_id = src or (ID_SERVER, self.server.id)
        if dst is None:
            dst = (ID_CLIENT, self.id) if self.id else (0, b"")
        self.stream.send(Packet(ptype, data, flags, src_type, src_id, dst[0], dst[1]), long_pad)
        transport = self.stream.writer.transport
        if transport is not None and transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("silc_client_too_slow", nick=self.nick)
            transport.abort()

    def notify(self, kind: NotifyType, *args: tuple[int, bytes],
               dst: tuple[int, bytes] | None = None) -> None:
        self.send(PacketType.NOTIFY, Notify(kind, ArgMap(list(args))).encode(), dst=dst)

    def reply(self, cmd: Command, status: int, args: list[tuple[int, bytes]], error: int = 0) -> None:
        payload = Command(cmd.command, cmd.ident, ArgMap([(1, status_payload(status, error)), *args]))
        self.send(PacketType.COMMAND_REPLY, payload.encode())

    def nick_at_server(self) -> bytes:
        return f"{self.nick}@{self.server.server_name}".encode()


class SilcTestServer:
    """A SILC server on 127.0.0.1 for integration tests.

    Use as `async with SilcTestServer() as server:`; `server.port` is the
    listening port.  See the module docstring of tests.servers.silc for the
    whole API.
    """

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
        if auth not in ("none", "passphrase", "publickey"):
            raise ValueError(f"auth must be none, passphrase or publickey, not {auth!r}")
        if auth == "passphrase" and not passphrase:
            raise ValueError("auth='passphrase' needs passphrase=")
        self.auth = auth
        self.passphrase = passphrase
        self.client_keys = {fp.lower().replace(":", "").replace(" ", "") for fp in client_keys}
        self.algorithms = algorithms or ske.Algorithms()
        self.key_pair = key_pair or cached_key_pair("silc-test-server", "UN=silcd, HN=silc.test")
        self.server_name = server_name
        self.motd = motd
        self.host = host
        self.port = port
        self.handshake_timeout = handshake_timeout
        self.id = b""
        self.clients: list[Client] = []
        self.channels: dict[str, Channel] = {}  # by prepared name
        self._channel_counter = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Condition()

    # --- lifecycle ---

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.id = server_id(ipaddress.ip_address(self.host).packed[-4:], self.port)
        log.info("silc_test_server_started", host=self.host, port=self.port,
                 fingerprint=self.fingerprint)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.drop_all()

    async def __aenter__(self) -> SilcTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- what tests look at and do ---

    @property
    def public_key(self) -> SilcPublicKey:
        return self.key_pair.public

    @property
    def fingerprint(self) -> str:
        """SHA-1 of the server's encoded SILC public key, lowercase hex."""
        return self.key_pair.public.fingerprint

    def change_key(self, key_pair: KeyPair | None = None) -> str:
        """Use another key pair from the next key exchange on (to test pinning);
        returns the new fingerprint.  Existing sessions keep their keys."""
        self.key_pair = key_pair or KeyPair.generate("UN=silcd, HN=silc.test")
        log.info("silc_test_server_key_changed", fingerprint=self.fingerprint)
        return self.fingerprint

    def nicks(self) -> list[str]:
        return sorted(c.nick for c in self.clients if c.registered)

    def channel_nicks(self, name: str) -> list[str]:
        channel = self._channel_by_name(name)
        return sorted(c.nick for c in channel.members) if channel else []

    def topic(self, name: str) -> str | None:
        channel = self._channel_by_name(name)
        return channel.topic if channel else None

    def client(self, nick: str) -> Client | None:
        try:
            prepared = prepare_nickname(nick)
        except ValueError:
            return None
        return next((c for c in self.clients if c.registered and c.prepared_nick == prepared), None)

    async def wait_until(self, predicate: Callable[[SilcTestServer], bool], timeout: float = 5.0) -> None:
        """Wait until `predicate(server)` holds, e.g. `lambda s: "bob" in s.nicks()`."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)

    async def kick(self, nick: str, channel: str, comment: str = "") -> None:
        """Kick `nick` from `channel` as the server (KICKED notify with the
        Server ID as kicker)."""
        client, chan = self._require(nick), self._channel_by_name(channel)
        if chan is None or client not in chan.members:
            raise KeyError(f"{nick} is not on {channel}")
        self._kick(chan, client, comment, SilcId(ID_SERVER, self.id).payload())
        await self._changed_state()

    async def kill(self, nick: str, comment: str = "killed by test") -> None:
        """KILLED notify to the victim and its channels (silc-commands KILL),
        then close the victim's connection."""
        client = self._require(nick)
        args = [(1, client.id_payload), (2, comment.encode()), (3, SilcId(ID_SERVER, self.id).payload())]
        for peer in self._peers_of(client):
            peer.notify(NotifyType.KILLED, *args)
        client.notify(NotifyType.KILLED, *args)
        self._forget(client, signoff=None)
        await self._close_client(client, Status.ERR_NO_ROUTER_PRIV, comment)

    async def drop(self, nick: str) -> None:
        """Cut one client's TCP connection without a word (others see SIGNOFF)."""
        client = self._require(nick)
        client.stream.writer.transport.abort()
        await self.wait_until(lambda s: client not in s.clients)

    async def drop_all(self) -> None:
        """Cut every connection at once (to test reconnects)."""
        for client in list(self.clients):
            client.stream.writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def disconnect(self, nick: str, message: str = "disconnected by test") -> None:
        """Send DISCONNECT (silc-pp 2.3.3) to one client and close it."""
        client = self._require(nick)
        await self._close_client(client, Status.OK, message)

    # --- connections ---

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        host = writer.get_extra_info("peername")[0]
        client = Client(self, PacketStream(reader, writer), host)
        self.clients.append(client)
        reason = "connection closed"
        try:
            await self._handshake(client)
            await self._serve(client)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("silc_client_closed", nick=client.nick or None, host=host)
        except asyncio.TimeoutError:
            reason = "timed out"
            log.warning("silc_client_timeout", nick=client.nick or None, host=host)
        except ske.SkeError as exc:
            reason = "key exchange failed"
            log.warning("silc_ske_failed", host=host, status=exc.status.name, detail=str(exc))
        except PacketError as exc:  # includes a bad MAC: the stream cannot be trusted any more
            reason = "protocol error"
            log.warning("silc_packet_unframeable", nick=client.nick or None, host=host, error=str(exc))
        except Disconnect as exc:
            reason = str(exc)
            log.warning("silc_client_disconnected", nick=client.nick or None, host=host,
                        status=exc.status.name, reason=reason)
            client.send(PacketType.DISCONNECT, bytes([exc.status]) + reason.encode())
        finally:
            self._forget(client, signoff=reason)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
            self._tasks.discard(task)
            await self._changed_state()

    async def _close_client(self, client: Client, status: Status, message: str) -> None:
        client.send(PacketType.DISCONNECT, bytes([status]) + message.encode())
        self._forget(client, signoff=message)
        client.stream.writer.close()
        await self.wait_until(lambda s: client not in s.clients)

    async def _handshake(self, client: Client) -> None:
        """silc-spec 4.1: key exchange, connection authentication, registration."""
        ids = dict(src_type=ID_SERVER, src_id=self.id)
        client.session = await ske.respond(
            client.stream, lambda: self.key_pair, self.algorithms, ids, self.handshake_timeout
        )
        log.info("silc_ske_done", host=client.host, cipher=client.session.cipher,
                 hmac=client.session.hmac, hash=client.session.hash, group=client.session.group,
                 client_key=client.fingerprint)
        await self._authenticate(client)
        await self._register(client)

    async def _receive_handshake(self, client: Client) -> Packet:
        while True:
            packet = await asyncio.wait_for(client.stream.receive(), self.handshake_timeout)
            if packet.type != PacketType.HEARTBEAT:
                return packet

    def _auth_method(self) -> AuthMethod:
        return {"none": AuthMethod.NONE, "passphrase": AuthMethod.PASSPHRASE,
                "publickey": AuthMethod.PUBLIC_KEY}[self.auth]

    async def _authenticate(self, client: Client) -> None:
        """silc-ke-auth 3; CONNECTION_AUTH is required even for "none" (README)."""
        while True:
            packet = await self._receive_handshake(client)
            if packet.type == PacketType.CONNECTION_AUTH_REQUEST:
                # silc-pp 2.3.15: answer with the same payload carrying the method.
                client.send(PacketType.CONNECTION_AUTH_REQUEST, u16(CONN_CLIENT) + u16(self._auth_method()))
                continue
            if packet.type != PacketType.CONNECTION_AUTH:
                raise PacketError(f"expected CONNECTION_AUTH, got {packet!r}")
            try:
                auth = ConnectionAuth.decode(packet.data)
                ok = auth.conn_type == CONN_CLIENT and self._auth_ok(client, auth.auth_data)
            except DecodeError:
                ok = False
            if not ok:
                client.send(PacketType.FAILURE, u32(1))  # SILC_AUTH_FAILED
                raise Disconnect(Status.ERR_AUTH_FAILED, "authentication failed")
            client.send(PacketType.SUCCESS, u32(0))  # SILC_AUTH_OK
            return

    def _auth_ok(self, client: Client, data: bytes) -> bool:
        if self.auth == "none":
            return True  # like silcd, whatever the client sent
        if self.auth == "passphrase":
            return data == self.passphrase.encode()
        # Public key: silc-ke-auth 3.2.2, the key from SKE must be a known one.
        key = client.public_key
        if key is None or key.fingerprint not in self.client_keys:
            return False
        session = client.session
        return key.verify(data, digest(session.hash, session.ske_hash + session.initiator_start))

    async def _register(self, client: Client) -> None:
        while True:
            packet = await self._receive_handshake(client)
            if packet.type == PacketType.NEW_CLIENT:
                break
            log.warning("silc_packet_before_registration", host=client.host, packet=repr(packet))
        try:
            new = NewClient.decode(packet.data)
            nick = new.nickname or new.username
            client.prepared_nick = prepare_nickname(nick)
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            raise Disconnect(Status.ERR_INCOMPLETE_INFORMATION, f"bad NEW_CLIENT: {exc}") from exc
        client.nick = nick
        client.username = new.username if "@" in new.username else f"{new.username}@{client.host}"
        client.realname = new.realname or new.username
        client.id = client_id(self.id[:4], client.prepared_nick)
        client.send(PacketType.NEW_ID, client.id_payload)
        session = client.session
        for line in (
            f"Welcome to the SILC Network {client.username}",
            f"Your host is {self.server_name}, running version {SERVER_VERSION}",
            f"I have {len(self.nicks())} clients and {len(self.channels)} channels formed",
            f"Your connection is secured with {session.cipher} cipher, "
            f"key length {CIPHERS[session.cipher][0] * 8} bits",
            f"Your current nickname is {client.nick}",
        ):
            client.notify(NotifyType.NONE, (1, line.encode()))
        if self.motd:
            client.notify(NotifyType.MOTD, (1, self.motd.encode()))
        log.info("silc_client_registered", nick=nick, host=client.host, key=client.fingerprint)
        await self._changed_state()

    async def _serve(self, client: Client) -> None:
        handlers = {
            PacketType.COMMAND: self._command,
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
            client.last_receive = time.monotonic()
            if packet.type == PacketType.DISCONNECT:
                log.info("silc_client_sent_disconnect", nick=client.nick)
                return
            if packet.src_id not in (client.id, client.old_id) or packet.src_type != ID_CLIENT:
                log.warning("silc_packet_bad_source", nick=client.nick, packet=repr(packet))
                continue
            handler = handlers.get(packet.type)
            if handler is None:
                log.warning("silc_packet_unexpected", nick=client.nick, packet=repr(packet))
                continue
            try:
                result = handler(client, packet)
                if asyncio.iscoroutine(result):
                    await result
            except (DecodeError, UnicodeDecodeError, ValueError, KeyError) as exc:
                log.warning("silc_payload_malformed", nick=client.nick, packet=repr(packet),
                            error=repr(exc))
            except Exception:  # a bug here must show, but not take the server down
                log.exception("silc_packet_handler_failed", nick=client.nick, packet=repr(packet))
            await self._changed_state()

    async def _changed_state(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- state helpers ---

    def _require(self, nick: str) -> Client:
        client = self.client(nick)
        if client is None:
            raise KeyError(f"no client {nick!r}")
        return client

    def _channel_by_name(self, name: str) -> Channel | None:
        try:
            return self.channels.get(prepare_channel(name))
        except ValueError:
            return None

    def _channel_by_id(self, raw: bytes | None) -> Channel:
        if raw is None:
            raise CommandError(Status.ERR_NO_CHANNEL_ID)
        ident = SilcId.from_payload(raw)
        for channel in self.channels.values():
            if ident.type == ID_CHANNEL and channel.id == ident.data:
                return channel
        raise CommandError(Status.ERR_NO_SUCH_CHANNEL_ID, (2, raw))

    def _client_by_id(self, raw: bytes) -> Client | None:
        ident = SilcId.from_payload(raw)
        return next(
            (c for c in self.clients if c.registered and ident.type == ID_CLIENT and c.id == ident.data),
            None,
        )

    def _peers_of(self, client: Client) -> list[Client]:
        """Everyone sharing a channel with `client`, once each, not `client`."""
        seen: dict[Client, None] = {}
        for channel in client.channels:
            for member in channel.members:
                if member is not client:
                    seen[member] = None
        return list(seen)

    def _to_channel(self, channel: Channel, kind: NotifyType, *args: tuple[int, bytes],
                    skip: Client | None = None) -> None:
        for member in list(channel.members):
            if member is not skip:
                member.notify(kind, *args, dst=(ID_CHANNEL, channel.id))

    def _new_channel_key(self, channel: Channel, skip: Client | None = None) -> None:
        """A fresh key (silc-spec 4.4), sent as CHANNEL_KEY to the members."""
        channel.key = ChannelKey(channel.key.cipher, os.urandom(CIPHERS[channel.key.cipher][0]),
                                 channel.key.hmac)
        payload = ChannelKeyPayload(channel.id, channel.key.cipher, channel.key.key).encode()
        for member in channel.members:
            if member is not skip:
                member.send(PacketType.CHANNEL_KEY, payload)

    def _remove_from_channel(self, channel: Channel, client: Client) -> None:
        channel.members.pop(client, None)
        if channel in client.channels:
            client.channels.remove(channel)
        if channel.members:
            self._new_channel_key(channel)
        else:
            del self.channels[channel.prepared]

    def _forget(self, client: Client, signoff: str | None) -> None:
        """Remove a client; with `signoff`, tell its peers (silc-spec 4.10)."""
        if client not in self.clients:
            return
        self.clients.remove(client)
        if client.registered and signoff is not None:
            for peer in self._peers_of(client):
                peer.notify(NotifyType.SIGNOFF, (1, client.id_payload), (2, signoff.encode()))
        for channel in list(client.channels):
            self._remove_from_channel(channel, client)

    def _kick(self, channel: Channel, target: Client, comment: str, kicker: bytes) -> None:
        args = [(1, target.id_payload), (3, kicker)]
        if comment:
            args.insert(1, (2, comment.encode()))
        self._to_channel(channel, NotifyType.KICKED, *args)
        self._remove_from_channel(channel, target)

    # --- packets ---

    def _channel_message(self, client: Client, packet: Packet) -> None:
        """Relay without decrypting (silc-pp 2.5.2) to every other member (silc-spec 4.7)."""
        channel = next(
            (c for c in self.channels.values() if packet.dst_type == ID_CHANNEL and c.id == packet.dst_id),
            None,
        )
        if channel is None:
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
        """Private messages and friends go to their destination client, re-encrypted
        with its session key unless the payload is under a private key (silc-pp 2.5.3)."""
        target = next(
            (c for c in self.clients if c.registered and packet.dst_type == ID_CLIENT and c.id == packet.dst_id),
            None,
        )
        if target is None:
            client.notify(NotifyType.ERROR, (1, bytes([Status.ERR_NO_SUCH_CLIENT_ID])),
                          (2, SilcId(packet.dst_type, packet.dst_id).payload()))
            return
        target.send(packet.type, packet.data, flags=packet.flags,
                    src=(ID_CLIENT, packet.src_id), dst=(ID_CLIENT, target.id))

    def _rekey_start(self, client: Client, packet: Packet) -> None:
        """Responder side of silc-spec 4.8.  Without PFS the new keys come from the
        old initiator sending key; with PFS we wait for KEY_EXCHANGE_1."""
        session = client.session
        if session.pfs:
            client.rekey = {"pfs": True}
            return
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

    # --- commands (silc-commands 2.3) ---

    async def _command(self, client: Client, packet: Packet) -> None:
        cmd = Command.decode(packet.data)
        handler = {
            Cmd.WHOIS: self._cmd_whois,
            Cmd.IDENTIFY: self._cmd_identify,
            Cmd.NICK: self._cmd_nick,
            Cmd.TOPIC: self._cmd_topic,
            Cmd.QUIT: self._cmd_quit,
            Cmd.INFO: self._cmd_info,
            Cmd.PING: self._cmd_ping,
            Cmd.JOIN: self._cmd_join,
            Cmd.KICK: self._cmd_kick,
            Cmd.LEAVE: self._cmd_leave,
            Cmd.USERS: self._cmd_users,
            Cmd.GETKEY: self._cmd_getkey,
        }.get(cmd.command)
        try:
            if handler is None:
                raise CommandError(Status.ERR_UNKNOWN_COMMAND)
            result = handler(client, cmd)
            if asyncio.iscoroutine(result):
                await result
        except CommandError as exc:
            client.reply(cmd, exc.status, exc.args)
        except (DecodeError, UnicodeDecodeError) as exc:
            log.warning("silc_command_malformed", nick=client.nick, command=cmd.command, error=str(exc))
            client.reply(cmd, Status.ERR_NOT_ENOUGH_PARAMS, [])

    def _send_list(self, client: Client, cmd: Command,
                   entries: list[tuple[Status, list[tuple[int, bytes]]]]) -> None:
        """One reply per entry; several form a list (silc-commands 2.4):
        LIST_START/ITEM/END in Status, the entry's error in Error."""
        if len(entries) == 1:
            status, args = entries[0]
            client.reply(cmd, status, args)
            return
        entries = sorted(entries, key=lambda e: e[0] != Status.OK)  # errors after successes
        for i, (status, args) in enumerate(entries):
            position = Status.LIST_START if i == 0 else (
                Status.LIST_END if i == len(entries) - 1 else Status.LIST_ITEM)
            client.reply(cmd, position, args, error=status)

    def _find_clients(self, raw_nick: bytes) -> list[Client]:
        nick = raw_nick.decode("utf-8")
        if "*" in nick or "?" in nick:
            raise CommandError(Status.ERR_WILDCARDS)
        name, _, server = nick.partition("@")
        try:
            prepared = prepare_nickname(name)
        except ValueError:
            return []
        if server and server.lower() != self.server_name.lower():
            return []
        return [c for c in self.clients if c.registered and c.prepared_nick == prepared]

    def _cmd_whois(self, client: Client, cmd: Command) -> None:
        ids = [raw for kind, raw in cmd.args.items if kind >= 4]
        nick = cmd.args.get(1)
        wanted_attrs = cmd.args.get(3)
        entries = []
        if ids:
            for raw in ids:
                target = self._client_by_id(raw)
                entries.append(self._whois_entry(target, wanted_attrs) if target
                               else (Status.ERR_NO_SUCH_CLIENT_ID, [(2, raw)]))
        elif nick:
            found = self._find_clients(nick)
            count = cmd.args.get(2)
            if count and len(count) == 4 and int.from_bytes(count, "big"):
                found = found[: int.from_bytes(count, "big")]
            entries = [self._whois_entry(t, wanted_attrs) for t in found] or [
                (Status.ERR_NO_SUCH_NICK, [(2, nick), (3, nick)])  # silcd repeats the nick
            ]
        else:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        self._send_list(client, cmd, entries)

    def _whois_entry(self, target: Client, wanted_attrs: bytes | None):
        idle = int(time.monotonic() - target.last_receive)
        args = [
            (2, target.id_payload),
            (3, target.nick_at_server()),
            (4, target.username.encode()),
            (5, target.realname.encode()),
        ]
        if target.channels:
            args.append((6, b"".join(channel_payload(c.name, c.id, 0) for c in target.channels)))
        args += [(7, u32(0)), (8, u32(idle))]
        if target.public_key:  # the server verified possession during SKE (mutual auth)
            args.append((9, bytes.fromhex(target.fingerprint)))
        if target.channels:
            args.append((10, b"".join(u32(c.members[target]) for c in target.channels)))
        if wanted_attrs is not None:
            args.append((11, self._attributes(target, wanted_attrs)))
        return Status.OK, args

    def _attributes(self, target: Client, wanted: bytes) -> bytes:
        """Reply to Requested Attributes on the user's behalf, as silcd does:
        the user's public key when asked, and always the server's."""
        r = Reader(wanted)
        out = b""

        def attribute(kind: int, flags: int, data: bytes) -> bytes:
            return bytes([kind, flags]) + u16_bytes(data)

        def key_attr(kind: int, key: SilcPublicKey) -> bytes:
            return attribute(kind, ATTR_FLAG_VALID, u16_bytes(b"silc-rsa") + key.encode())

        while r.remaining:
            kind = r.u8()
            r.u8()
            r.u16_bytes()
            if kind == ATTR_USER_PUBLIC_KEY and target.public_key:
                out += key_attr(kind, target.public_key)
            elif kind != ATTR_SERVER_PUBLIC_KEY:
                out += attribute(kind, ATTR_FLAG_INVALID, b"")
        return out + key_attr(ATTR_SERVER_PUBLIC_KEY, self.public_key)

    def _cmd_identify(self, client: Client, cmd: Command) -> None:
        ids = [raw for kind, raw in cmd.args.items if kind >= 5]
        entries = []
        if ids:
            for raw in ids:
                entries.append(self._identify_id(raw))
        elif cmd.args.get(1):
            nick = cmd.args.get(1)
            entries = [self._identify_client(c) for c in self._find_clients(nick)] or [
                (Status.ERR_NO_SUCH_NICK, [(2, nick), (3, nick)])
            ]
        elif cmd.args.get(3):
            name = cmd.args.get(3)
            channel = self._channel_by_name(name.decode("utf-8"))
            entries = [(Status.OK, [(2, channel.id_payload), (3, channel.name.encode())]) if channel
                       else (Status.ERR_NO_SUCH_CHANNEL, [(2, name)])]
        elif cmd.args.get(2):
            name = cmd.args.get(2)
            entries = [self._identify_server() if name.decode("utf-8") == self.server_name
                       else (Status.ERR_NO_SUCH_SERVER, [(2, name)])]
        else:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        self._send_list(client, cmd, entries)

    def _identify_id(self, raw: bytes):
        ident = SilcId.from_payload(raw)
        if ident.type == ID_CLIENT:
            target = self._client_by_id(raw)
            return self._identify_client(target) if target else (Status.ERR_NO_SUCH_CLIENT_ID, [(2, raw)])
        if ident.type == ID_SERVER:
            return self._identify_server() if ident.data == self.id else (
                Status.ERR_NO_SUCH_SERVER_ID, [(2, raw)])
        channel = next((c for c in self.channels.values() if c.id == ident.data), None)
        return (Status.OK, [(2, raw), (3, channel.name.encode())]) if channel else (
            Status.ERR_NO_SUCH_CHANNEL_ID, [(2, raw)])

    @staticmethod
    def _identify_client(target: Client):
        return Status.OK, [(2, target.id_payload), (3, target.nick_at_server()),
                           (4, target.username.encode())]

    def _identify_server(self):
        return Status.OK, [(2, SilcId(ID_SERVER, self.id).payload()), (3, self.server_name.encode())]

    def _cmd_nick(self, client: Client, cmd: Command) -> None:
        raw = cmd.args.get(1)
        if raw is None:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        nick = raw.decode("utf-8")
        if "*" in nick or "?" in nick:
            raise CommandError(Status.ERR_WILDCARDS)
        try:
            prepared = prepare_nickname(nick)
        except ValueError as exc:
            raise CommandError(Status.ERR_BAD_NICKNAME) from exc
        if nick != client.nick:  # like silcd, the same nickname keeps the same ID
            old_payload = client.id_payload
            client.old_id, client.id = client.id, client_id(self.id[:4], prepared)
            client.nick, client.prepared_nick = nick, prepared
            args = [(1, old_payload), (2, client.id_payload), (3, raw)]
            # silc-pp 2.3.7: to everyone on the same channels, once, and to the client.
            for peer in [client, *self._peers_of(client)]:
                peer.notify(NotifyType.NICK_CHANGE, *args)
        client.reply(cmd, Status.OK, [(2, client.id_payload), (3, raw)])

    def _cmd_topic(self, client: Client, cmd: Command) -> None:
        channel = self._channel_by_id(cmd.args.get(1))
        if client not in channel.members:
            raise CommandError(Status.ERR_NOT_ON_CHANNEL, (2, channel.id_payload))
        topic = cmd.args.get(2)
        if topic is not None:
            channel.topic = topic.decode("utf-8")
            self._to_channel(channel, NotifyType.TOPIC_SET, (1, client.id_payload), (2, topic))
        args = [(2, channel.id_payload)]
        if channel.topic:
            args.append((3, channel.topic.encode()))
        client.reply(cmd, Status.OK, args)

    async def _cmd_quit(self, client: Client, cmd: Command) -> None:
        """No reply; close the connection, telling the channels why (silc-commands QUIT)."""
        message = (cmd.args.get(1) or b"").decode("utf-8", "replace")
        self._forget(client, signoff=message)
        client.stream.writer.close()

    def _cmd_info(self, client: Client, cmd: Command) -> None:
        server_arg = cmd.args.get(2)
        if server_arg is not None and SilcId.from_payload(server_arg).data != self.id:
            raise CommandError(Status.ERR_NO_SUCH_SERVER_ID, (2, server_arg))
        client.reply(cmd, Status.OK, [(2, SilcId(ID_SERVER, self.id).payload()),
                                      (3, self.server_name.encode()), (4, SERVER_VERSION.encode())])

    def _cmd_ping(self, client: Client, cmd: Command) -> None:
        raw = cmd.args.get(1)
        if raw is None:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        if SilcId.from_payload(raw) != SilcId(ID_SERVER, self.id):
            raise CommandError(Status.ERR_NO_SUCH_SERVER_ID, (2, raw))
        client.reply(cmd, Status.OK, [])

    def _cmd_join(self, client: Client, cmd: Command) -> None:
        raw_name, raw_id = cmd.args.get(1), cmd.args.get(2)
        if raw_name is None or raw_id is None:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        name = raw_name.decode("utf-8")
        if "*" in name or "?" in name:
            raise CommandError(Status.ERR_WILDCARDS)
        try:
            prepared = prepare_channel(name)
        except ValueError as exc:
            raise CommandError(Status.ERR_BAD_CHANNEL) from exc
        if SilcId.from_payload(raw_id) != SilcId(ID_CLIENT, client.id):
            raise CommandError(Status.ERR_BAD_CLIENT_ID, (2, raw_id))
        channel = self.channels.get(prepared)
        created = channel is None
        if created:
            channel = self._create_channel(name, prepared, cmd.args.get(4), cmd.args.get(5))
        elif client in channel.members:
            raise CommandError(Status.ERR_USER_ON_CHANNEL, (2, client.id_payload), (3, channel.id_payload))
        # silc-spec 4.3: a new key on every join; the joiner gets it in the reply.
        self._new_channel_key(channel)
        channel.members[client] = CUMODE_FOUNDER | CUMODE_OPERATOR if created else 0
        client.channels.append(channel)
        members = list(channel.members)
        args = [
            (2, channel.name.encode()),
            (3, channel.id_payload),
            (4, client.id_payload),
            (5, u32(0)),
            (6, u32(1 if created else 0)),
            (7, ChannelKeyPayload(channel.id, channel.key.cipher, channel.key.key).encode()),
        ]
        if channel.topic:
            args.append((10, channel.topic.encode()))
        args += [
            (11, channel.key.hmac.encode()),
            (12, u32(len(members))),
            (13, b"".join(m.id_payload for m in members)),
            (14, b"".join(u32(channel.members[m]) for m in members)),
        ]
        client.reply(cmd, Status.OK, args)
        # silc-pp 2.3.7: JOIN goes to the channel, the joiner included.
        self._to_channel(channel, NotifyType.JOIN, (1, client.id_payload), (2, channel.id_payload))
        log.info("silc_join", nick=client.nick, channel=channel.name, created=created)

    def _create_channel(self, name: str, prepared: str, cipher: bytes | None, hmac: bytes | None) -> Channel:
        cipher_name = cipher.decode("ascii", "replace") if cipher else CHANNEL_CIPHER
        hmac_name = hmac.decode("ascii", "replace") if hmac else CHANNEL_HMAC
        for algorithm, known in ((cipher_name, CIPHERS), (hmac_name, HMACS)):
            if algorithm not in known:
                raise CommandError(Status.ERR_UNKNOWN_ALGORITHM, (2, algorithm.encode()))
        self._channel_counter += 1
        channel = Channel(name, prepared, channel_id(self.id, self._channel_counter),
                          ChannelKey(cipher_name, b"", hmac_name))
        self.channels[prepared] = channel
        return channel

    def _cmd_kick(self, client: Client, cmd: Command) -> None:
        channel = self._channel_by_id(cmd.args.get(1))
        raw_target = cmd.args.get(2)
        if raw_target is None:
            raise CommandError(Status.ERR_NO_CLIENT_ID)
        if client not in channel.members:
            raise CommandError(Status.ERR_NOT_ON_CHANNEL, (2, channel.id_payload))
        if not channel.members[client] & (CUMODE_OPERATOR | CUMODE_FOUNDER):
            raise CommandError(Status.ERR_NO_CHANNEL_PRIV, (2, channel.id_payload))
        target = self._client_by_id(raw_target)
        if target is None:
            raise CommandError(Status.ERR_NO_SUCH_CLIENT_ID, (2, raw_target))
        if target not in channel.members:
            raise CommandError(Status.ERR_USER_NOT_ON_CHANNEL, (2, raw_target), (3, channel.id_payload))
        if channel.members[target] & CUMODE_FOUNDER and target is not client:
            # silc-spec 3.4: the founder cannot be removed by force.
            raise CommandError(Status.ERR_NO_CHANNEL_FOPRIV, (2, channel.id_payload))
        client.reply(cmd, Status.OK, [(2, channel.id_payload), (3, target.id_payload)])
        comment = (cmd.args.get(3) or b"").decode("utf-8", "replace")
        self._kick(channel, target, comment, client.id_payload)

    def _cmd_leave(self, client: Client, cmd: Command) -> None:
        channel = self._channel_by_id(cmd.args.get(1))
        if client not in channel.members:
            raise CommandError(Status.ERR_NOT_ON_CHANNEL, (2, channel.id_payload))
        client.reply(cmd, Status.OK, [(2, channel.id_payload)])
        # silc-pp 2.3.7: LEAVE is not sent to the leaving client.
        self._to_channel(channel, NotifyType.LEAVE, (1, client.id_payload), skip=client)
        self._remove_from_channel(channel, client)

    def _cmd_users(self, client: Client, cmd: Command) -> None:
        if cmd.args.get(1) is not None:
            channel = self._channel_by_id(cmd.args.get(1))
        elif cmd.args.get(2) is not None:
            name = cmd.args.get(2)
            channel = self._channel_by_name(name.decode("utf-8"))
            if channel is None:
                raise CommandError(Status.ERR_NO_SUCH_CHANNEL, (2, name))
        else:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        members = list(channel.members)
        client.reply(cmd, Status.OK, [
            (2, channel.id_payload),
            (3, u32(len(members))),
            (4, b"".join(m.id_payload for m in members)),
            (5, b"".join(u32(channel.members[m]) for m in members)),
        ])

    def _cmd_getkey(self, client: Client, cmd: Command) -> None:
        raw = cmd.args.get(1)
        if raw is None:
            raise CommandError(Status.ERR_NOT_ENOUGH_PARAMS)
        ident = SilcId.from_payload(raw)
        if ident.type == ID_SERVER:
            if ident.data != self.id:
                raise CommandError(Status.ERR_NO_SUCH_SERVER_ID, (2, raw))
            key = self.public_key
        else:
            target = self._client_by_id(raw)
            if target is None:
                raise CommandError(Status.ERR_NO_SUCH_CLIENT_ID, (2, raw))
            key = target.public_key
        client.reply(cmd, Status.OK, [(2, raw), (3, public_key_payload(PK_TYPE_SILC, key.encode()))])
