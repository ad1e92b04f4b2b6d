"""The SILC test server with two TestUsers: what each user sees of the other."""

from __future__ import annotations

import pytest

from tests.servers.silc import (
    Algorithms,
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
    ServerNotice,
    SignedOff,
    SilcTestServer,
    TestUser,
    TopicSet,
)
from tests.servers.silc.numbers import CMODE_PRIVKEY, CMODE_TOPIC, Cmd, PacketType, Status
from tests.servers.silc.wire import ID_CHANNEL

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server():
    async with SilcTestServer(motd="test motd") as s:
        yield s


@pytest.fixture
async def pair(server):
    """alice and bob on #hackers (alice created it)."""
    async with TestUser("alice", server.port) as alice, TestUser("bob", server.port) as bob:
        await alice.join("hackers")
        await bob.join("hackers")
        await alice.wait_for(Joined, nick="bob")
        yield alice, bob


async def test_welcome_lines_and_motd_arrive_after_registration(server):
    async with TestUser("alice", server.port) as alice:
        first = await alice.wait_for(ServerNotice)
        assert first.text == "Welcome to the SILC Network alice@127.0.0.1"
        await alice.wait_for(ServerNotice, text="test motd")
        assert server.nicks() == ["alice"]
        assert server.client("alice").fingerprint == alice.fingerprint


async def test_join_lists_members_and_both_see_the_join(server):
    async with TestUser("alice", server.port) as alice, TestUser("bob", server.port) as bob:
        assert await alice.join("hackers") == ["alice"]
        assert await bob.join("hackers") == ["alice", "bob"]
        await alice.wait_for(Joined, channel="hackers", nick="bob")
        await bob.wait_for(Joined, channel="hackers", nick="bob")  # the joiner hears it too
        assert server.channel_nicks("hackers") == ["alice", "bob"]


async def test_channel_messages_go_both_ways_exactly_once(pair):
    alice, bob = pair
    await alice.say("hackers", "hello bob")
    got = await bob.wait_for(ChannelMessage, text="hello bob")
    assert (got.channel, got.nick, got.action) == ("hackers", "alice", False)
    await bob.say("hackers", "waves", action=True)
    got = await alice.wait_for(ChannelMessage, text="waves")
    assert (got.nick, got.action) == ("bob", True)
    await bob.say("hackers", "fyi", notice=True)
    assert (await alice.wait_for(ChannelMessage, text="fyi")).notice
    await alice.ping()  # everything sent before has been handled by now
    assert len(bob.events_of(ChannelMessage, text="hello bob")) == 1
    assert alice.events_of(ChannelMessage, nick="alice") == []  # no echo to the sender


async def test_messages_still_decrypt_after_channel_key_changes(server, pair):
    alice, bob = pair
    key_before = alice.channels["hackers"].keys[0]
    async with TestUser("carol", server.port) as carol:
        await carol.join("hackers")
        await alice.wait_for(Joined, nick="carol")
        assert alice.channels["hackers"].keys[0] != key_before  # a new key on every join
        await carol.say("hackers", "carol here")
        assert (await alice.wait_for(ChannelMessage)).text == "carol here"
        assert (await bob.wait_for(ChannelMessage)).text == "carol here"
        await carol.leave("hackers")
        await alice.wait_for(Left, nick="carol")
    key_after_leave = alice.channels["hackers"].keys[0]
    await bob.say("hackers", "still here")
    assert (await alice.wait_for(ChannelMessage)).text == "still here"
    assert key_after_leave == bob.channels["hackers"].keys[0]


async def test_nick_change_is_seen_and_messages_follow_the_new_nick(server, pair):
    alice, bob = pair
    await bob.set_nick("robert")
    change = await alice.wait_for(NickChanged)
    assert (change.old, change.new) == ("bob", "robert")
    assert change.new_id == bob.client_id
    await bob.wait_for(NickChanged, new="robert")  # sent to the client itself too
    await bob.say("hackers", "renamed")
    assert (await alice.wait_for(ChannelMessage, text="renamed")).nick == "robert"
    assert server.channel_nicks("hackers") == ["alice", "robert"]


async def test_leave_is_seen_by_the_others_but_not_the_leaver(pair):
    alice, bob = pair
    await bob.leave("hackers")
    left = await alice.wait_for(Left)
    assert (left.channel, left.nick) == ("hackers", "bob")
    await bob.ping()
    assert bob.events_of(Left) == []


async def test_quit_message_reaches_the_channel(server, pair):
    alice, bob = pair
    await bob.quit("gone fishing")
    gone = await alice.wait_for(SignedOff)
    assert (gone.nick, gone.message) == ("bob", "gone fishing")
    assert server.channel_nicks("hackers") == ["alice"]


