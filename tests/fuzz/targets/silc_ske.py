"""The SILC key exchange, authentication and registration, through a real `Session`
(bridge/silc/session, bridge/silc/ske.py) against a server side the input scripts.

The input is a recipe (JSON): what the server answers to the client's start payload
(flags, cookie, version, the algorithms it picks, or bytes of its own), its Key Exchange
Payload (which of the generator's keys, its identifier, algorithm and number encodings, the
Diffie-Hellman value, and a signature made over the HASH of what was actually exchanged, so
that the exchange gets past the signature check; or a signature broken, or of another key),
then the packets after it (SUCCESS, the auth request, auth result, NEW_ID, anything) under
the session keys the exchange made, some corrupted. What must hold: the session registers or
fails with SessionError, no handler fails (`silc_packet_handler_failed`), nothing escapes;
and a recipe nothing was broken in registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.silc import crypto
from bridge.silc.auth import AuthMethod
from bridge.silc.buffer import lp16, lp32, u16, u32
from bridge.silc.ids import IdType, SilcId, encode_id_payload
from bridge.silc.packet import Packet, PacketReader, PacketType, PacketWriter
from bridge.silc.payloads import DisconnectPayload
from bridge.silc.pubkey import PublicKey, identifier_for
from bridge.silc.session import KeyRefused, Phase, Session, SessionConfig, SessionError
from bridge.silc.ske import KePayload, Proposal, StartPayload
from tests.fuzz.engine import Target, Violation
from tests.fuzz.logs import Recorder
from tests.fuzz.mutate import mutate
from tests.fuzz.targets.silc_common import event_loop, key_pair, small_exponents

SERVER_ID = SilcId(IdType.SERVER, bytes.fromhex("7f000001029a0001"))
CLIENT_ID = SilcId(IdType.CLIENT, bytes([127, 0, 0, 1, 9]) + bytes(11))
SERVER_KEYS = [("server", 1024, None), ("server", 2048, None), ("server2", 1024, "UN=s, HN=h, V=2")]
_LOOP: asyncio.AbstractEventLoop | None = None


def _hex(rng: random.Random, size: int) -> str:
    return rng.randbytes(size).hex()


def _maybe(rng: random.Random, p: float, broken, fine):
    return broken() if rng.random() < p else fine


def generate(rng: random.Random) -> bytes:
    """A recipe: with no mutation at all a third of the time (it must register)."""
    clean = rng.random() < 0.35
    p = 0.0 if clean else 0.05
    proposal = Proposal()
    recipe = {
        "clean": clean,
        "seed": rng.getrandbits(32),
        "pfs": rng.random() < 0.2,
        "password": rng.choice([None, None, "pw"]),
        "refuse_key": _maybe(rng, p / 3, lambda: True, False),
        "start": {
            "flags": _maybe(rng, p, lambda: rng.randrange(256), rng.choice((0, 4))),
            "cookie": _maybe(rng, p, lambda: _hex(rng, rng.choice((15, 16))), "echo"),
            "version": _maybe(rng, p, lambda: rng.choice(["SILC-2.0-x", "SILC-1.2", "", "SILC-1.2-é",
                                                          "SILC-1.1-1.0 " + "x" * 300]),
                              rng.choice(["SILC-1.2-1.1.18", "SILC-1.1-2.0 silcd"])),
            "group": _maybe(rng, p, lambda: rng.choice(["diffie-hellman-group3", "", "x,y"]),
                            rng.choice(proposal.groups)),
            "pkcs": _maybe(rng, p, lambda: "dss", "rsa"),
            "cipher": _maybe(rng, p, lambda: rng.choice(["aes-256-ofb", "twofish-256-cbc", "aes-256-cbc,"]),
                             rng.choice(proposal.ciphers)),
            "hash": _maybe(rng, p, lambda: "md5", rng.choice(proposal.hashes)),
            "hmac": _maybe(rng, p, lambda: "hmac-sha512", rng.choice(proposal.hmacs)),
            "compression": rng.choice(["", "none", "zlib"]),
            "mutate": _maybe(rng, p / 2, lambda: rng.getrandbits(32), None),
        },
        "ke2": {
            "key": rng.randrange(len(SERVER_KEYS)),
            "identifier": _maybe(rng, p, lambda: rng.choice(["", "V=2", "é" * 100, "UN=a\\, HN=b, V=3"]),
                                 None),
            "algorithm": _maybe(rng, p, lambda: rng.choice(["dsa", "RSA", ""]), "rsa"),
            "pk_type": _maybe(rng, p, lambda: rng.choice((0, 2, 3)), 1),
            "zeros": _maybe(rng, p, lambda: rng.choice((1, 2)), 0),  # leading zeros in e and n
            "f": _maybe(rng, p, lambda: rng.choice(["0", "1", "p-1", "p", "p+1", "big", "empty"]), "valid"),
            "sign": _maybe(rng, p, lambda: rng.choice(["flip", "empty", "other", "v1", "short"]), "ok"),
            "mutate": _maybe(rng, p / 2, lambda: rng.getrandbits(32), None),
            "extra": _maybe(rng, p / 3, lambda: _hex(rng, 3), ""),
        },
        "after": [],
    }
    steps = ["success", "auth_request", "auth_result", "new_id"]  # SUCCESS in clear, then keyed
    if not clean and rng.random() < 0.3:
        rng.shuffle(steps)
    for name in steps:
        if not clean and rng.random() < 0.1:
            continue
        step = {"kind": name,
                "method": rng.choice([AuthMethod.NONE, AuthMethod.PUBLIC_KEY]
                                     + ([AuthMethod.PASSPHRASE] if recipe["password"] or not clean else [])
                                     + ([7] if not clean else [])),
                "fail": not clean and rng.random() < 0.1,
                "mutate": _maybe(rng, p / 2, lambda: rng.getrandbits(32), None),
                "wire": _maybe(rng, p / 3, lambda: rng.getrandbits(32), None),
                "list": rng.random() < 0.2}
        recipe["after"].append(step)
        if not clean and rng.random() < 0.08:
            recipe["after"].append({"kind": "raw", "type": rng.choice(list(PacketType)).value,
                                    "payload": _hex(rng, rng.randrange(40)), "mutate": None, "wire": None})
    if not clean and rng.random() < 0.05:
        recipe["after"].insert(rng.randrange(len(recipe["after"]) + 1), {
            "kind": "disconnect", "mutate": None, "wire": None})
    return json.dumps(recipe).encode()


class _Server:
    """The server side, as the recipe says."""

    def __init__(self, recipe: dict, session: Session, sent: list[bytes]) -> None:
        self.recipe = recipe
        self.session = session
        self.sent = sent
        self.rng = random.Random(recipe["seed"])
        self.reader = PacketReader()
        self.writer = PacketWriter(random=self.rng.randbytes)
        self.material = None
        self.ske_hash = b""
        self.choice = recipe["start"]

    def client_packet(self, ptype: int) -> Packet | None:
        """The next clear packet the client sent, if it is of `ptype`."""
        while self.sent:
            self.reader.feed(self.sent.pop(0))
        try:
            packet = self.reader.next()
        except Exception:
            return None
        return packet if packet is not None and packet.type == ptype else None

    def send(self, ptype: int, payload: bytes, step: dict, flags: int = 0, src=SERVER_ID, dst=None) -> None:
        if step.get("mutate") is not None:
            payload = mutate(random.Random(step["mutate"]), payload)
        registered = self.session.client_id is not None
        dst = dst or (CLIENT_ID if registered else None)
        wire = self.writer.seal(Packet(ptype, payload, flags, src, dst))
        if step.get("wire") is not None:
            wire = mutate(random.Random(step["wire"]), wire)
        cut = self.rng.randrange(len(wire) + 1) if self.rng.random() < 0.3 else len(wire)
        self.session.data_received(wire[:cut])
        if cut < len(wire):
            self.session.data_received(wire[cut:])

    # The key exchange, computed from what the client sent

    def start_reply(self) -> None:
        packet = self.client_packet(PacketType.KEY_EXCHANGE)
        if packet is None:
            return
        self.client_start = packet.payload
        start = StartPayload.decode(packet.payload)
        c = self.choice
        cookie = start.cookie if c["cookie"] == "echo" else bytes.fromhex(c["cookie"])
        reply = StartPayload(c["flags"] | (start.flags & 0x02), cookie, c["version"], c["group"], c["pkcs"],
                             c["cipher"], c["hash"], c["hmac"], c["compression"]).encode()
        self.send(PacketType.KEY_EXCHANGE, reply, c)

    def ke2(self) -> None:
        packet = self.client_packet(PacketType.KEY_EXCHANGE_1)
        if packet is None:
            return
        k, c = self.recipe["ke2"], self.choice
        ke1 = KePayload.decode(packet.payload)
        name, bits, identifier = SERVER_KEYS[k["key"]]
        pair = key_pair(name, bits, identifier)
        numbers = pair.private.public_key().public_numbers()
        zeros = bytes(k["zeros"])
        identifier = k["identifier"] or identifier or identifier_for(name, "fuzz.example")
        body = (lp16(k["algorithm"].encode()) + lp16(identifier.encode())
                + lp32(zeros + crypto.mp_encode(numbers.e)) + lp32(zeros + crypto.mp_encode(numbers.n)))
        server_key = u32(len(body)) + body
        prime = crypto.DH_GROUPS.get(c["group"], crypto.DH_GROUPS["diffie-hellman-group1"])
        y = 2 + self.rng.getrandbits(64)
        f = {"valid": pow(2, y, prime), "0": 0, "1": 1, "p-1": prime - 1, "p": prime, "p+1": prime + 1,
             "big": 1 << 2000, "empty": 0}[k["f"]]
        f_bytes = crypto.mp_encode(f) if k["f"] != "empty" else b""
        key = crypto.mp_encode(pow(crypto.mp_decode(ke1.public_data), y, prime))
        hash_name = c["hash"] if c["hash"] in crypto.HASHES else "sha1"
        self.ske_hash = crypto.digest(hash_name, self.client_start + server_key + ke1.public_key
                                      + ke1.public_data + f_bytes + key)
        signature = self.sign(pair, k["sign"], identifier)  # as the identifier sent says: past the check
        payload = KePayload(k["pk_type"], server_key, f_bytes, signature).encode() + bytes.fromhex(k["extra"])
        try:
            key_len = crypto.cipher_spec(c["cipher"]).key_len
            self.material = crypto.process_key_material(hash_name, key, self.ske_hash, key_len).swapped()
        except crypto.CryptoError:
            self.material = None  # the client refuses that cipher anyway
        self.send(PacketType.KEY_EXCHANGE_2, payload, k)

    def sign(self, pair, how: str, identifier: str) -> bytes:
        version = PublicKey(b"", "rsa", identifier, None).version
        if how == "other":
            pair = key_pair("stranger", 1024)
        if how == "empty":
            return b""
        if (version == 2) != (how == "v1"):
            signature = pair.private.sign(self.ske_hash, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = pair.sign(self.ske_hash)
        if how == "flip":
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        if how == "short":
            signature = signature[1:]
        return signature

    def install(self) -> None:
        """The server's sending keys, once it has sent its SUCCESS in clear."""
        c = self.choice
        if self.material is None or c["hmac"] not in crypto.HMACS:
            return
        view = self.material
        hash_name = c["hash"] if c["hash"] in crypto.HASHES else "sha1"
        prefix = crypto.ctr_prefix(hash_name, self.ske_hash, view.send_iv)
        try:
            cipher = crypto.packet_cipher(c["cipher"], view.send_key, view.send_iv, prefix, True)
        except crypto.CryptoError:
            return
        self.writer.set_keys(cipher, crypto.Hmac(c["hmac"], view.send_hmac_key))

    def step(self, step: dict) -> None:
        kind = step["kind"]
        if kind == "success":
            self.send(PacketType.SUCCESS, u32(0), step)
            self.install()
        elif kind == "auth_request":
            self.send(PacketType.CONNECTION_AUTH_REQUEST, u16(1) + u16(step["method"]), step)
        elif kind == "auth_result":
            failed = step["fail"]
            self.send(PacketType.FAILURE if failed else PacketType.SUCCESS, u32(int(failed)), step)
        elif kind == "new_id":
            ids = encode_id_payload(CLIENT_ID)
            if step.get("list"):
                ids = encode_id_payload(SERVER_ID) + ids
            self.send(PacketType.NEW_ID, ids, step, flags=0x02 if step.get("list") else 0)
        elif kind == "disconnect":
            self.send(PacketType.DISCONNECT, DisconnectPayload(3, "bye é").encode(), step)
        else:
            self.send(step["type"], bytes.fromhex(step["payload"]), step)


