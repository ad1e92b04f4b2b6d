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

Made lazily, capped (`xmpp_user_clients`), idle-reaped (`xmpp_user_idle`), held back after a
kick, with the relay speaking for its user meanwhile: `bridge.core.users`, which IRC's
(`bridge.irc.plumbed`) shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import stringprep
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from cryptography.hazmat.primitives import serialization

from bridge.core.events import Identity
from bridge.core.users import OwnClient, OwnClients
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


def key_path(key_dir: str, identity: Identity) -> Path:
    return Path(key_dir) / KEYS / f"{_digest(identity)}.pem"


def user_key_pair(key_dir: str, identity: Identity) -> KeyPair:
    """The key pair of an XMPP user's client, made on first use (blocking: run in a thread)."""
    path = key_path(key_dir, identity)
    return load_or_create_key_pair(path.parent, _username(_digest(identity)), path.name)


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


class UserClient(OwnClient):
    """One XMPP user's SILC client."""

    def __init__(self, identity: Identity, network: str) -> None:
        super().__init__(identity)
        self.digest = _digest(identity)
        self.client: SilcClient | None = None  # None while its key pair is made
        self.task: asyncio.Task | None = None
        self.log = log.bind(network=network, user_hash=_username(self.digest))

    def channel(self, room: str) -> Channel | None:
        """Its channel `room`, while it is in it and may speak there."""
        client = self.client
        channel = client.channel(room) if client is not None and client.connected else None
        return channel if channel is not None and channel.secured else None


class SilcUsers(OwnClients[UserClient]):
    """The network's XMPP users' SILC clients."""

    def __init__(self, adapter: SilcAdapter) -> None:
        super().__init__(adapter.network, adapter.config.xmpp_user_clients, adapter.config.xmpp_user_idle)
        self.adapter = adapter
        self.config = adapter.config
        self.fingerprints: set[str] = set()  # of every user key pair, kept after its client quits

    def own(self, user: ev.User | None) -> bool:
        """True for one of these clients (as the relay client sees it)."""
        return user is not None and user.fingerprint in self.fingerprints

    def security(self, room: str) -> str:
        """What the network sees of XMPP users in `room`."""
        return (f"SILC {self.network}/{room}: XMPP users who speak appear as SILC clients of their own "
                f"(their nick), at most {self.cap} at once, each with a key pair the bridge made and "
                "keeps for them (SILC users know them by its fingerprint; the bridge holds the private "
                "keys), a user name made of a hash of their JID (whoever guesses the JID can check it; "
                "not the JID itself) and the real name \"XMPP user, through muc-bridge\"")

    def _start(self, identity: Identity, room: str) -> UserClient:
        user = UserClient(identity, self.network)
        user.task = asyncio.create_task(self._run(user, room), name=f"silc {self.network} user")
        return user

    def _ready(self, user: UserClient, room: str) -> bool:
        return user.channel(room) is not None

    def _connected(self, user: UserClient) -> bool:
        return user.client is not None and user.client.connected

    async def _run(self, user: UserClient, room: str) -> None:
        cfg = self.config
        try:
            keypair = await asyncio.to_thread(user_key_pair, cfg.key_dir, user.identity)
        except (OSError, ValueError, TypeError) as exc:
            # A new key would make them someone else to SILC users: never made in its place.
            user.log.error("silc_user_key_unreadable", path=str(key_path(cfg.key_dir, user.identity)),
                           error=str(exc) or type(exc).__name__,
                           fix="repair or restore the file; removing it gives the user a new key and "
                               "fingerprint; until a restart the relay speaks for them")
            self.hold(user, "key unreadable")
            self.held[user.identity.native_id] = math.inf  # until a restart: said once
            return
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
        user.client.log = user.log
        for key in user.rooms:
            user.client.add_channel(self.adapter._rooms[key], self.adapter._private_keys.get(key))
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
                self.hold(user, "kicked")
        return on_event

    def _join(self, user: UserClient, room: str) -> None:
        if user.client is not None:
            key = room.casefold()
            user.client.add_channel(self.adapter._rooms[key], self.adapter._private_keys.get(key))

    def _part(self, user: UserClient, room: str) -> None:
        if user.client is not None:
            user.client.remove_channel(room)

    def _rename(self, user: UserClient, nick: str, room: str) -> None:
        if user.client is not None:
            self._spawn(user.client.change_nick(*self._nicks(nick, room)))

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

    def _quit(self, user: UserClient, message: str) -> Awaitable[None]:
        return self._closed(user, message)

    async def _closed(self, user: UserClient, message: str) -> None:
        if user.client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await user.client.close(message)
        if user.task is not None:
            user.task.cancel()
            await asyncio.gather(user.task, return_exceptions=True)

    async def run(self) -> None:
        """Learn the key pairs made before; then keep the clients (`OwnClients.run`)."""
        self.fingerprints |= await asyncio.to_thread(known_fingerprints, self.config.key_dir)
        await super().run()
