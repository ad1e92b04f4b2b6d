"""The test server's state: its clients and channels, one standalone cell.

Being its own router, the server creates channels and their keys itself
(silc-spec 4.3, 4.4) and tells the members what happens (silc-pp 2.3.7).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import structlog

from .crypto import CIPHERS, KeyPair, SilcPublicKey
from .identifiers import channel_id, prepare_channel, prepare_nickname
from .message import ChannelKey
from .numbers import CMODE_PRIVKEY, NotifyType, PacketType
from .packet import Packet, PacketStream
from .ske import Session
from .wire import (
    ID_CHANNEL,
    ID_CLIENT,
    ID_SERVER,
    ArgMap,
    ChannelKeyPayload,
    Command,
    Notify,
    SilcId,
    status_payload,
)

log = structlog.get_logger(__name__)

CHANNEL_CIPHER = "aes-256-cbc"  # silcd's channel defaults (README)
CHANNEL_HMAC = "hmac-sha1-96"
MAX_WRITE_BUFFER = 4 * 1024 * 1024


@dataclass(eq=False)
class Channel:
    name: str
    prepared: str
    id: bytes
    key: ChannelKey
    members: dict[Client, int] = field(default_factory=dict)  # client -> channel user mode
    topic: str | None = None
    mode: int = 0

    @property
    def private_keys(self) -> bool:
        """CMODE_PRIVKEY: the clients bring their own key, the server makes none."""
        return bool(self.mode & CMODE_PRIVKEY)

    @property
    def id_payload(self) -> bytes:
        return SilcId(ID_CHANNEL, self.id).payload()


class Client:
    """One client connection, from key exchange to signoff."""

    def __init__(self, cell: Cell, stream: PacketStream, host: str) -> None:
        self.cell = cell
        self.stream = stream
        self.host = host
        self.session: Session | None = None
        self.id: bytes | None = None
        self.old_id: bytes | None = None  # still accepted as source after a NICK
        self.nick = ""
        self.prepared_nick = ""
        self.username = ""
        self.realname = ""
        self.channels: list[Channel] = []
        self.last_receive = time.monotonic()
        self.rekey: dict | None = None  # responder rekey in progress
        self.blackholed = False  # nothing sent to it, nothing it sends acted on

    @property
    def public_key(self) -> SilcPublicKey | None:
        return self.session.peer_key if self.session else None

    @property
    def fingerprint(self) -> str | None:
        return self.public_key.fingerprint if self.public_key else None

    @property
    def registered(self) -> bool:
        return self.id is not None

    @property
    def id_payload(self) -> bytes:
        return SilcId(ID_CLIENT, self.id).payload()

    def nick_at_server(self) -> bytes:
        return f"{self.nick}@{self.cell.server_name}".encode()

    def send(self, ptype: int, data: bytes = b"", *, flags: int = 0,
             src: tuple[int, bytes] | None = None, dst: tuple[int, bytes] | None = None) -> None:
        """Send from the server (or `src`) to this client (or `dst`)."""
        if self.blackholed:
            return
        src_type, src_id = src or (ID_SERVER, self.cell.server_id)
        if dst is None:
            dst = (ID_CLIENT, self.id) if self.id else (0, b"")
        self.stream.send(Packet(ptype, data, flags, src_type, src_id, dst[0], dst[1]))
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


class Cell:
    """Clients and channels of a standalone server."""

    def __init__(self, server_name: str, key_pair: KeyPair) -> None:
        self.server_name = server_name
        self.key_pair = key_pair
        self.server_id = b""
        self.clients: list[Client] = []
        self.channels: dict[str, Channel] = {}  # by prepared name
        self._channel_counter = 0

    @property
    def server_id_payload(self) -> bytes:
        return SilcId(ID_SERVER, self.server_id).payload()

    # --- lookups ---

    def registered(self) -> list[Client]:
        return [c for c in self.clients if c.registered]

    def client_by_nick(self, nick: str) -> Client | None:
        """`nick` may carry @server; unknown or malformed nicknames give None."""
        name, _, server = nick.partition("@")
        try:
            prepared = prepare_nickname(name)
        except ValueError:
            return None
        if server and server.lower() != self.server_name.lower():
            return None
        return next((c for c in self.registered() if c.prepared_nick == prepared), None)

    def clients_by_nick(self, nick: str) -> list[Client]:
        """Nicknames are not unique in SILC (silc-spec 3.1)."""
        first = self.client_by_nick(nick)
        return [c for c in self.registered() if first and c.prepared_nick == first.prepared_nick]

    def client_ids(self) -> list[bytes]:
        return [c.id for c in self.registered()]

    def client_by_id(self, ident: SilcId) -> Client | None:
        return next((c for c in self.registered() if ident.type == ID_CLIENT and c.id == ident.data), None)

    def channel_by_name(self, name: str) -> Channel | None:
        try:
            return self.channels.get(prepare_channel(name))
        except ValueError:
            return None

    def channel_by_id(self, ident: SilcId) -> Channel | None:
        return next((c for c in self.channels.values()
                     if ident.type == ID_CHANNEL and c.id == ident.data), None)

    def peers_of(self, client: Client) -> list[Client]:
        """Everyone sharing a channel with `client`, once each, not `client`."""
        seen: dict[Client, None] = {}
        for channel in client.channels:
            for member in channel.members:
                if member is not client:
                    seen[member] = None
        return list(seen)

    # --- changes ---

    def create_channel(self, name: str, prepared: str, cipher: str, hmac: str) -> Channel:
        """A new channel with a cipher and HMAC known to crypto.CIPHERS / HMACS."""
        self._channel_counter += 1
        channel = Channel(name, prepared, channel_id(self.server_id, self._channel_counter),
                          ChannelKey(cipher, b"", hmac))
        self.channels[prepared] = channel
        return channel

    def tell_channel(self, channel: Channel, kind: NotifyType, *args: tuple[int, bytes],
                     skip: Client | None = None) -> None:
        for member in list(channel.members):
            if member is not skip:
                member.notify(kind, *args, dst=(ID_CHANNEL, channel.id))

    def new_channel_key(self, channel: Channel) -> None:
        """A fresh key (silc-spec 4.4), sent as CHANNEL_KEY to the current members,
        unless the channel uses private keys."""
        if channel.private_keys:
            return
        channel.key = ChannelKey(channel.key.cipher, os.urandom(CIPHERS[channel.key.cipher][0]),
                                 channel.key.hmac)
        payload = ChannelKeyPayload(channel.id, channel.key.cipher, channel.key.key).encode()
        for member in channel.members:
            member.send(PacketType.CHANNEL_KEY, payload)

    def remove_from_channel(self, channel: Channel, client: Client) -> None:
        """Remove a member; the others get a new key (silc-spec 4.4), an empty
        channel ceases to exist (silc-spec 3.4)."""
        channel.members.pop(client, None)
        if channel in client.channels:
            client.channels.remove(channel)
        if channel.members:
            self.new_channel_key(channel)
        else:
            del self.channels[channel.prepared]

    def kick(self, channel: Channel, target: Client, comment: str, kicker: bytes) -> None:
        """KICKED to the channel, the kicked client included (silc-pp 2.3.7)."""
        args = [(1, target.id_payload), (3, kicker)]
        if comment:
            args.insert(1, (2, comment.encode()))
        self.tell_channel(channel, NotifyType.KICKED, *args)
        self.remove_from_channel(channel, target)

    def forget(self, client: Client, *, notify: bool = True, message: str | None = None) -> None:
        """Remove a client.  Like silcd, each of its channels hears SIGNOFF
        (silc-spec 4.10), with the message only when there is one."""
        if client not in self.clients:
            return
        self.clients.remove(client)
        for channel in list(client.channels):
            channel.members.pop(client, None)
            if notify and client.registered:
                args = [(1, client.id_payload)] + ([(2, message.encode())] if message else [])
                self.tell_channel(channel, NotifyType.SIGNOFF, *args)
            self.remove_from_channel(channel, client)
