"""Notifies (silc-pp 2.3.7): who joined, left, changed nick or topic, and
channel changes. Part of `Session` (machine.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError, text
from bridge.silc.channel import Channel
from bridge.silc.crypto import CryptoError
from bridge.silc.ids import IdType, SilcId, decode_id_payload
from bridge.silc.packet import Packet, PacketFlag
from bridge.silc.payloads import Notify, NotifyPayload, decode_u32, read_list, status_name


class Notifies:
    """Notify handlers; needs the Session's `channels`, `_users` and `_queue_event`."""

    def _on_notify(self, p: Packet) -> None:
        for notify in read_list(NotifyPayload.read, p.payload, bool(p.flags & PacketFlag.LIST)):
            handler = _NOTIFY_HANDLERS.get(notify.type)
            if handler is None:
                self.log.debug("silc_notify_ignored", type=notify.type)
                continue
            try:
                handler(self, p, notify.args)
            except DecodeError as exc:
                self.log.warning("silc_notify_malformed", type=notify.type, reason=str(exc))

    def _channel_of(self, p: Packet, client: bytes) -> list[Channel]:
        """Notifies to a channel name it as the destination; otherwise the
        channels the client is on."""
        if p.dst is not None and p.dst.type is IdType.CHANNEL:
            channel = self.channels.get(p.dst.data)
            return [channel] if channel else []
        return [c for c in self.channels.values() if client in c.members]

    def _n_text(self, p: Packet, args) -> None:
        self.log.info("silc_server_notice", text=text(args.get(1) or b""))

    def _n_join(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        channel = self.channels.get(decode_id_payload(args.get(2) or b"").data)
        if channel is None or client in channel.members:
            return
        channel.members.add(client)
        if not self._is_own(client):
            self._queue_event((client,), lambda user: user and ev.Joined(channel.name, user))

    def _n_leave(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        for channel in self._channel_of(p, client):
            self._departed(channel, client, "", quit=False)

    def _n_signoff(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        reason = text(args.get(2) or b"")
        for channel in self._channel_of(p, client):
            self._departed(channel, client, reason, quit=True)

    def _n_killed(self, p: Packet, args) -> None:
        client = _client_arg(args, 1)
        reason = "killed: " + text(args.get(2) or b"")
        for channel in [c for c in self.channels.values() if client in c.members]:
            self._departed(channel, client, reason, quit=True)

    def _n_server_signoff(self, p: Packet, args) -> None:
        for data in args.items:
            if data[0] == 1:
                continue
            client = decode_id_payload(data[1]).data
            for channel in [c for c in self.channels.values() if client in c.members]:
                self._departed(channel, client, "server signoff", quit=True)

    def _departed(self, channel: Channel, client: bytes, reason: str, quit: bool) -> None:
        if client not in channel.members:
            return
        channel.members.discard(client)
        if self._is_own(client):
            return
        # Someone never resolved cannot be named once gone: skipped by build.
        self._queue_event((client,), lambda user: user and ev.Left(channel.name, user, reason, quit))

    def _n_kicked(self, p: Packet, args) -> None:
        target = _client_arg(args, 1)
        reason = text(args.get(2) or b"")
        by = decode_id_payload(args.get(3)) if args.get(3) else None
        kicker = by.data if by is not None and by.type is IdType.CLIENT else b""  # or a server
        for channel in self._channel_of(p, target):
            channel.members.discard(target)
            if self._is_own(target):
                self.channels.pop(channel.id.data, None)
                self._queue_event((), lambda ch=channel: ev.SelfRemoved(ch.name, reason))
                continue
            ids = (target, kicker) if kicker else (target,)

            def build(user, by=None, ch=channel):
                return user and ev.Kicked(ch.name, user, by, reason)

            self._queue_event(ids, build)

    def _n_nick_change(self, p: Packet, args) -> None:
        old = _client_arg(args, 1)
        new = decode_id_payload(args.get(2) or b"")
        nick = text(args.get(3) or b"")
        channels = tuple(c.name for c in self.channels.values() if old in c.members)
        before = self._users.get(old)
        self._renamed(old, new, nick)
        if self._is_own(old):
            self.client_id, self.nick = new, nick
            return
        if before is None or before.nick == nick or not channels:
            return
        self._queue_event((), lambda: ev.NickChanged(channels, before, nick))

    def _renamed(self, old: bytes, new: SilcId, nick: str | None = None) -> None:
        """A nick change gives a new Client ID (silc-commands NICK)."""
        for channel in self.channels.values():
            if old in channel.members:
                channel.members.discard(old)
                channel.members.add(new.data)
        user = self._users.get(old)
        if user is not None:
            self._remember(replace(user, client_id=new.data, nick=nick or user.nick))

    def _n_topic(self, p: Packet, args) -> None:
        setter = decode_id_payload(args.get(1) or b"")
        topic = text(args.get(2) or b"")
        channels = self._channel_of(p, setter.data)
        if len(channels) != 1:
            self.log.info("silc_topic_channel_unknown", dst=str(p.dst))
            return
        channel = channels[0]
        channel.topic = topic
        if self._is_own(setter.data):
            return
        if setter.type is IdType.CLIENT:
            self._queue_event((setter.data,), lambda user: ev.TopicSet(channel.name, user, topic))
        else:
            self._queue_event((), lambda: ev.TopicSet(channel.name, None, topic))

    def _n_cmode(self, p: Packet, args) -> None:
        channel = self.channels.get(p.dst.data) if p.dst and p.dst.type is IdType.CHANNEL else None
        if channel is None:
            return
        channel.mode = decode_u32(args.get(2))
        self._queue_event((), lambda: ev.ModeChanged(channel.name))
        hmac = args.get(4)
        if hmac:
            try:
                channel.set_hmac(text(hmac))
            except CryptoError as exc:
                self.log.warning(
                    "silc_channel_hmac_unusable", channel=channel.name, reason=str(exc), kept=channel.hmac
                )
        self.log.info("silc_channel_mode", channel=channel.name, mode=hex(channel.mode))

    def _n_cumode(self, p: Packet, args) -> None:
        """Only the bridge's own channel user mode matters: it may found the channel."""
        target = _client_arg(args, 3)
        mode = decode_u32(args.get(2))
        for channel in self._channel_of(p, target):
            if self._is_own(target) and channel.own_mode != mode:
                channel.own_mode = mode
                self._queue_event((), lambda ch=channel: ev.ModeChanged(ch.name))

    def _n_channel_change(self, p: Packet, args) -> None:
        old = decode_id_payload(args.get(1) or b"")
        new = decode_id_payload(args.get(2) or b"")
        channel = self.channels.pop(old.data, None)
        if channel is not None:
            channel.id = new
            self.channels[new.data] = channel

    def _n_error(self, p: Packet, args) -> None:
        status = (args.get(1) or b"\x00")[0]
        self.log.warning("silc_server_error", status=status_name(status))


_NOTIFY_HANDLERS: dict[int, Callable] = {
    Notify.NONE: Notifies._n_text,
    Notify.MOTD: Notifies._n_text,
    Notify.JOIN: Notifies._n_join,
    Notify.LEAVE: Notifies._n_leave,
    Notify.SIGNOFF: Notifies._n_signoff,
    Notify.TOPIC_SET: Notifies._n_topic,
    Notify.NICK_CHANGE: Notifies._n_nick_change,
    Notify.CMODE_CHANGE: Notifies._n_cmode,
    Notify.CUMODE_CHANGE: Notifies._n_cumode,
    Notify.CHANNEL_CHANGE: Notifies._n_channel_change,
    Notify.SERVER_SIGNOFF: Notifies._n_server_signoff,
    Notify.KICKED: Notifies._n_kicked,
    Notify.KILLED: Notifies._n_killed,
    Notify.ERROR: Notifies._n_error,
}


def _client_arg(args, number: int) -> bytes:
    sid = decode_id_payload(args.get(number) or b"")
    if sid.type is not IdType.CLIENT:
        raise DecodeError(f"argument {number} is a {sid.type.name} ID, not a client")
    return sid.data
