import asyncio
import hashlib

import pytest

from bridge.silc import events as ev
from bridge.silc.auth import AuthMethod
from bridge.silc.ids import IdType, encode_id_payload
from bridge.silc.message import MessageFlag, SignatureState, decrypt_channel_message, encode_plain
from bridge.silc.packet import PacketFlag, PacketType
from bridge.silc.payloads import Command, Notify, Status
from bridge.silc.session import CommandError, KeyRefused, Session, SessionConfig, SessionError
from bridge.silc.ske import Proposal

from .fakeserver import SERVER_ID, FakeServer, client_id
from .keys import key_pair


class Harness:
    def __init__(self, server: FakeServer, config: SessionConfig, refuse_key: bool = False):
        self.server = server
        self.events: list = []
        self.seen_keys = []

        def check(key):
            self.seen_keys.append(key)
            if refuse_key:
                raise KeyRefused("not the pinned key")

        self.session = Session(config, key_pair("client"), server.transmit, check, self.events.append)
        server.attach(self.session)
        self.task = asyncio.ensure_future(self.session.dispatch())

    async def next_event(self, kind=None, timeout=2.0):
        async def wait():
            while True:
                for e in self.events:
                    if kind is None or isinstance(e, kind):
                        self.events.remove(e)
                        return e
                await asyncio.sleep(0.005)

        return await asyncio.wait_for(wait(), timeout)

    async def settle(self):
        for _ in range(20):
            await asyncio.sleep(0)


async def connect(server=None, **config):
    server = server or FakeServer()
    h = Harness(server, SessionConfig(username="xb", realname="relay", **config))
    h.session.start()
    await asyncio.wait_for(h.session.registered, 5)
    return h


@pytest.fixture
async def h():
    harness = await connect()
    yield harness
    harness.task.cancel()


async def test_registration_through_key_exchange_and_auth(h):
    s, server = h.session, h.server
    assert s.client_id == server.client and s.server_id == SERVER_ID
    assert h.seen_keys[0].encoded == key_pair("server").public.encoded
    assert s.ske.negotiated.cipher == "aes-256-cbc" and s.ske.negotiated.hmac == "hmac-sha256-96"
    assert server.auth_payload.conn_type == 1 and server.auth_payload.auth_data == b""
    # silc-spec 4.1: no IDs before NEW_ID, own Client ID -> Server ID after it
    first = server.packets(PacketType.KEY_EXCHANGE)[0]
    assert first.src is None and first.dst is None
    await s.ping()
    ping = server.packets(PacketType.COMMAND)[-1]
    assert ping.src == server.client and ping.dst == SERVER_ID


async def test_ctr_session_cipher():
    h = await connect(
        FakeServer(prefer={"ciphers": "aes-128-ctr"}),
        proposal=Proposal(ciphers=("aes-256-cbc", "aes-128-ctr")),
    )
    assert h.session.ske.negotiated.cipher == "aes-128-ctr"
    await h.session.ping()
    h.task.cancel()


async def test_auth_falls_back_to_config_when_the_server_does_not_say():
    server = FakeServer(answer_auth_request=False)
    h = await connect(server, password="sesame", auth_request_timeout=0.05)
    assert server.auth_payload.auth_data == b"sesame"
    h.task.cancel()


async def test_auth_refused_ends_the_session():
    server = FakeServer(fail_auth=True)
    h = Harness(server, SessionConfig(username="xb", realname="r"))
    h.session.start()
    with pytest.raises(SessionError, match="refused our authentication"):
        await asyncio.wait_for(h.session.done, 5)
    h.task.cancel()


async def test_refused_server_key_sends_failure_and_ends():
    server = FakeServer()
    h = Harness(server, SessionConfig(username="xb", realname="r"), refuse_key=True)
    h.session.start()
    with pytest.raises(KeyRefused):
        await asyncio.wait_for(h.session.done, 5)
    assert server.packets(PacketType.FAILURE)
    assert not server.packets(PacketType.SUCCESS)  # no keys were ever used
    h.task.cancel()


