"""SILC channels as link endpoints: one relay client per SILC network.

SILC users are identified by the SHA-1 fingerprint of their public key, so
their puppets stay the same across nick changes and reconnects. Others appear
in SILC through the relay client (`<alice> hello`); in channels whose endpoint says
`xmpp_users: connect`, XMPP users who speak get SILC clients of their own
(`bridge.silc.users`), whose doings the relay client does not pass on. Private messages to and
from the relay client: `bridge.silc.private`. The server's key is pinned on
first use (or given in the config); a changed key is refused.

SILC messages carry no ids: each one relayed gets one minted here, so the message map ties
its copies on the other networks together (a reply or reaction there finds them). Reactions
from elsewhere are gathered into one line per channel every few seconds (`Gatherer`), as on
IRC without message tags.

Bridging ends SILC's end-to-end protection: the bridge holds the channel keys
and decrypts every message it relays. `security()` and `e2e_notice()` say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from bridge.config_types import SilcNetworkConfig
from bridge.core.adapter import Adapter, EventSink
from bridge.core.notices import gap_text, kicked_text, late_mark
from bridge.core.profile import Profile
from bridge.core.roomevents import RoomEvents, topic_setter_text
from bridge.core.semantics import Gatherer, Pacer, Recent, correction_text, reply_text, retraction_text
from bridge.core.users import HOLD, Usage
from bridge.core.events import (
    BRIDGE,
    Endpoint,
    Event,
    Identity,
    Join,
    Kick,
    Message,
    MessageKind,
    NickChange,
    Part,
    Private,
    Reaction,
    Retraction,
    Topic,
)
from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError
from bridge.silc.client import ClientConfig, SilcClient
from bridge.silc.keyguard import KeyGuard
from bridge.silc.message import ChannelKey, MessageFlag
from bridge.silc.private import SilcPrivates
from bridge.silc.users import SilcUsers
from bridge.silc.pubkey import PublicKey, load_or_create_key_pair, normalize_fingerprint, pretty_fingerprint
from bridge.silc.session import CommandError, KeyRefused, NotConnected, SessionConfig, SessionError
from bridge.silc.ske import Proposal
from bridge.silc.text import SIGNATURE_MARKS, clean, decode_text, split_utf8
from bridge.store.base import Store

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 4000  # well inside a 64 KiB SILC packet, and readable
DELIVER_WAIT = 30.0  # how long a delivery waits for the channel to be joined
SERVER = "silc-server"  # native id for changes made by a server, not a user


class SilcAdapter(Adapter):
    protocol = "SILC"

    def __init__(
        self,
        config: SilcNetworkConfig,
        emit: EventSink,
        store: Store,
        *,
        tuning: Mapping[str, Any] | None = None,
    ) -> None:
        """`tuning`: ClientConfig fields (timeouts, backoff, rekey limits) to override."""
        super().__init__(config.name, emit)
        self.config = config
        self.store = store
        self._tuning = dict(tuning or {})
        self.log = log.bind(network=config.name)
        self._rooms: dict[str, str] = {}  # casefolded channel name -> room as configured
        self._private_keys: dict[str, ChannelKey] = {}
        self._guards: dict[str, KeyGuard] = {}  # rooms with a private key
        self._client: SilcClient | None = None
        self._started = asyncio.Event()  # set once run() has made the client
        self._own_fingerprint: str | None = None
        self._key_source = ""
        self.recent = Recent()  # texts relayed here, for corrections and retractions
        self.pacer = Pacer(self._show_correction)
        self.reactions = Gatherer(self._show_reactions)
        self.room_events = RoomEvents()  # kicks and nick changes elsewhere, as lines here
        self.privates = SilcPrivates(self)
        self.users = SilcUsers(self)

    # --- Adapter ---

    def add_endpoint(self, room: str, options: Mapping[str, Any]) -> None:
        self._rooms[room.casefold()] = room
        passphrase = options.get("passphrase")
        if passphrase:
            self._private_keys[room.casefold()] = ChannelKey.from_passphrase(passphrase)
            self._guards[room.casefold()] = KeyGuard(self.network, room, self.log)
        if options.get("xmpp_users") == "connect" and self.config.xmpp_user_clients:
            self.users.rooms.add(room.casefold())
        if self._client is not None:
            self._client.add_channel(room, self._private_keys.get(room.casefold()))

    def remove_endpoint(self, room: str) -> None:
        key = room.casefold()
        self._rooms.pop(key, None)
        self._private_keys.pop(key, None)
        self._guards.pop(key, None)
        self.users.unlinked(room)
        if self._client is not None:
            self._client.remove_channel(room)

    async def run(self) -> None:
        cfg = self.config
        keypair = await asyncio.to_thread(load_or_create_key_pair, cfg.key_dir, cfg.username)
        self._own_fingerprint = keypair.public.fingerprint
        # Perfect forward secrecy: each hourly rekey is a fresh Diffie-Hellman exchange.
        session = SessionConfig(
            username=cfg.username, realname=cfg.realname, password=cfg.password, proposal=Proposal(pfs=True)
        )
        client_config = ClientConfig(
            host=cfg.host,
            port=cfg.port,
            nick=cfg.nick,
            session=session,
            **{"heartbeat": cfg.heartbeat, "ping_timeout": cfg.ping_timeout, **self._tuning},
        )
        self._client = SilcClient(
            self.network, client_config, keypair, self._check_server_key, self._on_event
        )
        for key, room in self._rooms.items():
            self._client.add_channel(room, self._private_keys.get(key))
        self._started.set()
        if not self.users.rooms:
            await self._client.run()
            return
        async with asyncio.TaskGroup() as tasks:
            sweep = tasks.create_task(self.users.run(), name=f"silc {self.network} users")
            await self._client.run()
            sweep.cancel()  # the relay client was closed

    async def deliver(self, room: str, event: Event) -> None:
        """Waits while the channel is not joined (events meanwhile wait in the router's
        bounded queue, where age limits apply), saying so in the log now and then."""
        if isinstance(event, Private):
            await self.privates.deliver(event)
            return
        channel = session = None
        while channel is None or session is None:
            if not self._started.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DELIVER_WAIT):
                        await self._started.wait()
            if self._client is not None:
                channel = await self._client.wait_channel(room, DELIVER_WAIT)
                session = self._client.session
            if channel is None or session is None:
                self.log.warning("silc_not_joined_waiting", room=room, kind=type(event).__name__)
        try:
            if isinstance(event, (Message, Retraction)) and not channel.secured:
                self._guards[room.casefold()].hold_back()
            elif isinstance(event, Message) and event.replaces is not None and event.sender != BRIDGE:
                self.pacer.offer((room, str(event.endpoint), event.replaces), (room, event))
            elif isinstance(event, Message):
                self._send(room, channel, event)
            elif isinstance(event, Retraction):
                old = self.recent.get((str(event.endpoint), event.target))
                self._send(room, channel, Message(event.endpoint, event.sender, retraction_text(old),
                                                  MessageKind.NOTICE, time=event.time))
            elif isinstance(event, Reaction):
                if not event.removed:
                    self.reactions.add(room, clean(event.sender.nick), clean(event.emoji)[:16],
                                       self.recent.get((str(event.endpoint), event.target)))
            elif isinstance(event, Topic):
                if (setter := topic_setter_text(event)) is not None:  # the topic names the relay
                    self._send(room, channel, Message(event.endpoint, BRIDGE, setter, MessageKind.NOTICE))
                await session.set_topic(channel, clean(event.text).replace("\n", " "))
            elif self.users.follow(room, event):  # done by the user's own client
                pass
            elif (line := self.room_events.line(room, event)) is not None:  # kicks, nick changes
                self._send(room, channel, Message(event.endpoint, BRIDGE, line, MessageKind.NOTICE,
                                                  time=event.time))
        except (NotConnected, CommandError, asyncio.TimeoutError, DecodeError) as exc:
            self.log.warning("silc_deliver_failed", room=room, kind=type(event).__name__, reason=str(exc))

    def wants(self, event: Event) -> bool:
        if isinstance(event, Part):  # users' own clients leave with them
            return bool(self.users.rooms)
        return isinstance(event, (Message, Topic, Retraction, Reaction, Kick, NickChange))

    def reach(self, room: str, nick: str) -> str | None:
        return self.privates.reach(room, nick)

    def refuse(self, event: Private, why: str) -> None:
        self.privates.refuse(event, why)

    def _send(self, room: str, channel, event: Message) -> None:
        """From the sender's own client if they have one in the channel, else from the relay."""
        own = self.users.speaker(room, event)
        client, channel = (own.client, own.channel(room)) if own is not None else (self._client, channel)
        flags, chunks = self._chunks(event, own=own is not None)
        for chunk in chunks:
            client.send(channel, chunk, flags)

    def _chunks(self, event: Message, own: bool = False) -> tuple[int, list[bytes]]:
        """`event` as SILC shows it (`_render`), in message-sized pieces."""
        flags, text = self._render(event, own)
        return flags, split_utf8(clean(text), MAX_MESSAGE_BYTES)

    def _show_correction(self, item: object) -> None:
        """The newest of a burst of corrections, when its turn comes (`Pacer`)."""
        room, event = item
        self._send_later(room, event, "correction")

    def _show_reactions(self, room: str, line: str) -> None:
        """The reactions of the last few seconds in `room`, in one line (`Gatherer`)."""
        self._send_later(room, Message(Endpoint(self.network, room), BRIDGE, line, MessageKind.NOTICE),
                         "reactions")

    def _send_later(self, room: str, event: Message, kind: str) -> None:
        """Send what was held back, if the channel can still take it."""
        channel = self._client.channel(room) if self._client is not None else None
        if channel is None or not channel.secured:
            return
        try:
            self._send(room, channel, event)
        except (NotConnected, DecodeError) as exc:
            self.log.warning("silc_deliver_failed", room=room, kind=kind, reason=str(exc))

    async def profile(self, identity: Identity) -> Profile:
        """A SILC user is their key: its fingerprint (the native id) is on the card."""
        known = not identity.native_id.startswith("nick:") and identity.native_id != SERVER
        return Profile(identity.nick, self.network, self.protocol,
                       fingerprint=pretty_fingerprint(identity.native_id) if known else None)

    def is_own(self, identity: Identity) -> bool:
        return identity.network == self.network and (identity.native_id == self._own_fingerprint
                                                     or identity.native_id in self.users.fingerprints)

    def own_clients(self) -> Usage | None:
        return self.users.usage()

    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def in_room(self, room: str) -> bool:
        return self._client is not None and self._client.channel(room) is not None

    def reconnect(self) -> None:
        if self._client is not None and self._client.session is not None:
            self._client.session.fail(SessionError("reconnect asked by an operator"))

    def security(self, room: str | None = None) -> list[str]:
        cfg = self.config
        client = self._client
        session = client.session if client and client.connected else None
        where = f"SILC {self.network} ({cfg.host}:{cfg.port})"
        if session is None or session.ske is None:
            error = client.last_error if client else None
            lines = [f"{where}: not connected" + (f" (last error: {error})" if error else "")]
        else:
            n = session.ske.negotiated
            fp = pretty_fingerprint(session.ske.server_key.fingerprint)
            lines = [
                f"{where}: session {n.cipher} with {n.hmac}, {n.group}, "
                f"perfect forward secrecy {'on' if n.pfs else 'off'}, server key {fp} ({self._key_source})"
            ]
        for key, name in self._rooms.items():
            if room is not None and key != room.casefold():
                continue
            channel = client.channel(name) if client else None
            if key in self._private_keys and channel is not None and not channel.secured:
                state = (
                    "channel private key from a passphrase, but the channel lacks the private-key mode: "
                    "relaying is paused"
                )
            elif key in self._private_keys:
                state = "channel private key from a passphrase (the SILC servers cannot read it)"
            elif channel is None:
                state = "not joined"
            elif channel.mode & 0x4:  # SILC_CMODE_PRIVKEY without our passphrase
                state = "uses a channel private key the bridge does not have: nothing is relayed"
            else:
                state = (
                    f"server-distributed channel key ({channel.cipher}, {channel.hmac}): "
                    "SILC servers can read it"
                )
            lines.append(f"SILC {self.network}/{name}: {state}")
            if key in self.users.rooms:
                lines.append(self.users.security(name))
        lines.append(
            f"SILC {self.network}: the bridge decrypts channel messages to relay them, "
            "so SILC's end-to-end encryption ends at the bridge"
        )
        return lines

    async def close(self) -> None:
        relay = self._client.close("muc-bridge shutting down") if self._client is not None else asyncio.sleep(0)
        await asyncio.gather(relay, self.users.close())

    # --- for the router ---

    def e2e_notice(self, room: str, elsewhere: Iterable[str]) -> str:
        """The notice posted once when a link with this SILC channel starts,
        in the SILC channel (deliver a NOTICE from BRIDGE) and in the MUC."""
        places = ", ".join(elsewhere) or "other networks"
        return (
            f"Messages in SILC channel {room} on {self.network} are relayed by muc-bridge to {places}. "
            "The bridge decrypts them to do so: SILC's end-to-end encryption ends at the bridge."
        )

    # --- server key pinning ---

    def _check_server_key(self, key: PublicKey) -> None:
        cfg = self.config
        seen = key.fingerprint
        where = f"{cfg.host}:{cfg.port}"
        if cfg.server_fingerprint:
            expected = normalize_fingerprint(cfg.server_fingerprint)
            if seen != expected:
                raise KeyRefused(
                    f"SILC server {where} ({self.network}) presented key {pretty_fingerprint(seen)}, "
                    f"but server_fingerprint in the configuration is {pretty_fingerprint(expected)}: "
                    "refusing to connect"
                )
            self._key_source = "as configured"
            return
        pinned = self.store.pinned_key(self.network, where)
        if pinned is None:
            self.store.pin_key(self.network, where, seen)
            self.log.warning("silc_server_key_pinned", host=where, fingerprint=pretty_fingerprint(seen))
            self._key_source = "pinned on first use"
        elif normalize_fingerprint(pinned) != seen:
            raise KeyRefused(
                f"SILC server {where} ({self.network}) presented key {pretty_fingerprint(seen)}, "
                f"but key {pretty_fingerprint(pinned)} was pinned on first use: refusing to connect. "
                "If the server's key really changed, set server_fingerprint to the new one."
            )
        else:
            self._key_source = "pinned"

    # --- SILC events to bridge events ---

    def _on_event(self, event: ev.SessionEvent) -> None:
        out = self._translate(event)
        for item in out:
            self.emit(item)

    def _translate(self, event: ev.SessionEvent) -> list[Event]:
        if isinstance(event, ev.Kicked) and self.users.own(event.target) and not self.users.own(event.kicker):
            # an XMPP user's own client kicked: it holds itself back (`SilcUsers`); the link is told
            return self._on(event.channel, lambda e: self._notice(e, kicked_text(
                event.target.nick, f"{self.network}/{e.room}", event.kicker.nick if event.kicker else "",
                event.reason, HOLD)))
        if self.users.own(getattr(event, "user", None)) or self.users.own(getattr(event, "target", None)):
            return []  # an XMPP user's own client: what it does came from the MUC
        if isinstance(event, ev.ChannelMessage):
            endpoint = self._endpoint(event.channel)
            if endpoint is None:
                return []
            if event.flags & (MessageFlag.DATA | MessageFlag.PACKET):
                self.log.info("silc_data_message_skipped", room=endpoint.room, flags=hex(event.flags))
                return []
            kind = (
                MessageKind.ACTION
                if event.flags & MessageFlag.ACTION
                else MessageKind.NOTICE if event.flags & MessageFlag.NOTICE else MessageKind.PLAIN
            )
            text = SIGNATURE_MARKS[event.signature] + decode_text(event.data, event.flags)
            return [Message(endpoint, self._identity(event.user), text, kind,
                            native_id=f"silc-{secrets.token_hex(8)}")]
        if isinstance(event, ev.Joined):
            return self._on(event.channel, lambda e: Join(e, self._identity(event.user)))
        if isinstance(event, ev.Left):
            return self._on(
                event.channel, lambda e: Part(e, self._identity(event.user), event.reason, event.quit)
            )
        if isinstance(event, ev.NickChanged):
            who = self._identity(event.user)
            return [NickChange(e, who, event.new_nick) for c in event.channels if (e := self._endpoint(c))]
        if isinstance(event, ev.TopicSet):
            return self._on(event.channel, lambda e: Topic(e, self._identity(event.user), event.topic))
        if isinstance(event, ev.Kicked):
            return self._on(
                event.channel,
                lambda e: Kick(e, self._identity(event.kicker), self._identity(event.target), event.reason),
            )
        if isinstance(event, ev.RelayState):
            guard = self._guards[event.channel.casefold()]
            text = guard.paused(event.paused) if event.paused else guard.resumed()
            return self._on(event.channel, lambda e: self._notice(e, text))
        if isinstance(event, ev.Gap):
            self.log.warning("silc_gap", room=event.channel, seconds=round(event.until - event.since, 1))
            return self._on(event.channel, lambda e: self._notice(
                e, gap_text(str(e), event.since, event.until)))
        if isinstance(event, ev.Unreadable):
            told = self._guards[event.channel.casefold()].not_readable(event.server_key)
            return self._on(event.channel, lambda e: self._notice(e, told)) if told else []
        if isinstance(event, ev.PrivateMessage):
            return self.privates.received(event)
        return []

    @staticmethod
    def _notice(endpoint: Endpoint, text: str) -> Message:
        """What the bridge itself says about `endpoint`, for the other rooms of its link."""
        return Message(endpoint, BRIDGE, text, MessageKind.NOTICE)

    def _on(self, channel: str, make) -> list[Event]:
        endpoint = self._endpoint(channel)
        return [make(endpoint)] if endpoint else []

    def _endpoint(self, channel: str) -> Endpoint | None:
        room = self._rooms.get(channel.casefold())
        return Endpoint(self.network, room) if room else None

    def _identity(self, user: ev.User | None) -> Identity:
        if user is None:
            return Identity(self.network, SERVER, "server")
        if user.fingerprint is None:
            self.log.warning("silc_user_without_key", nick=user.nick)
            return Identity(self.network, f"nick:{user.nick}", user.nick)
        return Identity(self.network, user.fingerprint, user.nick)

    def _render(self, event: Message, own: bool = False) -> tuple[int, str]:
        """Flags and text; `own`: said by the sender's own client, so without their nick."""
        if event.sender == BRIDGE:
            return MessageFlag.UTF8 | MessageFlag.NOTICE, event.text
        template = "{text}" if own else \
            self.config.action_format if event.kind is MessageKind.ACTION else self.config.format
        origin, text = str(event.endpoint), event.text
        if event.replaces is not None:
            text = correction_text(self.recent.get((origin, event.replaces)), event.text)
            self.recent.put((origin, event.replaces), event.text)
        elif event.native_id is not None:
            self.recent.put((origin, event.native_id), event.text)
        if event.reply_to is not None:
            text = reply_text(event.reply_nick, text)
        said = late_mark(event) + text
        try:
            text = template.format(nick=event.sender.nick, text=said)
        except (KeyError, IndexError, ValueError):
            text = f"<{event.sender.nick}> {said}"
        flags = {
            MessageKind.ACTION: MessageFlag.ACTION,
            MessageKind.NOTICE: MessageFlag.NOTICE,
            MessageKind.PLAIN: MessageFlag.NONE,
        }[event.kind]
        return MessageFlag.UTF8 | flags, text
