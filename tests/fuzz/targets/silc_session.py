"""A registered SILC `Session`'s handlers (bridge/silc/session): notifies, command replies,
channel and private messages, channel keys, rekeys and whatever else a server sends.

The input is a script (JSON): the channels the session has joined (keys, members, a private
key or not), the users it knows, the commands the bridge calls (JOIN, WHOIS, USERS, NICK,
CMODE, TOPIC, IDENTIFY, GETKEY, PING, LEAVE, sending a message, a rekey), and the packets the
server sends meanwhile: notifies of every type with valid and broken arguments, replies to
the commands the session actually sent (matched by their identifier, or not), messages
sealed under the channel's keys (signed or not), all sometimes corrupted. The session's own
user lookups (WHOIS, GETKEY) are answered from the script too. What must hold: no handler
fails (`silc_packet_handler_failed`, `silc_event_handler_failed`), nothing escapes
`data_received`, each command returns or raises what its callers catch (CommandError,
NotConnected, TimeoutError, DecodeError), and every event is well-typed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator

from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError, u32
from bridge.silc.channel import Channel
from bridge.silc.crypto import KeyMaterial
from bridge.silc.ids import ID_LENGTHS, IdType, SilcId, encode_id_payload
from bridge.silc.message import MessageFlag, encode_plain, encrypt_channel_message
from bridge.silc.packet import Packet, PacketFlag, PacketReader, PacketType, PacketWriter
from bridge.silc.payloads import (
    Arguments, ChannelKeyPayload, Command, CommandPayload, Notify, NotifyPayload, PublicKeyPayload, Status,
    encode_id_list, encode_status,
)
from bridge.silc.session import CommandError, NotConnected, Phase, Session, SessionConfig
from bridge.silc.session.errors import SessionError
from bridge.silc.ske import Negotiated, SkeResult
from tests.fuzz.engine import Target, Violation
from tests.fuzz.logs import Recorder
from tests.fuzz.mutate import mutate
from tests.fuzz.targets.silc_common import CHANNEL_KEYS, event_loop, key_pair, small_exponents
from tests.fuzz.targets.silc_payloads import signed_trailer

SERVER = SilcId(IdType.SERVER, bytes.fromhex("7f000001029a0001"))
ME = SilcId(IdType.CLIENT, bytes([127, 0, 0, 1, 1]) + bytes(11))
_CIPHERS = ["aes-256-cbc", "aes-128-cbc", "aes-256-ctr", "x"]
_LOOP: asyncio.AbstractEventLoop | None = None
_DOCUMENTED = (CommandError, NotConnected, asyncio.TimeoutError, DecodeError, SessionError)


def _client(n: int) -> SilcId:
    return SilcId(IdType.CLIENT, bytes([127, 0, 0, 1, n]) + bytes(11))


def _channel_id(n: int) -> SilcId:
    return SilcId(IdType.CHANNEL, bytes([127, 0, 0, 1, 0, 0, 0, n]))


# --- the generator ---


def _id_arg(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind < 5:
        return encode_id_payload(_client(rng.randrange(1, 6)))
    if kind < 7:
        return encode_id_payload(_channel_id(rng.randrange(1, 4)))
    if kind == 7:
        return encode_id_payload(SERVER)
    if kind == 8:
        t = rng.choice(list(IdType)[1:])
        return encode_id_payload(SilcId(t, rng.randbytes(rng.choice(ID_LENGTHS[t]))))
    return rng.randbytes(rng.choice((0, 4, 20)))


def _text(rng: random.Random) -> bytes:
    return rng.choice([b"", b"nick", b"n\xc3\xa9", b"\xff", b"a" * 300, b"x@server", b"hmac-sha1-96",
                       b"hmac-md5", b"hmac-nope", b"aes-256-cbc"])


def _notify(rng: random.Random) -> bytes:
    ntype = rng.choice(list(Notify)).value if rng.random() < 0.95 else rng.randrange(0x10000)
    args = []
    for number in range(1, rng.choice((1, 2, 3, 4, 5, 7))):
        kind = rng.randrange(6)
        data = (_id_arg(rng) if kind < 3 else u32(rng.choice((0, 4, 0xFFFFFFFF, rng.getrandbits(32))))
                if kind == 3 else _text(rng))
        args.append((number if rng.random() < 0.9 else rng.randrange(1, 16), data))
    payload = NotifyPayload(ntype, Arguments(tuple(args))).encode()
    if rng.random() < 0.1:
        payload += NotifyPayload(rng.randrange(18), Arguments()).encode()  # a list of them
    return payload


def _reply_args(rng: random.Random, command: int) -> list:
    """Arguments of a reply to `command`, as silc-commands gives them (then maybe broken)."""
    ch, cl = _channel_id(rng.randrange(1, 4)), _client(rng.randrange(1, 6))
    members = [ME, *(_client(n) for n in range(2, rng.randrange(2, 6)))]
    raw_key = rng.choice(CHANNEL_KEYS).key
    by = {
        Command.JOIN: [(2, b"#chan"), (3, encode_id_payload(ch)), (4, encode_id_payload(ME)),
                       (5, u32(rng.choice((0, 4)))), (6, u32(1)),
                       (7, ChannelKeyPayload(ch.data, rng.choice(_CIPHERS), raw_key).encode()),
                       (10, _text(rng)), (11, _text(rng)), (12, u32(len(members))),
                       (13, encode_id_list(members)),
                       (14, b"".join(u32(rng.choice((0, 1))) for _ in members))],
        Command.WHOIS: [(2, encode_id_payload(cl)), (3, _text(rng)), (4, b"u@h"), (5, b"Real"),
                        (9, rng.choice([rng.randbytes(20), b"", rng.randbytes(19)]))],
        Command.GETKEY: [(2, encode_id_payload(cl)),
                         (3, PublicKeyPayload(rng.choice((1, 1, 2)), rng.choice(
                             [key_pair("alice", 1024).public.encoded, b"", rng.randbytes(30)])).encode())],
        Command.USERS: [(2, encode_id_payload(ch)), (3, u32(len(members))), (4, encode_id_list(members)),
                        (5, b"".join(u32(0) for _ in members))],
        Command.NICK: [(2, encode_id_payload(_client(7))), (3, _text(rng))],
        Command.CMODE: [(2, encode_id_payload(ch)), (3, u32(rng.choice((0, 4))))],
        Command.IDENTIFY: [(2, encode_id_payload(cl)), (3, _text(rng))],
    }.get(command, [(2, encode_id_payload(ch))])
    if rng.random() < 0.3:  # drop, repeat or replace an argument
        i = rng.randrange(len(by))
        choice = rng.randrange(3)
        if choice == 0:
            del by[i]
        elif choice == 1:
            by.append(by[i])
        else:
            by[i] = (by[i][0], rng.choice([_id_arg(rng), _text(rng), u32(rng.getrandbits(32))]))
    return by


def _reply(rng: random.Random, command: int) -> bytes:
    status = rng.choice([Status.OK] * 6 + [Status.LIST_START, Status.LIST_ITEM, Status.LIST_END,
                                           Status.ERR_NO_SUCH_CLIENT_ID, Status.ERR_NOT_ON_CHANNEL, 77])
    error = rng.choice((0, 0, Status.ERR_NO_SUCH_NICK, 99))
    status_arg = encode_status(status, error) if rng.random() < 0.95 else rng.randbytes(rng.choice((0, 1, 3)))
    args = Arguments(((1, status_arg), *_reply_args(rng, command)))
    return CommandPayload(command, 0, args).encode()


def _message(rng: random.Random, channels: list[dict]) -> list:
    """A channel message packet: [type, flags, src, dst, payload hex]."""
    flags = rng.choice([MessageFlag.UTF8, MessageFlag.ACTION, MessageFlag.NOTICE | MessageFlag.UTF8,
                        MessageFlag.SIGNED | MessageFlag.UTF8, 0, MessageFlag.PACKET])
    data = rng.choice([b"hi", "é😀".encode(), b"\xff\xfe", b"a\x00b\x1b[31m", b"x" * 2000])
    ch = rng.choice(channels) if channels else {"id": 1, "key": 0}
    key = CHANNEL_KEYS[ch["key"] if ch["key"] is not None and rng.random() < 0.9 else rng.randrange(3)]
    sender = _client(rng.randrange(1, 6))
    payload = encrypt_channel_message(key, flags & ~MessageFlag.SIGNED, data, sender.data,
                                      _channel_id(ch["id"]).data, rng.randbytes)
    if flags & MessageFlag.SIGNED:
        payload = encrypt_channel_message(key, flags, data, sender.data, _channel_id(ch["id"]).data,
                                          rng.randbytes)
    src = _text_id(sender) if rng.random() < 0.95 else rng.choice(["", _text_id(SERVER)])
    return [PacketType.CHANNEL_MESSAGE, 0, src, _text_id(_channel_id(ch["id"])), payload.hex()]


def _private(rng: random.Random) -> list:
    flags = rng.choice([MessageFlag.UTF8, MessageFlag.SIGNED, MessageFlag.PACKET, 0])
    payload = encode_plain(flags, rng.choice([b"hi", b"\xff"]))
    if flags & MessageFlag.SIGNED:
        payload += signed_trailer(rng, payload)
    return [PacketType.PRIVATE_MESSAGE, rng.choice((0, 0, PacketFlag.PRIVMSG_KEY)),
            _text_id(_client(rng.randrange(1, 6))), _text_id(ME), payload.hex()]


_CALLS = ["join", "whois", "users", "nick", "mode", "topic", "identify", "getkey", "ping", "leave",
          "send", "private", "rekey"]
_COMMAND_OF = {"join": Command.JOIN, "whois": Command.WHOIS, "users": Command.USERS, "nick": Command.NICK,
               "mode": Command.CMODE, "topic": Command.TOPIC, "identify": Command.IDENTIFY,
               "getkey": Command.GETKEY, "ping": Command.PING, "leave": Command.LEAVE}


def generate(rng: random.Random) -> bytes:
    channels = []
    for n in range(1, rng.randrange(2, 5)):
        key = rng.choice((0, 1, None))
        hmac = CHANNEL_KEYS[key].hmac.name if key is not None and rng.random() < 0.8 else "hmac-sha1-96"
        channels.append({"id": n, "name": f"#c{n}", "key": key, "hmac": hmac,
                         "members": sorted({rng.randrange(1, 6) for _ in range(rng.randrange(4))}),
                         "private": rng.random() < 0.2, "mode": rng.choice((0, 4))})
    users = [{"n": n, "nick": f"u{n}", "fp": rng.choice([None, "AB" * 20]), "key": rng.random() < 0.3}
             for n in range(2, 6) if rng.random() < 0.7]
    calls = [rng.choice(_CALLS) for _ in range(rng.choice((0, 1, 2, 4)))]
    steps: list = []
    # Replies are made for each command the session may have sent (those called, and its own
    # user lookups); the harness answers an unanswered one with the reply for its command.
    commands = sorted({_COMMAND_OF[c] for c in calls if c in _COMMAND_OF} | {Command.WHOIS, Command.GETKEY})
    for _ in range(rng.choice((1, 3, 8, 20))):
        kind = rng.randrange(12)
        if kind < 3:
            dst = _channel_id(rng.randrange(1, 4)) if rng.random() < 0.5 else ME
            steps.append(["pkt", PacketType.NOTIFY, rng.choice((0, 0, PacketFlag.LIST)), _text_id(SERVER),
                          _text_id(dst), _notify(rng).hex()])
        elif kind < 7:
            replies = {str(int(c)): _reply(rng, c).hex() for c in commands}
            steps.append(["reply", rng.choice((0, 0, 0, 1, 2)), replies, rng.random() < 0.95])
        elif kind < 8:
            steps.append(["pkt", *_message(rng, channels)])
        elif kind == 8:
            steps.append(["pkt", *_private(rng)])
        elif kind == 9:
            ch = rng.randrange(1, 5)
            key = ChannelKeyPayload(_channel_id(ch).data, rng.choice(_CIPHERS[:3] + ["des"]),
                                    rng.choice(CHANNEL_KEYS).key[:rng.choice((32, 16, 5))]).encode()
            steps.append(["pkt", PacketType.CHANNEL_KEY, 0, _text_id(SERVER), _text_id(ME), key.hex()])
        elif kind == 10:
            ptype = rng.choice([PacketType.REKEY, PacketType.REKEY_DONE, PacketType.KEY_EXCHANGE_1,
                                PacketType.KEY_EXCHANGE_2, PacketType.NEW_ID, PacketType.ERROR,
                                PacketType.HEARTBEAT, PacketType.DISCONNECT, PacketType.COMMAND_REPLY, 200])
            steps.append(["pkt", ptype, 0, _text_id(SERVER), _text_id(rng.choice([ME, _client(3)])),
                          _id_arg(rng).hex()])
        else:
            steps.append(["tick"])
        if rng.random() < 0.15 and steps[-1][0] == "pkt":  # corrupt the payload
            steps[-1][-1] = mutate(rng, bytes.fromhex(steps[-1][-1])).hex()
        elif rng.random() < 0.15 and steps[-1][0] == "reply":
            replies = steps[-1][2]
            for c in replies:
                replies[c] = mutate(rng, bytes.fromhex(replies[c])).hex()
    script = {"pfs": rng.random() < 0.3, "channels": channels, "users": users, "calls": calls, "steps": steps,
              "seed": rng.getrandbits(32)}
    return json.dumps(script).encode()


# --- the harness ---


class _Wire:
    """The server's end: reads the commands the session sends, seals what the script says."""

    def __init__(self) -> None:
        self.reader = PacketReader()
        self.writer = PacketWriter(random=lambda n: bytes(n))
        self.commands: list[CommandPayload] = []
        self.answered: set[int] = set()  # identifiers

    def transmit(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (packet := self.reader.next()) is not None:
                if packet.type == PacketType.COMMAND:
                    self.commands.append(CommandPayload.decode(packet.payload))
        except Exception:  # keyed after a rekey: the server side does not follow
            self.reader = PacketReader()

    def seal(self, ptype: int, flags: int, src: str, dst: str, payload: bytes) -> bytes:
        return self.writer.seal(Packet(ptype, payload, flags, _id(src), _id(dst)))


def _id(text: str) -> SilcId | None:
    """An ID as the script writes it: `<type>:<hex>` (or empty: none)."""
    if not text:
        return None
    kind, _, data = text.partition(":")
    return SilcId(IdType(int(kind)), bytes.fromhex(data))


def _text_id(sid: SilcId) -> str:
    return f"{int(sid.type)}:{sid.data.hex()}"


def _session(script: dict, wire: _Wire, events: list) -> tuple[Session, Recorder]:
    config = SessionConfig(username="xb", realname="relay", command_timeout=30, resolve_timeout=30)
    session = Session(config, key_pair("client", 1024), wire.transmit, lambda key: None, events.append)
    log = session.log = Recorder()
    session.phase, session.client_id, session.server_id = Phase.CONNECTED, ME, SERVER
    negotiated = Negotiated("diffie-hellman-group1", "rsa", "aes-256-cbc", "sha256", "hmac-sha256-96",
                            0x02 if script["pfs"] else 0, "SILC-1.2-1.1.18")
    material = KeyMaterial(*(bytes(32),) * 6)
    session.ske = SkeResult(negotiated, material, b"h" * 32, b"", key_pair("server", 1024).public)
    for ch in script["channels"]:
        channel = Channel(ch["name"], _channel_id(ch["id"]), hmac=ch["hmac"], mode=ch["mode"],
                          members={_client(n).data for n in ch["members"]} | {ME.data},
                          private_key=CHANNEL_KEYS[2] if ch["private"] else None)
        if ch["key"] is not None:
            key = CHANNEL_KEYS[ch["key"]]
            channel.set_server_key(key.cipher, key.key)
        session.channels[channel.id.data] = channel
    for user in script["users"]:
        key = key_pair("alice", 1024).public if user["key"] else None
        session._remember(ev.User(_client(user["n"]).data, user["nick"], user["fp"], "u", key))
    return session, log


async def _call(session: Session, name: str, rng: random.Random) -> None:
    channel = next(iter(session.channels.values()), None)
    cid = _client(rng.randrange(2, 6)).data
    calls = {
        "join": lambda: session.join(rng.choice(["#c1", "#new"]),
                                     CHANNEL_KEYS[2] if rng.random() < 0.2 else None),
        "whois": lambda: session.whois(cid), "getkey": lambda: session.public_key(cid),
        "users": lambda: session.users(channel), "nick": lambda: session.set_nick("newnick"),
        "mode": lambda: session.set_mode(channel, 4), "topic": lambda: session.set_topic(channel, "t"),
        "identify": lambda: session.identify("alice"), "ping": lambda: session.ping(),
        "leave": lambda: session.leave(channel),
    }
    if name in ("users", "mode", "topic", "leave") and channel is None:
        return
    if name == "send":
        if channel is not None:
            session.send_channel_message(channel, "hello é".encode())
        return
    if name == "private":
        session.send_private_message(cid, b"hi")
        return
    if name == "rekey":
        session.start_rekey()
        return
    await calls[name]()


async def _run(script: dict) -> tuple[Recorder, list, list]:
    wire, events, failures = _Wire(), [], []
    session, log = _session(script, wire, events)
    rng = random.Random(script["seed"])
    dispatch = asyncio.ensure_future(session.dispatch())

    async def call(name: str) -> None:
        try:
            await _call(session, name, rng)
        except _DOCUMENTED:
            pass
        except Exception as exc:  # what no caller of the session catches
            failures.append(exc)

    tasks = [asyncio.ensure_future(call(name)) for name in script["calls"]]
    await asyncio.sleep(0)
    try:
        for step in script["steps"]:
            if session.phase is Phase.CLOSED:
                break
            if step[0] == "tick":
                await asyncio.sleep(0)
                continue
            if step[0] == "reply":
                _, k, replies, matched = step
                waiting = [c for c in wire.commands if c.ident not in wire.answered]
                sent = waiting[k % len(waiting)] if waiting else None
                fallback = next(iter(replies.values()))
                payload = bytes.fromhex(replies.get(str(sent.command) if sent else "", fallback))
                if matched and sent is not None and len(payload) >= 6:  # its command and identifier
                    payload = (payload[:2] + bytes([sent.command]) + payload[3:4]
                               + sent.ident.to_bytes(2, "big") + payload[6:])
                    wire.answered.add(sent.ident)
                data = wire.seal(PacketType.COMMAND_REPLY, 0, _text_id(SERVER), _text_id(ME), payload)
            else:
                _, ptype, flags, src, dst, payload = step
                data = wire.seal(ptype, flags, src, dst, bytes.fromhex(payload))
            session.data_received(data)
            for _ in range(3):
                await asyncio.sleep(0)
    except Exception as exc:  # out of data_received: asyncio would lose the connection
        failures.append(exc)
    finally:
        session.close()
        for _ in range(5):
            await asyncio.sleep(0)
        dispatch.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(dispatch, *tasks, return_exceptions=True)
    return log, events, failures


_EVENT_TYPES = (ev.ChannelMessage, ev.PrivateMessage, ev.Joined, ev.Left, ev.NickChanged, ev.TopicSet,
                ev.Kicked, ev.SelfRemoved, ev.ModeChanged, ev.Unreadable)


def check(data: bytes) -> None:
    try:
        script = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    with small_exponents(random.Random(script.get("seed", 0))):
        log, events, failures = _LOOP.run_until_complete(_run(script))
    for exc in failures:
        raise Violation(f"{type(exc).__name__} escaped: {exc}") from exc
    for event, exc in log.failures:
        raise Violation(f"{event}: {type(exc).__name__}: {exc}") from exc
    for event in events:
        if not isinstance(event, _EVENT_TYPES):
            raise Violation(f"an event of type {type(event).__name__}")
        for name in ("channel", "new_nick", "topic", "reason"):
            if hasattr(event, name) and not isinstance(getattr(event, name), str):
                raise Violation(f"{type(event).__name__}.{name} is not text")
        user = getattr(event, "user", None)
        if user is not None and not (isinstance(user.nick, str) and isinstance(user.client_id, bytes)):
            raise Violation(f"{type(event).__name__} names a malformed user")


@contextlib.contextmanager
def _context() -> Iterator[None]:
    global _LOOP
    for name in ("client", "server", "alice", "bob"):
        key_pair(name, 1024)
    with event_loop() as loop:
        _LOOP = loop
        try:
            yield
        finally:
            _LOOP = None


TARGET = Target("silc-session", "script of a registered session's traffic -> Session handlers and commands",
                generate, check, bound=0.5, full=1_000_000, context=_context)