async def test_nick_changes_the_client_id(h):
    await h.session.set_nick("xbridge")
    assert h.session.nick == "xbridge" and h.session.client_id == h.server.client


async def test_command_errors_and_timeouts(h):
    h.server.join_status = Status.ERR_BAD_PASSWORD
    with pytest.raises(CommandError) as err:
        await h.session.join("locked")
    assert err.value.status == Status.ERR_BAD_PASSWORD and "ERR_BAD_PASSWORD" in str(err.value)
    h.server.silent_commands.add(Command.PING)
    h.session.config = SessionConfig(username="xb", realname="r", command_timeout=0.05)
    with pytest.raises(asyncio.TimeoutError):
        await h.session.ping()
    assert not h.session._pending


async def test_public_key_auth_when_the_server_asks_for_it():
    import hashlib

    server = FakeServer(auth_method=AuthMethod.PUBLIC_KEY)
    h = await connect(server)
    ske = h.session.ske
    signed = hashlib.new(ske.negotiated.hash, ske.ske_hash + ske.start_payload).digest()
    assert key_pair("client").public.verify(server.auth_payload.auth_data, signed)
    h.task.cancel()


async def joined(h):
    return await h.session.join("hackers")


async def test_join_and_exchange_channel_messages(h):
    alice = h.server.add_user(5, "alice")
    h.server.members = [alice]
    channel = await joined(h)
    assert channel.name == "hackers" and channel.topic == "the topic"
    assert alice.data in channel.members and h.server.client.data in channel.members

    h.server.channel_message(alice, "hello bridge")
    msg = await h.next_event(ev.ChannelMessage)
    assert (msg.channel, msg.user.nick, msg.data) == ("hackers", "alice", b"hello bridge")
    assert msg.user.fingerprint == "05" * 20 and msg.signature is SignatureState.NONE

    h.server.channel_message(alice, "waves", MessageFlag.ACTION | MessageFlag.UTF8)
    assert (await h.next_event(ev.ChannelMessage)).flags & MessageFlag.ACTION

    h.session.send_channel_message(channel, b"<bob> hi")
    await h.settle()
    sent = h.server.packets(PacketType.CHANNEL_MESSAGE)[-1]
    assert sent.src == h.server.client and sent.dst == h.server.channel_id
    plain, _ = decrypt_channel_message([h.server.channel_key], sent.payload, sent.src.data, sent.dst.data)
    assert plain.data == b"<bob> hi" and plain.flags == MessageFlag.UTF8
    # one WHOIS for alice, answered from the cache afterwards
    assert [c.command for c in h.server.commands].count(Command.WHOIS) == 1


async def test_channel_key_rotation_keeps_the_old_key_briefly(h):
    alice = h.server.add_user(5, "alice")
    await joined(h)
    old = h.server.channel_key
    h.server.new_channel_key()
    await h.settle()
    h.server.channel_message(alice, "in flight", key=old)
    h.server.channel_message(alice, "new key")
    assert (await h.next_event(ev.ChannelMessage)).data == b"in flight"
    assert (await h.next_event(ev.ChannelMessage)).data == b"new key"


async def test_unresolvable_senders_are_dropped(h):
    from .fakeserver import client_id

    await joined(h)
    h.server.channel_message(client_id(9), "who am i")
    await asyncio.sleep(0.1)
    assert not h.events


async def test_own_channel_messages_are_ignored(h):
    await joined(h)
    h.server.channel_message(h.server.client, "echo")
    await asyncio.sleep(0.05)
    assert not h.events and not [c for c in h.server.commands if c.command == Command.WHOIS]


