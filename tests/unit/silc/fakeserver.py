"""An in-memory, scripted SILC server side for driving one `Session` in unit
tests. It answers SKE, auth and registration, and a few commands; tests add
other users' traffic by sending crafted packets. (The spec-following test
server for integration tests is tests/servers/silc, written separately.)"""

from __future__ import annotations

import asyncio
import os

from bridge.silc import crypto
from bridge.silc.auth import AuthRequestPayload, ConnectionAuthPayload
from bridge.silc.ids import IdType, SilcId, decode_id_payload, encode_id_payload
from bridge.silc.message import ChannelKey, MessageFlag, encrypt_channel_message
from bridge.silc.packet import Packet, PacketReader, PacketType, PacketWriter
from bridge.silc.payloads import (
    Arguments,
    ChannelKeyPayload,
    Command,
    CommandPayload,
    Notify,
    NotifyPayload,
    PublicKeyPayload,
    Status,
    encode_id_list,
    encode_status,
)
from bridge.silc.session import Session

from .keys import key_pair
from .responder import Responder

SERVER_ID = SilcId(IdType.SERVER, bytes.fromhex("7f000001029a0001"))


def client_id(n: int) -> SilcId:
    return SilcId(IdType.CLIENT, bytes([127, 0, 0, 1, n]) + bytes(11))


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


