"""A SILC test server and a scripted SILC user, written from the drafts in
shared/specs/silc (and checked against silcd 1.1.18 and the silc 1.1.11
client), independently of bridge/silc.

Server::

    async with SilcTestServer(auth="none") as server:      # 127.0.0.1, free port
        server.port, server.fingerprint, server.public_key
        await server.wait_until(lambda s: "bridge" in s.channel_nicks("hackers"))
        server.nicks(); server.channel_nicks("hackers"); server.topic("hackers")
        server.channel_mode("hackers")                      # mode mask, e.g. CMODE_PRIVKEY
        server.client("bridge").fingerprint                 # the key it used in SKE
        await server.kick("bridge", "hackers", "comment")   # KICKED, kicker = Server ID
        await server.kill("bridge", "comment")              # KILLED, DISCONNECT, close
        await server.disconnect("bridge", "message")        # DISCONNECT, close
        await server.drop("bridge"); await server.drop_all()  # cut TCP, no word
        server.blackhole("bridge")                          # TCP open, no answer
        server.change_key()                                 # new key from the next SKE on

    Options: auth="none" | "passphrase" (passphrase=...) | "publickey"
    (client_keys=(fingerprint, ...)), algorithms=Algorithms(...), key_pair=,
    server_name=, motd=, port=, handshake_timeout=.

User::

    async with TestUser("alice", server.port) as alice:    # SKE, auth, NEW_CLIENT
        await alice.join("hackers")                         # -> member nicks
        await alice.say("hackers", "hello", action=False, notice=False)
        msg = await alice.wait_for(ChannelMessage, nick="bob", text="hi")
        await alice.msg("bob", "private"); await alice.set_nick("alice2")
        await alice.set_topic(...); await alice.kick(...); await alice.users(...)
        await alice.set_mode("hackers", CMODE_PRIVKEY)         # founder only
        alice.set_private_key("hackers", "passphrase")        # Toolkit derivation
        await alice.whois("bob"); await alice.getkey("bob"); await alice.ping()
        await alice.rekey(); await alice.leave("hackers"); await alice.quit("bye")

    Events (wait_for / events_of): ChannelMessage, PrivateMessage, Joined, Left,
    SignedOff, NickChanged, TopicSet, ModeChanged, Kicked, Killed, ServerNotice,
    NotifyError, Disconnected.
"""

from .crypto import KeyPair, SilcPublicKey, cached_key_pair
from .server import SilcTestServer
from .ske import Algorithms, SkeError
from .user import (
    ChannelMessage,
    CommandFailed,
    Disconnected,
    Joined,
    Kicked,
    Killed,
    Left,
    ModeChanged,
    NickChanged,
    NotifyError,
    PrivateMessage,
    Refused,
    ServerKeyMismatch,
    ServerNotice,
    SignedOff,
    TestUser,
    TopicSet,
)

__all__ = [
    "Algorithms",
    "ChannelMessage",
    "CommandFailed",
    "Disconnected",
    "Joined",
    "KeyPair",
    "Kicked",
    "Killed",
    "Left",
    "ModeChanged",
    "NickChanged",
    "NotifyError",
    "PrivateMessage",
    "Refused",
    "ServerKeyMismatch",
    "ServerNotice",
    "SignedOff",
    "SilcPublicKey",
    "SilcTestServer",
    "SkeError",
    "TestUser",
    "TopicSet",
    "cached_key_pair",
]