async def test_notifies_become_events(h):
    alice = h.server.add_user(5, "alice")
    bob = h.server.add_user(6, "bob")
    await joined(h)
    chan = h.server.channel_id
    cid = lambda x: encode_id_payload(x)

    h.server.notify(Notify.JOIN, (1, cid(alice)), (2, cid(chan)))
    assert (await h.next_event(ev.Joined)).user.nick == "alice"

    h.server.notify(Notify.JOIN, (1, cid(bob)), (2, cid(chan)))
    await h.next_event(ev.Joined)

    h.server.notify(Notify.TOPIC_SET, (1, cid(alice)), (2, b"new topic"), dst=chan)
    topic = await h.next_event(ev.TopicSet)
    assert (topic.topic, topic.user.nick) == ("new topic", "alice")

    new_alice = h.server.add_user(7, "alice2", fp="05" * 20)
    h.server.notify(Notify.NICK_CHANGE, (1, cid(alice)), (2, cid(new_alice)), (3, b"alice2"))
    nick = await h.next_event(ev.NickChanged)
    assert (nick.user.nick, nick.new_nick, nick.channels) == ("alice", "alice2", ("hackers",))

    h.server.notify(Notify.KICKED, (1, cid(bob)), (2, b"spam"), (3, cid(new_alice)), dst=chan)
    kick = await h.next_event(ev.Kicked)
    assert (kick.target.nick, kick.kicker.nick, kick.reason) == ("bob", "alice2", "spam")

    h.server.notify(Notify.SIGNOFF, (1, cid(new_alice)), (2, b"bye"))
    left = await h.next_event(ev.Left)
    assert (left.user.nick, left.quit, left.reason) == ("alice2", True, "bye")
    assert left.user.fingerprint == "05" * 20  # same key, same identity through the nick change


async def test_the_members_of_a_joined_channel_are_learnt_in_one_whois(h):
    """The JOIN reply names members by Client ID only: one WHOIS with them all
    (silc-commands WHOIS, several Client IDs) makes them findable by nick."""
    alice, bob = h.server.add_user(5, "alice"), h.server.add_user(6, "bob")
    gone = client_id(7)  # signed off meanwhile: the server knows no such client
    h.server.members = [alice, bob, gone]
    channel = await joined(h)
    assert h.session.user_called("bob", channel.members) is None
    await h.session.resolve_members(channel)
    assert h.session.user_called("BOB", channel.members).fingerprint == "06" * 20
    assert h.session.user_called("alice").client_id == alice.data
    whois = [c for c in h.server.commands if c.command == Command.WHOIS]
    assert len(whois) == 1 and len(whois[0].args) == 3
    await h.session.resolve_members(channel)  # known now, but for the one gone
    assert len([c for c in h.server.commands if c.command == Command.WHOIS]) == 2


async def test_leave_notify_and_self_kick(h):
    alice = h.server.add_user(5, "alice")
    h.server.members = [alice]
    channel = await joined(h)
    h.server.notify(Notify.LEAVE, (1, encode_id_payload(alice)), dst=h.server.channel_id)
    left = await h.next_event(ev.Left)
    assert (left.user.nick, left.quit) == ("alice", False)
    h.server.notify(
        Notify.KICKED, (1, encode_id_payload(h.server.client)), (2, b"out"), dst=h.server.channel_id
    )
    removed = await h.next_event(ev.SelfRemoved)
    assert removed.channel == "hackers" and channel.id.data not in h.session.channels


async def test_private_messages(h):
    alice = h.server.add_user(5, "alice")
    h.server.send(PacketType.PRIVATE_MESSAGE, encode_plain(MessageFlag.PACKET, b"\x0d ske"), src=alice)
    h.server.send(PacketType.PRIVATE_MESSAGE, b"\x00" * 32, src=alice, flags=PacketFlag.PRIVMSG_KEY)
    h.server.send(PacketType.PRIVATE_MESSAGE, encode_plain(MessageFlag.UTF8, b"psst"), src=alice)
    keyed = await h.next_event()  # under a private message key: unread, but its sender known
    assert isinstance(keyed, ev.PrivateMessage) and (keyed.keyed, keyed.data, keyed.user.nick) == \
        (True, b"", "alice")
    pm = await h.next_event()
    assert isinstance(pm, ev.PrivateMessage) and (pm.data, pm.keyed) == (b"psst", False)
    h.session.send_private_message(alice.data, b"I am a relay")
    await h.settle()
    sent = h.server.packets(PacketType.PRIVATE_MESSAGE)[-1]
    assert sent.dst == alice and sent.payload == encode_plain(MessageFlag.UTF8, b"I am a relay")