class FakeServer:
    def __init__(
        self,
        answer_auth_request: bool = True,
        fail_auth: bool = False,
        auth_method: int = 0,
        client_founds: bool = False,
        **responder_args,
    ) -> None:
        self.keys = key_pair("server")
        self.responder = Responder(self.keys, **responder_args)
        self.reader, self.writer = PacketReader(), PacketWriter()
        self.answer_auth_request = answer_auth_request
        self.fail_auth = fail_auth
        self.auth_method = auth_method
        self.join_status = Status.OK
        self.session: Session | None = None
        self.inbox: list[Packet] = []
        self.auth_payload: ConnectionAuthPayload | None = None
        self.client = client_id(1)
        self.users: dict[bytes, tuple[str, str]] = {}  # client id -> (nick, fingerprint hex)
        self.public_keys: dict[bytes, bytes] = {}  # client id -> encoded key, for GETKEY
        self.channel_id = SilcId(IdType.CHANNEL, bytes.fromhex("7f000001029a0002"))
        self.channel_key = ChannelKey.from_server("aes-256-cbc", os.urandom(32), "hmac-sha1-96")
        self.raw_channel_key = b""
        self.members: list[SilcId] = []
        self.channel_mode = 0
        self.client_founds = client_founds  # the client founds the channel it joins
        self.commands: list[CommandPayload] = []
        self.silent_commands: set[int] = set()
        self.rekeys = 0
        self._pending_receive = None

    def attach(self, session: Session) -> None:
        """In memory: deliver to `session` on the next loop turn, so nothing re-enters."""
        self.session = session
        loop = asyncio.get_running_loop()
        self.deliver = lambda data: loop.call_soon(session.data_received, data)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Over a real socket (asyncio.start_server callback)."""
        self.deliver = writer.write
        self.hang_up = writer.close
        try:
            while data := await reader.read(65536):
                self.transmit(data)
            self.client_hung_up = not writer.is_closing()  # before we did
        finally:
            writer.close()

    # -- the wire, asynchronous in both directions so nothing re-enters --

    def transmit(self, data: bytes) -> None:
        self.reader.feed(data)
        while (p := self.reader.next()) is not None:
            self.inbox.append(p)
            self._handle(p)

    def send(
        self,
        ptype: int,
        payload: bytes = b"",
        dst: SilcId | None = None,
        src: SilcId | None = SERVER_ID,
        flags: int = 0,
    ) -> None:
        if not self.muted:
            self.deliver(self.writer.seal(Packet(ptype, payload, flags, src, dst or self._client_dst())))

    def _client_dst(self) -> SilcId | None:
        return self.client if self.registered else None

    registered = False
    muted = False  # sends nothing at all: a link gone dead without a word
    client_hung_up: bool | None = None  # how the socket ended
    closes_on_quit = True  # as a server does (silc-commands QUIT); over a socket only
    hang_up = staticmethod(lambda: None)

    # -- protocol --

    @property
    def negotiated(self):
        from bridge.silc.ske import Negotiated

        c = self.responder.choice
        return Negotiated(
            c["groups"], c["pkcs"], c["ciphers"], c["hashes"], c["hmacs"], self.responder.flags, ""
        )

    def _install(self, send: bool, view, rekeyed: bool = False) -> None:
        """`view` is the server's view: send_* is what the server sends with."""
        neg = self.negotiated
        h = None if rekeyed else self.responder.ske_hash
        if send:
            prefix = crypto.ctr_prefix(neg.hash, h, view.send_iv)
            self.writer.set_keys(
                crypto.packet_cipher(neg.cipher, view.send_key, view.send_iv, prefix, True),
                crypto.Hmac(neg.hmac, view.send_hmac_key),
            )
            self.send_key = view.send_key
        else:
            prefix = crypto.ctr_prefix(neg.hash, h, view.receive_iv)
            self.reader.set_keys(
                crypto.packet_cipher(neg.cipher, view.receive_key, view.receive_iv, prefix, False),
                crypto.Hmac(neg.hmac, view.receive_hmac_key),
            )
            self.receive_key = view.receive_key

    def _handle(self, p: Packet) -> None:
        t = PacketType
        if p.type == t.KEY_EXCHANGE:
            self.send(t.KEY_EXCHANGE, self.responder.reply_start(p.payload))
        elif p.type == t.KEY_EXCHANGE_1 and self.reader.cipher is None:
            self.send(t.KEY_EXCHANGE_2, self.responder.ke2(p.payload))
        elif p.type == t.SUCCESS and self.reader.cipher is None:
            view = self.responder.material.swapped()  # the server is the responder
            self._install(False, view)
            self.send(t.SUCCESS, u32(0))
            self._install(True, view)
        elif p.type == t.CONNECTION_AUTH_REQUEST:
            if self.answer_auth_request:
                self.send(t.CONNECTION_AUTH_REQUEST, AuthRequestPayload(1, self.auth_method).encode())
        elif p.type == t.CONNECTION_AUTH:
            self.auth_payload = ConnectionAuthPayload.decode(p.payload)
            self.send(t.FAILURE if self.fail_auth else t.SUCCESS, u32(1 if self.fail_auth else 0))
        elif p.type == t.NEW_CLIENT:
            self.send(t.NEW_ID, encode_id_payload(self.client))
            self.registered = True
        elif p.type == t.COMMAND:
            cmd = CommandPayload.decode(p.payload)
            self.commands.append(cmd)
            if cmd.command == Command.QUIT and self.closes_on_quit:
                self.hang_up()
            elif cmd.command not in self.silent_commands:
                self._command(cmd)
        elif p.type == t.REKEY:
            self.rekeys += 1
            if not self.negotiated.pfs:
                self._rekey(self.receive_key, server_initiates=False)
        elif p.type == t.KEY_EXCHANGE_1:
            self._pfs_answer(p.payload)
        elif p.type == t.REKEY_DONE:
            self._rekey_done()

    def reply(self, cmd: CommandPayload, *args, status: int = Status.OK, error: int = 0) -> None:
        payload = CommandPayload(
            cmd.command, cmd.ident, Arguments.of((1, encode_status(status, error)), *args)
        )
        self.send(PacketType.COMMAND_REPLY, payload.encode())

    def _command(self, cmd: CommandPayload) -> None:
        a = cmd.args
        if cmd.command == Command.NICK:
            self.client = client_id(2)
            self.reply(cmd, (2, encode_id_payload(self.client)), (3, a.get(1)))
        elif cmd.command == Command.PING:
            self.reply(cmd)
        elif cmd.command == Command.JOIN and self.join_status != Status.OK:
            self.reply(cmd, (2, encode_id_payload(self.channel_id)), status=self.join_status)
        elif cmd.command == Command.JOIN:
            self.members = [self.client, *self.members]
            self.reply(
                cmd,
                (2, a.get(1)),
                (3, encode_id_payload(self.channel_id)),
                (4, encode_id_payload(self.client)),
                (5, u32(self.channel_mode)),
                (6, u32(1)),
                (
                    7,
                    ChannelKeyPayload(
                        self.channel_id.data, self.channel_key.cipher, self.channel_key.key
                    ).encode(),
                ),
                (10, b"the topic"),
                (11, b"hmac-sha1-96"),
                (12, u32(len(self.members))),
                (13, encode_id_list(self.members)),
                (14, b"".join(u32(int(m == self.client and self.client_founds)) for m in self.members)),
            )
        elif cmd.command == Command.CMODE and not self.client_founds:
            self.reply(cmd, (2, a.get(1)), status=Status.ERR_NO_CHANNEL_FOPRIV)
        elif cmd.command == Command.CMODE:
            self.channel_mode = int.from_bytes(a.get(2), "big")
            self.reply(cmd, (2, a.get(1)), (3, a.get(2)))
            mode_change = (1, encode_id_payload(self.client)), (2, a.get(2))
            self.notify(Notify.CMODE_CHANGE, *mode_change, dst=self.channel_id)
        elif cmd.command == Command.WHOIS:  # by Client IDs (arguments 4, 5, ...): a list reply
            ids = [data for t, data in a.items if t >= 4]
            for n, raw in enumerate(ids):
                status = Status.OK if len(ids) == 1 else Status.LIST_START if n == 0 else \
                    Status.LIST_END if n == len(ids) - 1 else Status.LIST_ITEM
                cid = decode_id_payload(raw)
                if cid.data not in self.users:
                    missing = Status.ERR_NO_SUCH_CLIENT_ID
                    if len(ids) == 1:
                        status, missing = missing, 0
                    self.reply(cmd, (2, raw), status=status, error=missing)
                    continue
                nick, fp = self.users[cid.data]
                self.reply(
                    cmd,
                    (2, raw),
                    (3, nick.encode()),
                    (4, b"u@h"),
                    (5, b"Real"),
                    (9, bytes.fromhex(fp) if fp else None),
                    status=status,
                )
        elif cmd.command == Command.GETKEY:
            cid = decode_id_payload(a.get(1))
            key = self.public_keys.get(cid.data)
            if key is None:
                self.reply(cmd, status=Status.ERR_NO_SUCH_CLIENT_ID)
                return
            self.reply(cmd, (2, a.get(1)), (3, PublicKeyPayload(1, key).encode()))
        elif cmd.command in (Command.LEAVE, Command.TOPIC):
            self.reply(cmd, (2, a.get(1)))
        elif cmd.command == Command.USERS:
            self.reply(
                cmd,
                (2, a.get(1)),
                (3, u32(len(self.members))),
                (4, encode_id_list(self.members)),
                (5, b"".join(u32(0) for _ in self.members)),
            )

    # -- helpers for tests --

    def add_user(self, n: int, nick: str, fp: str | None = None) -> SilcId:
        cid = client_id(n)
        self.users[cid.data] = (nick, fp if fp is not None else f"{n:02X}" * 20)
        return cid

    def notify(self, ntype: int, *args, dst: SilcId | None = None) -> None:
        self.send(PacketType.NOTIFY, NotifyPayload(ntype, Arguments.of(*args)).encode(), dst=dst)

    def channel_message(
        self, sender: SilcId, text: str, flags: int = MessageFlag.UTF8, key: ChannelKey | None = None
    ) -> None:
        payload = encrypt_channel_message(
            key or self.channel_key, flags, text.encode(), sender.data, self.channel_id.data
        )
        self.send(PacketType.CHANNEL_MESSAGE, payload, dst=self.channel_id, src=sender)

    def new_channel_key(self) -> None:
        self.channel_key = ChannelKey.from_server("aes-256-cbc", os.urandom(32), "hmac-sha1-96")
        self.send(
            PacketType.CHANNEL_KEY,
            ChannelKeyPayload(self.channel_id.data, "aes-256-cbc", self.channel_key.key).encode(),
        )

    def start_rekey(self) -> None:
        """A server-initiated rekey without PFS (silc-spec 4.8)."""
        self.send(PacketType.REKEY)
        self._rekey(self.send_key, server_initiates=True)

    def _rekey(self, initiator_send_key: bytes, server_initiates: bool) -> None:
        """As this test reads silc-spec 4.8: the rekey initiator's current
        sending key is processed without HASH; the initiator uses the result
        as is, the other side swapped. REKEY_DONE still goes under old keys."""
        from bridge.silc.ske import rekey_material

        material = rekey_material(self.negotiated, initiator_send_key)
        self.send(PacketType.REKEY_DONE)
        view = material if server_initiates else material.swapped()
        self._install(True, view, rekeyed=True)
        self._pending_receive = view

    def _pfs_answer(self, ke1: bytes) -> None:
        from bridge.silc.ske import PfsRekey

        mine = PfsRekey(self.negotiated)
        self.send(PacketType.KEY_EXCHANGE_2, mine.payload())
        view = mine.material(ke1).swapped()
        self.send(PacketType.REKEY_DONE)
        self._install(True, view, rekeyed=True)
        self._pending_receive = view

    def _rekey_done(self) -> None:
        self._install(False, self._pending_receive, rekeyed=True)

    def packets(self, ptype: int) -> list[Packet]:
        return [p for p in self.inbox if p.type == ptype]