async def test_topic_is_announced_and_returned_to_later_joiners(server, pair):
    alice, bob = pair
    await bob.set_topic("hackers", "bridges and keys")
    topic = await alice.wait_for(TopicSet)
    assert (topic.nick, topic.topic) == ("bob", "bridges and keys")
    assert server.topic("hackers") == "bridges and keys"
    async with TestUser("carol", server.port) as carol:
        await carol.join("hackers")
        (reply,) = await carol.command(Cmd.TOPIC, (1, carol.channels["hackers"].id_payload()))
        assert reply.args.get(3) == b"bridges and keys"


async def test_topic_mode_keeps_the_topic_to_operators(pair):
    alice, bob = pair
    assert await alice.set_mode("hackers", CMODE_TOPIC) == CMODE_TOPIC
    assert (await bob.wait_for(ModeChanged)).mode == CMODE_TOPIC
    with pytest.raises(CommandFailed) as failed:
        await bob.set_topic("hackers", "mine now")
    assert failed.value.status == Status.ERR_NO_CHANNEL_PRIV
    await alice.set_topic("hackers", "still alice's")


async def test_a_private_key_channel_is_readable_only_with_the_passphrase(server, pair):
    alice, bob = pair
    with pytest.raises(CommandFailed) as failed:
        await bob.set_mode("hackers", CMODE_PRIVKEY)
    assert failed.value.status == Status.ERR_NO_CHANNEL_FOPRIV
    await alice.set_mode("hackers", CMODE_PRIVKEY)
    await bob.wait_for(ModeChanged, nick="alice", mode=CMODE_PRIVKEY)
    alice.set_private_key("hackers", "open sesame")
    bob.set_private_key("hackers", "open sesame")
    await alice.say("hackers", "secret")
    assert (await bob.wait_for(ChannelMessage)).text == "secret"
    async with TestUser("carol", server.port) as carol:
        await carol.join("hackers")
        assert not carol.channels["hackers"].keys  # the server hands out no key
        carol.set_private_key("hackers", "guess")
        await bob.say("hackers", "not for carol")
        await alice.wait_for(ChannelMessage, text="not for carol")
        await carol.ping()
        assert carol.events_of(ChannelMessage) == []


async def test_users_whois_and_getkey_identify_people_by_key(pair):
    alice, bob = pair
    assert await alice.users("hackers") == ["alice", "bob"]
    whois = await alice.whois("bob")
    assert whois.get(3) == b"bob@silc.test"
    assert whois.get(9).hex() == bob.fingerprint  # SHA-1 of the key bob used in SKE
    assert (await alice.getkey("bob")).fingerprint == bob.fingerprint
    # Requested attribute USER_PUBLIC_KEY (12): the server answers with bob's key.
    attrs = (await alice.whois("bob", attributes=bytes([12, 0, 0, 0]))).get(11)
    assert bytes([12, 0x02]) in attrs and bob.key_pair.public.encode() in attrs


async def test_private_messages_reach_only_the_addressee(server, pair):
    alice, bob = pair
    async with TestUser("carol", server.port) as carol:
        await alice.msg("bob", "psst", action=True)
        got = await bob.wait_for(PrivateMessage)
        assert (got.nick, got.text, got.flags & 0x4) == ("alice", "psst", 0x4)
        await carol.ping()
        assert carol.events_of(PrivateMessage) == []


async def test_operator_kicks_and_others_cannot(server, pair):
    alice, bob = pair
    with pytest.raises(CommandFailed) as failed:
        await bob.kick("hackers", "alice")
    assert failed.value.status == Status.ERR_NO_CHANNEL_PRIV
    await alice.kick("hackers", "bob", "behave")
    kicked = await bob.wait_for(Kicked)
    assert (kicked.nick, kicked.by, kicked.comment) == ("bob", "alice", "behave")
    await alice.wait_for(Kicked, nick="bob")
    assert server.channel_nicks("hackers") == ["alice"]
    assert "hackers" not in bob.channels


async def test_server_side_kick_kill_and_drop(server, pair):
    alice, bob = pair
    await server.kick("bob", "hackers", "by the server")
    kicked = await alice.wait_for(Kicked)
    assert (kicked.nick, kicked.by) == ("bob", "silc.test")
    await bob.join("hackers")
    await server.kill("bob", "enough")
    assert (await alice.wait_for(Killed)).comment == "enough"
    assert (await bob.wait_for(Disconnected)).message == "enough"
    async with TestUser("carol", server.port) as carol:
        await carol.join("hackers")
        await server.drop("carol")
        await alice.wait_for(SignedOff, nick="carol")
        await carol.wait_for(Disconnected)
    await server.drop_all()
    await alice.wait_for(Disconnected)
    assert server.connections == 0


