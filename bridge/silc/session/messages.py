"""Channel and private messages (silc-spec 4.5, 4.7) and channel keys
(silc-spec 4.4). Part of `Session` (machine.py).
"""

from __future__ import annotations

from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError
from bridge.silc.channel import Channel
from bridge.silc.crypto import CryptoError
from bridge.silc.ids import IdType, SilcId
from bridge.silc.message import (
    ChannelKey,
    MessageFlag,
    MessagePayload,
    NoKeyMatches,
    check_signature,
    decode_plain,
    decrypt_channel_message,
    encode_plain,
    encrypt_channel_message,
)
from bridge.silc.packet import Packet, PacketFlag, PacketType
from bridge.silc.payloads import ChannelKeyPayload
from bridge.silc.session.errors import NotConnected


class Messages:
    """Sending and receiving messages; needs the Session's `channels`, `_send` and `_queue_event`."""

    def send_channel_message(self, channel: Channel, data: bytes, flags: int = MessageFlag.UTF8) -> None:
        key = channel.sending_key()
        if key is None or self.client_id is None:
            why = "lacks the private-key mode" if channel.private_key else "has no key yet"
            raise NotConnected(f"channel {channel.name} {why}")
        payload = encrypt_channel_message(key, flags, data, self.client_id.data, channel.id.data)
        self._send(PacketType.CHANNEL_MESSAGE, payload, dst=channel.id)

    def send_private_message(self, client_id: bytes, data: bytes, flags: int = MessageFlag.UTF8) -> None:
        self._send(
            PacketType.PRIVATE_MESSAGE, encode_plain(flags, data), dst=SilcId(IdType.CLIENT, client_id)
        )

    def _on_channel_message(self, p: Packet) -> None:
        channel = self.channels.get(p.dst.data) if p.dst and p.dst.type is IdType.CHANNEL else None
        if channel is None or p.src is None or p.src.type is not IdType.CLIENT:
            self.log.debug("silc_channel_message_ignored", dst=str(p.dst))
            return
        sender = p.src.data
        if self._is_own(sender) or not self.config.hears_channels:
            return
        try:
            msg, _ = decrypt_channel_message(channel.receiving_keys(), p.payload, sender, channel.id.data)
        except NoKeyMatches:
            if channel.private_key is None:  # under a private key we were not given
                self.log.debug("silc_channel_message_undecryptable", channel=channel.name)
            else:  # a wrong passphrase, or the server's key where ours belongs: never relayed
                server_key = _opens(channel.server_keys(), p.payload, sender, channel.id.data)
                self._queue_event((), lambda: ev.Unreadable(channel.name, server_key))
            return
        except DecodeError as exc:
            self.log.warning("silc_channel_message_malformed", channel=channel.name, reason=str(exc))
            return

        def build(user: ev.User | None) -> ev.SessionEvent | None:
            if user is None:
                return None
            signature = check_signature(msg.signed, user.fingerprint, user.public_key)
            return ev.ChannelMessage(channel.name, user, msg.flags, msg.data, signature)

        self._queue_event((sender,), build, _needs_sender_key(msg))

    def _on_private_message(self, p: Packet) -> None:
        if p.src is None or p.src.type is not IdType.CLIENT:
            self.log.info("silc_private_message_ignored", src=str(p.src))
            return
        if p.flags & PacketFlag.PRIVMSG_KEY:  # the bridge has no private message keys: unread
            self._queue_event((p.src.data,), lambda u: u and ev.PrivateMessage(u, 0, b"", keyed=True),
                              private=True)
            return
        msg = decode_plain(p.payload)
        if msg.flags & MessageFlag.PACKET:
            self.log.info("silc_private_key_negotiation_refused", sender=p.src.data.hex())
            return

        def build(user: ev.User | None) -> ev.SessionEvent | None:
            if user is None:
                return None
            signature = check_signature(msg.signed, user.fingerprint, user.public_key)
            return ev.PrivateMessage(user, msg.flags, msg.data, signature)

        self._queue_event((p.src.data,), build, _needs_sender_key(msg), private=True)

    def _on_channel_key(self, p: Packet) -> None:
        payload = ChannelKeyPayload.decode(p.payload)
        channel = self.channels.get(payload.channel_id)
        if channel is None:  # the JOIN reply is still on its way
            self._orphan_keys[payload.channel_id] = payload
            while len(self._orphan_keys) > 16:
                self._orphan_keys.popitem(last=False)
            return
        self._set_channel_key(channel, payload)

    def _set_channel_key(self, channel: Channel, payload: ChannelKeyPayload) -> None:
        try:
            channel.set_server_key(payload.cipher, payload.key)
        except CryptoError as exc:
            self.log.warning("silc_channel_key_unusable", channel=channel.name, reason=str(exc))


def _needs_sender_key(msg: MessagePayload) -> bool:
    """A signed message that names only its key type (silc-flags-payloads 3.3)."""
    return msg.signed is not None and not msg.signed.public_key.key


def _opens(keys: list[ChannelKey], payload: bytes, sender: bytes, channel: bytes) -> bool:
    try:
        decrypt_channel_message(keys, payload, sender, channel)
    except DecodeError:
        return False
    return True