@pytest.mark.parametrize("initiator", ["client", "server"])
async def test_rekey_without_pfs(h, initiator):
    before = h.session._send_key
    if initiator == "client":
        h.session.start_rekey()
    else:
        h.server.start_rekey()
    await h.settle()
    assert h.session._send_key != before and h.session._rekey is None
    await h.session.ping()  # both directions work under the new keys
    assert h.server.packets(PacketType.REKEY_DONE)


async def test_bad_macs_are_dropped_then_the_session_gives_up(h):
    good = h.server.writer.seal
    sequence = h.server.writer.sequence

    def corrupt(packet, max_padding=False):
        data = bytearray(good(packet, max_padding))
        data[-1] ^= 0xFF
        return bytes(data)

    h.server.writer.seal = corrupt
    h.server.send(PacketType.HEARTBEAT)
    await h.settle()
    assert not h.session.done.done()
    h.server.send(PacketType.HEARTBEAT)
    h.server.send(PacketType.HEARTBEAT)
    with pytest.raises(SessionError, match="unreadable"):
        await asyncio.wait_for(h.session.done, 1)
    assert h.server.writer.sequence == sequence + 3


async def test_disconnect_ends_with_the_servers_reason(h):
    h.server.send(PacketType.DISCONNECT, b"\x05shutting down")
    with pytest.raises(SessionError, match="shutting down"):
        await asyncio.wait_for(h.session.done, 1)


async def test_garbage_never_escapes_data_received(h):
    import os

    for _ in range(100):  # random bytes until the session gives up, never an exception
        h.session.data_received(os.urandom(4096))
        if h.session.done.done():
            break
    assert isinstance(h.session.done.exception(), SessionError)


async def test_pfs_rekey_holds_other_packets_until_new_keys():
    h = await connect(proposal=Proposal(pfs=True))
    assert h.session.ske.negotiated.pfs
    before = h.session._send_key
    h.session.start_rekey()
    h.session.heartbeat()  # must wait for the new keys
    assert h.server.packets(PacketType.KEY_EXCHANGE_1) and not h.server.packets(PacketType.HEARTBEAT)
    await h.settle()
    assert h.session._rekey is None and h.session._send_key != before
    assert h.server.packets(PacketType.HEARTBEAT)
    await h.session.ping()
    h.task.cancel()


async def test_channel_commands_and_membership(h):
    alice = h.server.add_user(5, "alice")
    channel = await joined(h)
    h.server.members = [h.server.client, alice]
    assert await h.session.users(channel) == {h.server.client.data, alice.data}
    await h.session.set_topic(channel, "a topic")
    topic_cmd = h.server.commands[-1]
    assert topic_cmd.command == Command.TOPIC and topic_cmd.args.get(2) == b"a topic"
    await h.session.leave(channel)
    assert h.server.commands[-1].command == Command.LEAVE and not h.session.channels


async def test_identify_lists_matches(h):
    from bridge.silc.payloads import Arguments, CommandPayload, encode_status

    h.server.silent_commands.add(Command.IDENTIFY)
    task = asyncio.ensure_future(h.session.identify("alice"))
    await h.settle()
    cmd = h.server.commands[-1]
    a, b = h.server.add_user(5, "alice"), h.server.add_user(6, "alice")
    # a list reply (silc-commands 2.4), sent as one packet with the List flag
    replies = [
        CommandPayload(
            Command.IDENTIFY,
            cmd.ident,
            Arguments.of((1, encode_status(status)), (2, encode_id_payload(cid)), (3, b"alice")),
        )
        for status, cid in ((Status.LIST_START, a), (Status.LIST_END, b))
    ]
    h.server.send(PacketType.COMMAND_REPLY, b"".join(r.encode() for r in replies), flags=0x02)
    found = await asyncio.wait_for(task, 1)
    assert [(i.data, n) for i, n in found] == [(a.data, "alice"), (b.data, "alice")]


