"""XMPP users' own SILC clients, in channels whose endpoint says `xmpp_users: connect`.

One client per XMPP identity (real JID, or occupant id) on the network, made when the
user first speaks in such a channel (lazily, as puppets are), under a key pair the bridge
makes once for them and keeps in `key_dir/users/` (mode 0600): SILC users know them by its
fingerprint, the same across restarts. Its nick is their MUC nick as a SILC nickname
(`silc_nick`, with `_` added while someone else in the channel has it); its username is made
of a hash of the identity and its real name says it is an XMPP user: never their JID.

Such a client only speaks: it hears nothing of its channels (`SessionConfig.hears_channels`).
The relay client hears each channel for everyone and drops what these clients say and do
(their fingerprints: `fingerprints`), so nothing of theirs comes back. A private message
to one goes to its user (`SilcPrivates.received_by`); one from its user to a SILC user goes
from it (`SilcPrivates.deliver`).

Until a user's client is in the channel (connecting, reconnecting with backoff after a drop,
kicked out, or over the network's cap `xmpp_user_clients`), their lines go through the relay
client as `<alice> text`: nothing waits for it. A client quits after `xmpp_user_idle` without
a line from its user, when its user leaves the last of its channels, or when it could not
connect for `GIVE_UP` seconds (its user then stays with the relay for `HOLD`).

The shape (capped per network, idle-reaped, reconnecting) is `bridge.irc.users`'s; what
could be shared (the cap, the sweep, the hold) is kept in `SilcUsers` apart from SILC itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import stringprep
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from cryptography.hazmat.primitives import serialization

from bridge.core.events import Event, Identity, Kick, Message, NickChange, Part
from bridge.silc import events as ev
from bridge.silc.channel import Channel
from bridge.silc.client import ClientConfig, SilcClient
from bridge.silc.pubkey import KeyPair, key_pair_from_private, identifier_for, load_or_create_key_pair
from bridge.silc.session import SessionConfig
from bridge.silc.ske import Proposal

if TYPE_CHECKING:
    from bridge.silc.adapter import SilcAdapter

log = structlog.get_logger(__name__)

#: Where users' key pairs are kept, under the network's key_dir.
KEYS = "users"
#: How often clients are checked for idleness (at most; twice per idle time when shorter).
SWEEP = 30.0
#: A client not connected for this long quits; its user speaks through the relay for HOLD.
GIVE_UP = 300.0
HOLD = 600.0
#: silc-spec 3.13: a nickname is at most 128 bytes.
MAX_NICK = 128
#: silc-spec Appendix C: ASCII characters no nickname holds.
_RESERVED = set("!*,?@")
_PROHIBITED = (
    stringprep.in_table_a1, stringprep.in_table_c11, stringprep.in_table_c12, stringprep.in_table_c21,
    stringprep.in_table_c22, stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
    stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
)


def silc_nick(nick: str, spare: int = 0) -> str:
    """A MUC nick as a SILC nickname (silc-spec 3.13.1, the silc-identifier-prep profile of
    Appendix A): normalized (NFKC), what the profile maps to nothing dropped, what it prohibits
    (Appendix C's `!*,?@`, spaces, controls, and symbols outside ASCII, near enough Appendix D)
    becoming `_`; at most 128 bytes less `spare` (room for a suffix)."""
    kept = "".join(c for c in unicodedata.ucd_3_2_0.normalize("NFKC", nick) if not stringprep.in_table_b1(c))
    out = "".join("_" if _prohibited(c) else c for c in kept)
    while len(out.encode("utf-8")) > MAX_NICK - spare:
        out = out[:-1]
    return out or "xmpp"


def _prohibited(c: str) -> bool:
    if c in _RESERVED or any(table(c) for table in _PROHIBITED):
        return True
    return ord(c) > 0x7F and unicodedata.category(c)[0] == "S"


def _digest(identity: Identity) -> str:
    return hashlib.sha256(identity.native_id.encode("utf-8")).hexdigest()


def _username(digest: str) -> str:
    """What SILC shows as the user name: made of the hash, never the JID."""
    return "x" + digest[:9]


def user_key_pair(key_dir: str, identity: Identity) -> KeyPair:
    """The key pair of an XMPP user's client, made on first use (blocking: run in a thread)."""
    digest = _digest(identity)
    return load_or_create_key_pair(Path(key_dir) / KEYS, _username(digest), f"{digest}.pem")


def known_fingerprints(key_dir: str) -> set[str]:
    """The fingerprints of every user key pair made so far (blocking: run in a thread), so
    that a client of an earlier run still on the server is known as the bridge's own."""
    found = set()
    for path in (Path(key_dir) / KEYS).glob("*.pem"):
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            found.add(key_pair_from_private(private, identifier_for(_username(path.stem))).public.fingerprint)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("silc_user_key_unreadable", path=str(path), reason=str(exc))
    return found


class UserClient:
    """One XMPP user's SILC client, and where that user is in the MUC."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.digest = _digest(identity)
        self.client: SilcClient | None = None  # None while its key pair is made
        self.task: asyncio.Task | None = None
        self.rooms: set[str] = set()  # SILC rooms it is to be in, casefolded
        self.occupant = ""  # the user's occupant JID where they last spoke (room@muc/nick)
        self.last_active = time.monotonic()
        self.down_since: float | None = None  # when a sweep first found it not connected
        self.log = log.bind(user_hash=_username(self.digest))

    def channel(self, room: str) -> Channel | None:
        """Its channel `room`, while it is in it and may speak there."""
        client = self.client
        channel = client.channel(room) if client is not None and client.connected else None
        return channel if channel is not None and channel.secured else None

    async def close(self, reason: str) -> None:
        if self.client is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.client.close(reason), 5.0)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class SilcUsers:
    """The network's XMPP users' clients: made, capped, followed and reaped."""

    def __init__(self, adapter: SilcAdapter) -> None:
        self.adapter = adapter
        self.config = adapter.config
        self.network = adapter.network
        self.rooms: set[str] = set()  # casefolded rooms with `xmpp_users: connect`
        self.users: dict[str, UserClient] = {}  # identity native id ->
        self.fingerprints: set[str] = set()  # of every user key pair, kept after its client quits
        self.held: dict[str, float] = {}  # native id -> monotonic time until which the relay speaks
        self._closing: set[asyncio.Task] = set()
        self._full = False  # said in the log that the cap is reached

    def speaker(self, room: str, event: Message) -> tuple[SilcClient, Channel] | None:
        """The client (and its channel) that says `event`, a line from elsewhere, in `room`
        when it is an XMPP user's and their own client is there; else None (the relay says it),
        and their client is made or joins the channel for their next line."""
        sender = event.sender
        if room.casefold() not in self.rooms or sender.network != "xmpp" or event.late:
            return None  # the bridge's own notices, other networks' people, replays
        user = self.users.get(sender.native_id) or self._open(sender, room)
        if user is None:
            return None
        user.identity, user.last_active = sender, time.monotonic()
        user.occupant = f"{event.endpoint.room}/{sender.nick}"
        self._enter(user, room)
        channel = user.channel(room)
        return (user.client, channel) if channel is not None else None

    def follow(self, room: str, event: Event) -> bool:
        """A nick change, leave or kick of an XMPP user's elsewhere: their client does the
        same. True: it is done, the relay need not say it."""
        user = self.users.get(event.sender.native_id) if event.sender.network == "xmpp" else None
        if isinstance(event, Kick) and event.target.network == "xmpp":
            kicked = self.users.get(event.target.native_id)
            if kicked is not None:
                self._leave(kicked, room, "kicked", event.reason)
            return False  # the relay says who kicked them
        if user is None or room.casefold() not in user.rooms:
            return False
        if isinstance(event, NickChange):
            user.identity = event.new_identity
            user.occupant = f"{user.occupant.rpartition('/')[0]}/{event.new_nick}"
            if user.client is not None:
                self._spawn(user.client.change_nick(*self._nicks(event.new_nick, room)))
            return user.channel(room) is not None
        if isinstance(event, Part):
            self._leave(user, room, "left", event.reason)
            return True
        return False

    def own(self, user: ev.User | None) -> bool:
        """True for one of these clients (as the relay client sees it)."""
        return user is not None and user.fingerprint in self.fingerprints

    def client_of(self, identity: Identity) -> SilcClient | None:
        """The connected client of an XMPP user, if they have one."""
        user = self.users.get(identity.native_id) if identity.network == "xmpp" else None
        client = user.client if user is not None else None
        if client is None or not client.connected:
            return None
        user.last_active = time.monotonic()
        return client

    def _open(self, identity: Identity, room: str) -> UserClient | None:
        """A new client for `identity`, unless over the cap or held back."""
        now = time.monotonic()
        if self.held.get(identity.native_id, 0.0) > now:
            return None
        self.held.pop(identity.native_id, None)
        if len(self.users) >= self.config.xmpp_user_clients:
            if not self._full:  # once until one closes
                log.info("silc_user_clients_full", network=self.network, clients=len(self.users))
                self._full = True
            return None
        user = UserClient(identity)
        self.users[identity.native_id] = user
        user.task = asyncio.create_task(self._run(user, room), name=f"silc {self.network} user")
        return user

    async def _run(self, user: UserClient, room: str) -> None:
        cfg = self.config
        keypair = await asyncio.to_thread(user_key_pair, cfg.key_dir, user.identity)
        self.fingerprints.add(keypair.public.fingerprint)
        nick, alts = self._nicks(user.identity.nick, room)
        session = SessionConfig(username=_username(user.digest), realname="XMPP user, through muc-bridge",
                                password=cfg.password, proposal=Proposal(pfs=True), hears_channels=False)
        client_config = ClientConfig(
            host=cfg.host, port=cfg.port, nick=nick, alt_nicks=alts, session=session,
            **{"heartbeat": cfg.heartbeat, "ping_timeout": cfg.ping_timeout, **self.adapter._tuning},
        )
        user.client = SilcClient(self.network, client_config, keypair, self.adapter._check_server_key,
                                 self._heard(user))
        user.client.log = user.log.bind(network=self.network)
        for key in user.rooms:
            user.client.add_channel(self.adapter._rooms[key], self.adapter._private_keys.get(key))
        user.log.info("silc_user_client_opened", clients=len(self.users))
        await user.client.run()

    def _heard(self, user: UserClient) -> Callable[[ev.SessionEvent], None]:
        def on_event(event: ev.SessionEvent) -> None:
            if isinstance(event, ev.PrivateMessage) and user.occupant:
                for item in self.adapter.privates.received_by(event, user.client, user.identity, user.occupant):
                    self.adapter.emit(item)
            elif isinstance(event, ev.SelfRemoved):  # kicked: the relay speaks for them a while
                user.rooms.discard(event.channel.casefold())
                if user.client is not None:
                    user.client.specs.pop(event.channel.casefold(), None)
                self.held[user.identity.native_id] = time.monotonic() + HOLD
                self._close(user, "kicked")
        return on_event

    def _enter(self, user: UserClient, room: str) -> None:
        key = room.casefold()
        if key in user.rooms:
            return
        user.rooms.add(key)
        if user.client is not None:
            user.client.add_channel(self.adapter._rooms[key], self.adapter._private_keys.get(key))

    def _leave(self, user: UserClient, room: str, why: str, message: str) -> None:
        user.rooms.discard(room.casefold())
        if not user.rooms:
            self._close(user, why, message)
        elif user.client is not None:
            user.client.remove_channel(room)

    def _nicks(self, nick: str, room: str) -> tuple[str, tuple[str, ...]]:
        """The SILC nick for MUC nick `nick`, and alternatives: the first is the one nobody
        else in `room` has (SILC nicknames need not be unique, but people must tell them apart)."""
        base = silc_nick(nick, spare=2)
        choices = [base, base + "_", base + "__"]
        free = [n for n in choices if not self._taken(n, room)]
        return (free or choices)[0], tuple(n for n in choices if n != (free or choices)[0])

    def _taken(self, nick: str, room: str) -> bool:
        """Someone (not one of these clients) in `room` is called `nick`, as the relay sees."""
        return self.adapter.privates.member(nick, room) is not None

    def _close(self, user: UserClient, why: str, message: str = "") -> None:
        """Quit `user`'s client, for reason `why` (logged), with the QUIT message `message`
        (their own words, not logged) or else `why`."""
        if self.users.get(user.identity.native_id) is user:
            del self.users[user.identity.native_id]
        self._full = False
        user.log.info("silc_user_client_closed", reason=why, clients=len(self.users))
        self._spawn(user.close(message or why))

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def run(self) -> None:
        """Learn the key pairs made before; quit idle clients and those that cannot connect."""
        self.fingerprints |= await asyncio.to_thread(known_fingerprints, self.config.key_dir)
        idle = self.config.xmpp_user_idle
        while True:
            await asyncio.sleep(min(SWEEP, idle / 2))
            now = time.monotonic()
            for user in list(self.users.values()):
                connected = user.client is not None and user.client.connected
                user.down_since = None if connected else (user.down_since or now)
                if now - user.last_active >= idle:
                    self._close(user, "idle")
                elif user.down_since is not None and now - user.down_since >= GIVE_UP:
                    self.held[user.identity.native_id] = now + HOLD
                    self._close(user, "could not connect")
            self.held = {k: until for k, until in self.held.items() if until > now}

    async def close(self) -> None:
        users, self.users = list(self.users.values()), {}
        await asyncio.gather(*(u.close("muc-bridge shutting down") for u in users), *self._closing,
                             return_exceptions=True)
