"""Commands (silc-commands 2.3): requests sent with a Command Identifier,
their replies matched back to the waiting coroutine, and the commands the
bridge uses. Part of `Session` (machine.py), which sends and holds the state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from bridge.silc import events as ev
from bridge.silc.buffer import text
from bridge.silc.channel import DEFAULT_HMAC, Channel
from bridge.silc.ids import IdType, SilcId, decode_id_payload, encode_id_payload
from bridge.silc.message import ChannelKey
from bridge.silc.packet import Packet, PacketFlag, PacketType
from bridge.silc.payloads import (
    Arguments,
    ChannelKeyPayload,
    Command,
    CommandPayload,
    PublicKeyPayload,
    Status,
    decode_id_list,
    decode_u32,
    read_list,
)
from bridge.silc.pubkey import PK_TYPE_SILC, PublicKey, decode_public_key
from bridge.silc.session.errors import CommandError, NotConnected
from bridge.silc.session.phase import Phase

MAX_PENDING_COMMANDS = 256


@dataclass
class PendingCommand:
    command: int
    future: asyncio.Future[list[CommandPayload]]
    replies: list[CommandPayload] = field(default_factory=list)


class Commands:
    """Commands and their replies; needs the Session's `phase`, `_pending` and `_send`."""

    async def command(
        self, command: int, *args: tuple[int, bytes | None], timeout: float | None = None
    ) -> list[CommandPayload]:
        """Send a command; return its replies (several for a list reply)."""
        if self.phase is not Phase.CONNECTED:
            raise NotConnected(f"not connected ({self.phase.value})")
        if len(self._pending) >= MAX_PENDING_COMMANDS:
            raise NotConnected("too many commands waiting for replies")
        ident = self._new_ident()
        future: asyncio.Future[list[CommandPayload]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = PendingCommand(command, future)
        self._send(PacketType.COMMAND, CommandPayload(command, ident, Arguments.of(*args)).encode())
        try:
            async with asyncio.timeout(timeout or self.config.command_timeout):
                return await future
        finally:
            self._pending.pop(ident, None)

    def _new_ident(self) -> int:
        """A wrapping 16-bit counter (silc-pp 2.3.13), skipping ones in use."""
        while True:
            self._ident = self._ident % 0xFFFF + 1
            if self._ident not in self._pending:
                return self._ident

    def _on_command_reply(self, p: Packet) -> None:
        if p.src is not None and p.src.type is not IdType.SERVER:
            self.log.warning("silc_reply_not_from_server", src=str(p.src))
            return
        for reply in read_list(CommandPayload.read, p.payload, bool(p.flags & PacketFlag.LIST)):
            pending = self._pending.get(reply.ident)
            if pending is None or pending.command != reply.command or pending.future.done():
                self.log.debug("silc_reply_unexpected", command=reply.command, ident=reply.ident)
                continue
            status = reply.status  # DecodeError here drops the reply
            pending.replies.append(reply)
            if status not in (Status.LIST_START, Status.LIST_ITEM):
                pending.future.set_result(pending.replies)

    async def _ok(
        self, command: int, *args: tuple[int, bytes | None], timeout: float | None = None
    ) -> CommandPayload:
        """A command whose single reply must say OK."""
        reply = (await self.command(command, *args, timeout=timeout))[-1]
        if reply.error != Status.OK:
            raise CommandError(command, reply.error)
        return reply

    def _own_id(self) -> bytes:
        if self.client_id is None:
            raise NotConnected("no Client ID yet")
        return encode_id_payload(self.client_id)

    async def set_nick(self, nick: str) -> None:
        reply = await self._ok(Command.NICK, (1, nick.encode("utf-8")))
        new_id = decode_id_payload(reply.args.get(2) or b"")
        self._renamed(self.client_id.data if self.client_id else b"", new_id)
        self.client_id = new_id
        self.nick = text(reply.args.get(3) or nick.encode("utf-8"))

    async def join(self, name: str, private_key: ChannelKey | None = None) -> Channel:
        reply = await self._ok(Command.JOIN, (1, name.encode("utf-8")), (2, self._own_id()))
        args = reply.args
        channel_id = decode_id_payload(args.get(3) or b"")
        count = decode_u32(args.get(12))
        members = [i.data for i in decode_id_list(args.get(13) or b"", count)]
        modes = dict(zip(members, _u32_list(args.get(14) or b"")))
        channel = Channel(
            name=text(args.get(2) or name.encode()),
            id=channel_id,
            hmac=text(args.get(11)) if args.get(11) else DEFAULT_HMAC,
            mode=decode_u32(args.get(5)),
            own_mode=modes.get(self.client_id.data if self.client_id else b"", 0),
            topic=text(args.get(10) or b""),
            members=set(members),
            private_key=private_key,
        )
        key_payload = (
            ChannelKeyPayload.decode(args.get(7))
            if args.get(7)
            else self._orphan_keys.pop(channel_id.data, None)
        )
        if key_payload is not None:
            self._set_channel_key(channel, key_payload)
        self.channels[channel_id.data] = channel
        self.log.info(
            "silc_joined", channel=channel.name, members=len(channel.members), cipher=channel.cipher
        )
        return channel

    async def leave(self, channel: Channel) -> None:
        self.channels.pop(channel.id.data, None)
        await self._ok(Command.LEAVE, (1, encode_id_payload(channel.id)))

    async def set_mode(self, channel: Channel, mode: int) -> None:
        """Set the channel's whole mode mask (silc-commands CMODE); the reply
        holds the mask the server keeps."""
        args = (1, encode_id_payload(channel.id)), (2, mode.to_bytes(4, "big"))
        reply = await self._ok(Command.CMODE, *args)
        channel.mode = decode_u32(reply.args.get(3))

    async def set_topic(self, channel: Channel, topic: str) -> None:
        await self._ok(Command.TOPIC, (1, encode_id_payload(channel.id)), (2, topic.encode("utf-8")))

    async def users(self, channel: Channel) -> set[bytes]:
        """Refresh the member list of `channel` (silc-commands USERS)."""
        reply = await self._ok(Command.USERS, (1, encode_id_payload(channel.id)))
        count = decode_u32(reply.args.get(3))
        channel.members = {i.data for i in decode_id_list(reply.args.get(4) or b"", count)}
        return channel.members

    async def identify(self, nick: str) -> list[tuple[SilcId, str]]:
        """Client IDs and nicks for a nickname (silc-commands IDENTIFY)."""
        found = []
        for reply in await self.command(Command.IDENTIFY, (1, nick.encode("utf-8"))):
            if reply.error == Status.OK and reply.args.get(2):
                name = text(reply.args.get(3) or b"").split("@", 1)[0]  # nickname[@server]
                found.append((decode_id_payload(reply.args.get(2)), name))
        return found

    async def whois(self, client_id: bytes) -> ev.User | None:
        """Nick, username and key fingerprint of a client (silc-commands WHOIS).
        Without a fingerprint in the reply, GETKEY fetches the key itself."""
        cid = SilcId(IdType.CLIENT, client_id)
        replies = await self.command(
            Command.WHOIS, (4, encode_id_payload(cid)), timeout=self.config.resolve_timeout
        )
        reply = next((r for r in replies if r.error == Status.OK), None)
        if reply is None:
            return None
        user = _whois_user(reply, client_id)
        if user.fingerprint is not None:
            return user
        key = await self.public_key(client_id)
        return replace(user, fingerprint=key.fingerprint if key else None, public_key=key)

    async def whois_many(self, client_ids: list[bytes]) -> list[ev.User]:
        """Several clients in one WHOIS, their Client IDs as arguments 4, 5, ... (silc-commands
        WHOIS); those the server gives no key fingerprint for are left out."""
        ids = [(4 + n, encode_id_payload(SilcId(IdType.CLIENT, i))) for n, i in enumerate(client_ids)]
        asked, users = set(client_ids), []
        for reply in await self.command(Command.WHOIS, *ids, timeout=self.config.resolve_timeout):
            client_id = decode_id_payload(reply.args.get(2) or b"") if reply.error == Status.OK else None
            if client_id is not None and client_id.type is IdType.CLIENT and client_id.data in asked:
                user = _whois_user(reply, client_id.data)
                if user.fingerprint is not None:
                    users.append(user)
        return users

    async def public_key(self, client_id: bytes) -> PublicKey | None:
        """A client's public key as the server has it (silc-commands GETKEY)."""
        reply = await self._ok(Command.GETKEY, (1, encode_id_payload(SilcId(IdType.CLIENT, client_id))))
        data = reply.args.get(3)
        pk = PublicKeyPayload.decode(data) if data else None
        return decode_public_key(pk.key) if pk and pk.pk_type == PK_TYPE_SILC and pk.key else None

    async def ping(self, timeout: float | None = None) -> None:
        if self.server_id is None:
            raise NotConnected("no Server ID known")
        await self._ok(Command.PING, (1, encode_id_payload(self.server_id)), timeout=timeout)

    async def quit(self, message: str = "", timeout: float = 4.0) -> None:
        """QUIT and end the session, within `timeout` seconds.

        QUIT has no reply; the server closes the connection. silcd runs a
        client's commands late when they come fast (QUIT up to 2 s, NICK and
        JOIN 0.2 s) and a late command on a connection already closed closes
        whichever newer connection reuses its socket. So: no new commands,
        wait for the replies still due (a handshake still running is let
        finish), send QUIT and keep reading until the server closes; the
        owner closes the socket when `done` ends. After `timeout` it ends anyway.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.phase in (Phase.KEY_EXCHANGE, Phase.AUTH, Phase.REGISTERING):
            await asyncio.wait(
                [self.registered, self.done], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        if self.phase is Phase.CONNECTED:
            self.phase = Phase.QUITTING
            unanswered = [p.future for p in self._pending.values()]
            if unanswered:
                await asyncio.wait(unanswered, timeout=max(0.0, deadline - loop.time()))
        if self.phase is Phase.QUITTING:
            args = Arguments.of((1, message.encode("utf-8") if message else None))
            self._send(PacketType.COMMAND, CommandPayload(Command.QUIT, self._new_ident(), args).encode())
            await asyncio.wait([self.done], timeout=max(0.0, deadline - loop.time()))
        self.close()


def _whois_user(reply: CommandPayload, client_id: bytes) -> ev.User:
    """Nick, username and key fingerprint (if given) from a WHOIS reply."""
    fingerprint = reply.args.get(9)
    return ev.User(client_id, text(reply.args.get(3) or b"").split("@", 1)[0],
                   fingerprint.hex().upper() if fingerprint and len(fingerprint) == 20 else None,
                   text(reply.args.get(4) or b""))


def _u32_list(data: bytes) -> list[int]:
    """<client mode list>: 32-bit values one after the other (silc-commands JOIN)."""
    return [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data) - 3, 4)]