async def _run(recipe: dict) -> tuple[Session, Recorder, list]:
    sent: list[bytes] = []
    log = Recorder()

    def check_key(key):
        if recipe["refuse_key"]:
            raise KeyRefused("not the pinned key")

    config = SessionConfig(username="xb", realname="relay é", password=recipe["password"],
                           proposal=Proposal(pfs=recipe["pfs"]), auth_request_timeout=60)
    session = Session(config, key_pair("client", 1024), sent.append, check_key, lambda e: None)
    session.log = log
    session._ske._random = random.Random(recipe["seed"] ^ 1).randbytes
    server = _Server(recipe, session, sent)
    escaped = []
    try:
        session.start()
        steps = [lambda s=s: server.step(s) for s in recipe["after"]]
        for act in [server.start_reply, server.ke2, *steps]:
            if session.phase is Phase.CLOSED:
                break
            act()
            await asyncio.sleep(0)
    except Exception as exc:  # out of data_received: asyncio would lose the connection
        escaped.append(exc)
    finally:
        session.close()
    return session, log, escaped


def check(data: bytes) -> None:
    try:
        recipe = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    with small_exponents(random.Random(recipe.get("seed", 0))):
        session, log, escaped = _LOOP.run_until_complete(_run(recipe))
    if escaped:
        raise escaped[0]
    for event, exc in log.failures:
        raise Violation(f"{event}: {type(exc).__name__}: {exc}") from exc
    if session.done.done() and not session.done.cancelled():
        exc = session.done.exception()
        if exc is not None and not isinstance(exc, SessionError):
            raise Violation(f"the session ended with {type(exc).__name__}") from exc
    if recipe["clean"] and not session.registered.done() or (
            recipe["clean"] and session.registered.exception() is not None):
        error = session.registered.exception() if session.registered.done() else "no NEW_ID taken"
        raise Violation(f"a clean exchange did not register: {error}")


@contextlib.contextmanager
def _context() -> Iterator[None]:
    global _LOOP
    for name, bits, identifier in SERVER_KEYS + [("client", 1024, None), ("stranger", 1024, None)]:
        key_pair(name, bits, identifier)  # made once, before any input is timed
    with event_loop() as loop:
        _LOOP = loop
        try:
            yield
        finally:
            _LOOP = None


TARGET = Target("silc-ske", "recipe of a server's SKE, auth and registration -> Session",
                generate, check, bound=0.5, full=100_000, context=_context)