async def test_error_statuses_for_bad_input(pair):
    alice, _ = pair
    cases = [
        (Cmd.JOIN, [(1, b"bad*name"), (2, alice.id_payload())], Status.ERR_WILDCARDS),
        (Cmd.JOIN, [(1, b"hackers")], Status.ERR_NOT_ENOUGH_PARAMS),
        (Cmd.JOIN, [(1, b"new"), (2, alice.id_payload()), (4, b"rot13")], Status.ERR_UNKNOWN_ALGORITHM),
        (Cmd.JOIN, [(1, b"hackers"), (2, alice.id_payload())], Status.ERR_USER_ON_CHANNEL),
        (Cmd.NICK, [(1, b"al@ce")], Status.ERR_BAD_NICKNAME),
        (Cmd.WHOIS, [(1, b"nobody")], Status.ERR_NO_SUCH_NICK),
        (Cmd.IDENTIFY, [], Status.ERR_NOT_ENOUGH_PARAMS),
        (Cmd.USERS, [(2, b"nowhere")], Status.ERR_NO_SUCH_CHANNEL),
        (Cmd.LEAVE, [(1, bytes.fromhex("0003000800000000000000ff"))], Status.ERR_NO_SUCH_CHANNEL_ID),
        (Cmd.MOTD, [], Status.ERR_UNKNOWN_COMMAND),
    ]
    for cmd, args, status in cases:
        (reply,) = await alice.command(cmd, *args, check=False)
        assert reply.status()[0] == status, (cmd, args)


async def test_identify_lists_every_client_with_a_shared_nickname(server):
    async with TestUser("twin", server.port) as one, TestUser("twin", server.port) as two:
        replies = await one.command(Cmd.IDENTIFY, (1, b"twin"))
        assert [r.status()[0] for r in replies] == [Status.LIST_START, Status.LIST_END]
        assert {r.args.get(3) for r in replies} == {b"twin@silc.test"}
        assert two.client_id != one.client_id


async def test_message_to_an_unknown_channel_gets_a_notify_error(pair):
    alice, _ = pair
    alice.send_packet(PacketType.CHANNEL_MESSAGE, b"x" * 48, dst=(ID_CHANNEL, b"\x7f\0\0\1\0\0\0\x99"))
    assert (await alice.wait_for(NotifyError)).status == Status.ERR_NO_SUCH_CHANNEL_ID


@pytest.mark.parametrize("pfs", [False, True])
async def test_rekey_keeps_the_session_working(server, pfs):
    async with TestUser("alice", server.port, pfs=pfs) as alice, TestUser("bob", server.port) as bob:
        await alice.join("hackers")
        await bob.join("hackers")
        for _ in range(2):
            await alice.rekey()
            await alice.ping()
        await alice.say("hackers", "after rekey")
        assert (await bob.wait_for(ChannelMessage)).text == "after rekey"
        await bob.say("hackers", "back")
        assert (await alice.wait_for(ChannelMessage)).text == "back"


@pytest.mark.parametrize(
    "cipher, hmac, hash_, group",
    [
        ("aes-256-cbc", "hmac-sha1-96", "sha1", "diffie-hellman-group1"),
        ("aes-128-cbc", "hmac-sha256-96", "sha256", "diffie-hellman-group2"),
        ("aes-256-ctr", "hmac-sha1-96", "sha256", "diffie-hellman-group1"),
        ("aes-128-ctr", "hmac-sha256-96", "sha1", "diffie-hellman-group2"),
    ],
)
async def test_each_offered_algorithm_carries_a_conversation(server, cipher, hmac, hash_, group):
    algorithms = Algorithms(groups=(group, "diffie-hellman-group1"), ciphers=(cipher, "aes-256-cbc"),
                            hashes=(hash_, "sha1"), hmacs=(hmac, "hmac-sha1-96"))
    async with TestUser("alice", server.port, algorithms=algorithms) as alice, \
            TestUser("bob", server.port) as bob:
        session = server.client("alice").session
        assert (session.cipher, session.hmac, session.hash, session.group) == (cipher, hmac, hash_, group)
        await alice.join("hackers")
        await bob.join("hackers")
        await alice.say("hackers", "x" * 300)  # several cipher blocks
        assert (await bob.wait_for(ChannelMessage)).text == "x" * 300
        await bob.msg("alice", "private")
        assert (await alice.wait_for(PrivateMessage)).text == "private"