async def test_hmac_change_and_channel_id_change(h):
    from bridge.silc.ids import SilcId
    from bridge.silc.message import ChannelKey

    alice = h.server.add_user(5, "alice")
    channel = await joined(h)
    h.server.notify(
        Notify.CMODE_CHANGE,
        (1, encode_id_payload(alice)),
        (2, b"\x00\x00\x01\x00"),
        (4, b"hmac-sha256-96"),
        dst=h.server.channel_id,
    )
    await h.settle()
    assert channel.hmac == "hmac-sha256-96"
    h.server.channel_key = ChannelKey.from_server("aes-256-cbc", h.server.channel_key.key, "hmac-sha256-96")
    new_id = SilcId(IdType.CHANNEL, b"\x09" * 8)
    h.server.notify(
        Notify.CHANNEL_CHANGE, (1, encode_id_payload(h.server.channel_id)), (2, encode_id_payload(new_id))
    )
    await h.settle()
    h.server.channel_id = new_id
    h.server.channel_message(alice, "still here")
    assert (await h.next_event(ev.ChannelMessage)).data == b"still here"


async def test_an_unsupported_hmac_keeps_the_channel_readable(h):
    """A CMODE_CHANGE naming an HMAC we cannot compute changes nothing: the
    old one stays, and later channel keys still work (issue 14)."""
    alice = h.server.add_user(5, "alice")
    channel = await joined(h)
    h.server.notify(
        Notify.CMODE_CHANGE,
        (1, encode_id_payload(alice)),
        (2, b"\x00\x00\x00\x00"),
        (4, b"hmac-sha512"),
        dst=h.server.channel_id,
    )
    await h.settle()
    assert channel.hmac == "hmac-sha1-96"
    h.server.new_channel_key()
    await h.settle()
    h.server.channel_message(alice, "still readable")
    assert (await h.next_event(ev.ChannelMessage)).data == b"still readable"


async def test_a_private_key_channel_is_used_only_under_its_key(h):
    """silc-commands CMODE PRIVKEY: the private key is the only one read, and
    used for sending only while the channel has the private-key mode."""
    from bridge.silc.message import ChannelKey
    from bridge.silc.session import NotConnected

    ours = ChannelKey.from_passphrase("open sesame")
    alice = h.server.add_user(5, "alice")
    channel = await h.session.join("hackers", ours)
    assert not channel.secured and not channel.founded
    with pytest.raises(NotConnected, match="private-key mode"):
        h.session.send_channel_message(channel, b"<bob> the servers could read this")
    h.server.channel_message(alice, "under the server's key")
    h.server.channel_message(alice, "under another passphrase", key=ChannelKey.from_passphrase("guess"))
    h.server.channel_message(alice, "under ours", key=ours)
    assert await h.next_event(ev.Unreadable) == ev.Unreadable("hackers", server_key=True)
    assert await h.next_event(ev.Unreadable) == ev.Unreadable("hackers", server_key=False)
    assert [(await h.next_event(ev.ChannelMessage)).data] == [b"under ours"]

    h.server.notify(Notify.CMODE_CHANGE, (1, encode_id_payload(alice)), (2, b"\x00\x00\x00\x04"),
                    dst=h.server.channel_id)
    assert await h.next_event(ev.ModeChanged) == ev.ModeChanged("hackers")
    assert channel.secured
    h.session.send_channel_message(channel, b"<bob> private")
    await h.settle()
    sent = h.server.packets(PacketType.CHANNEL_MESSAGE)[-1]
    plain, _ = decrypt_channel_message([ours], sent.payload, sent.src.data, sent.dst.data)
    assert plain.data == b"<bob> private"


async def test_own_channel_user_mode_from_join_and_cumode_change(h):
    h.server.client_founds = True
    channel = await joined(h)
    assert channel.founded
    h.server.notify(Notify.CUMODE_CHANGE, (1, encode_id_payload(SERVER_ID)), (2, b"\x00\x00\x00\x00"),
                    (3, encode_id_payload(h.server.client)), dst=h.server.channel_id)
    assert await h.next_event(ev.ModeChanged) == ev.ModeChanged("hackers")
    assert not channel.founded


async def test_set_mode_keeps_the_mask_the_server_replies(h):
    h.server.client_founds = True
    channel = await joined(h)
    await h.session.set_mode(channel, 0x4)
    assert channel.mode == 0x4 and h.server.channel_mode == 0x4
    h.server.client_founds = False
    with pytest.raises(CommandError, match="FOPRIV"):
        await h.session.set_mode(channel, 0)


async def test_server_signoff_and_kill_are_quits(h):
    alice, bob = h.server.add_user(5, "alice"), h.server.add_user(6, "bob")
    h.server.members = [alice, bob]
    await joined(h)
    h.server.channel_message(alice, "hi")  # resolve both before they vanish
    h.server.channel_message(bob, "hi")
    await h.next_event(ev.ChannelMessage)
    await h.next_event(ev.ChannelMessage)
    h.server.notify(
        Notify.KILLED, (1, encode_id_payload(alice)), (2, b"flood"), (3, encode_id_payload(SERVER_ID))
    )
    h.server.notify(Notify.SERVER_SIGNOFF, (1, encode_id_payload(SERVER_ID)), (2, encode_id_payload(bob)))
    killed, split = await h.next_event(ev.Left), await h.next_event(ev.Left)
    assert (killed.user.nick, killed.quit, killed.reason) == ("alice", True, "killed: flood")
    assert (split.user.nick, split.quit) == ("bob", True)


async def test_signed_message_is_checked(h):
    from .test_message import signed_wire

    alice = h.server.add_user(5, "alice", fp=key_pair("alice").public.fingerprint)
    await joined(h)
    wire = signed_wire(
        key_pair("alice"),
        h.server.channel_key,
        b"really me",
        sender=alice.data,
        channel=h.server.channel_id.data,
    )
    h.server.send(PacketType.CHANNEL_MESSAGE, wire, dst=h.server.channel_id, src=alice)
    msg = await h.next_event(ev.ChannelMessage)
    assert (msg.data, msg.signature) == (b"really me", SignatureState.VALID)
    h.server.users[alice.data] = ("alice", "AA" * 20)  # someone else's key: not her signature
    h.session._users.clear()
    h.server.send(PacketType.CHANNEL_MESSAGE, wire, dst=h.server.channel_id, src=alice)
    assert (await h.next_event(ev.ChannelMessage)).signature is SignatureState.INVALID


async def test_signed_messages_without_the_key_are_checked_with_the_getkey_key(h):
    """As the reference client sends them: the key is fetched once with
    GETKEY and kept with the user, for channel and private messages."""
    from .test_message import signed_wire

    pair = key_pair("alice")
    alice = h.server.add_user(5, "alice", fp=pair.public.fingerprint)
    h.server.public_keys[alice.data] = pair.public.encoded
    await joined(h)

    def signed(text, tamper=False):
        wire = signed_wire(
            pair, h.server.channel_key, text, False, tamper, alice.data, h.server.channel_id.data
        )
        h.server.send(PacketType.CHANNEL_MESSAGE, wire, dst=h.server.channel_id, src=alice)

    signed(b"really me")
    msg = await h.next_event(ev.ChannelMessage)
    assert (msg.data, msg.signature) == (b"really me", SignatureState.VALID)
    signed(b"forged", tamper=True)
    assert (await h.next_event(ev.ChannelMessage)).signature is SignatureState.INVALID

    start = encode_plain(MessageFlag.SIGNED | MessageFlag.UTF8, b"psst")
    pk = bytes.fromhex("0000 0001")  # length 0, type 1 (SILC key)
    sig = pair.sign(hashlib.sha1(start + pk).digest())
    h.server.send(PacketType.PRIVATE_MESSAGE, start + pk + len(sig).to_bytes(2, "big") + sig, src=alice)
    private = await h.next_event(ev.PrivateMessage)
    assert (private.data, private.signature) == (b"psst", SignatureState.VALID)
    getkeys = [c for c in h.server.commands if c.command == Command.GETKEY]
    assert len(getkeys) == 1


async def test_signed_message_is_unchecked_when_the_key_cannot_be_fetched(h):
    from .test_message import signed_wire

    alice = h.server.add_user(5, "alice")  # no key for GETKEY
    await joined(h)
    wire = signed_wire(
        key_pair("alice"), h.server.channel_key, b"hm", False, False, alice.data, h.server.channel_id.data
    )
    h.server.send(PacketType.CHANNEL_MESSAGE, wire, dst=h.server.channel_id, src=alice)
    msg = await h.next_event(ev.ChannelMessage)
    assert (msg.data, msg.signature, msg.user.nick) == (b"hm", SignatureState.UNCHECKED, "alice")


async def test_ctr_rekey_uses_a_fresh_counter_prefix():
    h = await connect(
        FakeServer(prefer={"ciphers": "aes-128-ctr"}), proposal=Proposal(ciphers=("aes-128-ctr",))
    )
    for _ in range(2):
        h.session.start_rekey()
        await h.settle()
        await h.session.ping()
    h.task.cancel()


async def test_random_payloads_of_every_type_are_dropped_not_fatal(h):
    """Well-framed packets with malformed payloads: logged and dropped (silc-pp 2.10)."""
    import random

    from bridge.silc.payloads import Arguments, NotifyPayload

    rng = random.Random(7)
    alice = h.server.add_user(5, "alice")
    await joined(h)
    types = [
        t for t in PacketType if t not in (PacketType.DISCONNECT, PacketType.REKEY, PacketType.REKEY_DONE)
    ]
    for _ in range(400):
        ptype = rng.choice(types)
        if ptype == PacketType.NOTIFY and rng.random() < 0.7:
            args = [
                (rng.randrange(1, 4), rng.randbytes(rng.randrange(0, 30))) for _ in range(rng.randrange(0, 4))
            ]
            payload = NotifyPayload(rng.choice(list(Notify)), Arguments.of(*args)).encode()
        else:
            payload = rng.randbytes(rng.randrange(0, 80))
        src = rng.choice([SERVER_ID, alice, None])
        h.server.send(ptype, payload, src=src, dst=rng.choice([None, h.server.channel_id]))
    await asyncio.sleep(0.3)
    assert not h.session.done.done() and not h.task.done()
    await h.session.ping()


async def test_a_client_that_does_not_hear_its_channels_looks_nobody_up_but_its_private_messages():
    h = await connect(hears_channels=False)
    try:
        alice = h.server.add_user(5, "alice")
        h.server.members = [alice]
        channel = await joined(h)
        await h.session.resolve_members(channel)
        h.server.channel_message(alice, "hello bridge")
        h.server.notify(Notify.JOIN, (1, encode_id_payload(h.server.add_user(6, "bob"))),
                        (2, encode_id_payload(h.server.channel_id)))
        h.server.send(PacketType.PRIVATE_MESSAGE, encode_plain(MessageFlag.UTF8, b"psst"), src=alice)
        pm = await h.next_event()
        assert isinstance(pm, ev.PrivateMessage) and pm.data == b"psst"
        await asyncio.sleep(0.05)
        assert not h.events
        assert [c.command for c in h.server.commands].count(Command.WHOIS) == 1  # alice's, for the PM
        assert len(channel.members) == 3  # who is in still followed: its messages need the key
        h.session.send_channel_message(channel, b"it still speaks")
    finally:
        h.task.cancel()
