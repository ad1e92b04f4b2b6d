"""Session keys: installing them after the key exchange, and rekeys in
either direction, with or without PFS (silc-spec 4.8). Part of `Session`
(machine.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.silc.crypto import Hmac, KeyMaterial, ctr_prefix, packet_cipher
from bridge.silc.packet import Packet, PacketType
from bridge.silc.session.errors import SessionError
from bridge.silc.session.phase import Phase
from bridge.silc.ske import PfsRekey, SkeError, rekey_material


@dataclass
class RekeyState:
    pfs: PfsRekey | None
    receive: KeyMaterial | None = None  # installed when the peer's REKEY_DONE comes
    sent_done: bool = False


class Rekeying:
    """Session keys and rekeys; needs the Session's packet `_reader`, `_writer` and `_send`."""

    def _ctr_prefix(self, iv: bytes) -> bytes:
        assert self.ske is not None
        first = self._rekey is None  # no HASH after a rekey
        return ctr_prefix(self.ske.negotiated.hash, self.ske.ske_hash if first else None, iv)

    def _install_send(self, material: KeyMaterial) -> None:
        """`material` in our view: send_* is ours."""
        assert self.ske is not None
        neg = self.ske.negotiated
        cipher = packet_cipher(
            neg.cipher, material.send_key, material.send_iv, self._ctr_prefix(material.send_iv), True
        )
        self._writer.set_keys(cipher, Hmac(neg.hmac, material.send_hmac_key))
        self._send_key = material.send_key
        self.keys_since = time.monotonic()

    def _install_receive(self, material: KeyMaterial) -> None:
        assert self.ske is not None
        neg = self.ske.negotiated
        cipher = packet_cipher(
            neg.cipher,
            material.receive_key,
            material.receive_iv,
            self._ctr_prefix(material.receive_iv),
            False,
        )
        self._reader.set_keys(cipher, Hmac(neg.hmac, material.receive_hmac_key))
        self._receive_key = material.receive_key

    @property
    def bytes_since_rekey(self) -> int:
        return self._writer.bytes_sealed + self._reader.bytes_opened

    def start_rekey(self) -> None:
        """Begin a rekey as its initiator (the connection's initiator SHOULD)."""
        if self._rekey is not None or self.phase is not Phase.CONNECTED or self.ske is None:
            return
        self.log.info("silc_rekey", initiator="client", pfs=self.ske.negotiated.pfs)
        self._send(PacketType.REKEY)
        if self.ske.negotiated.pfs:
            self._rekey = RekeyState(PfsRekey(self.ske.negotiated))
            self._held = []
            self._send(PacketType.KEY_EXCHANGE_1, self._rekey.pfs.payload())
        else:
            self._rekey = RekeyState(None)
            self._rekey_done(rekey_material(self.ske.negotiated, self._send_key))

    def _on_rekey(self, p: Packet) -> None:
        """The server asks for a rekey: it is the initiator this time."""
        if self._rekey is not None or self.ske is None:
            self.log.warning("silc_rekey_collision")
            return
        self.log.info("silc_rekey", initiator="server", pfs=self.ske.negotiated.pfs)
        if self.ske.negotiated.pfs:
            self._rekey = RekeyState(PfsRekey(self.ske.negotiated))
            self._held = []
        else:
            self._rekey = RekeyState(None)
            self._rekey_done(rekey_material(self.ske.negotiated, self._receive_key).swapped())

    def _on_rekey_ke(self, p: Packet) -> None:
        rekey = self._rekey
        if rekey is None or rekey.pfs is None or rekey.sent_done:
            self.log.warning("silc_key_exchange_unexpected", type=p.type)
            return
        try:
            material = rekey.pfs.material(p.payload)
        except SkeError as exc:
            raise SessionError(f"rekey failed: {exc}") from None
        if p.type == PacketType.KEY_EXCHANGE_1:  # we answer the server's exchange
            self._send(PacketType.KEY_EXCHANGE_2, rekey.pfs.payload())
            material = material.swapped()
        self._rekey_done(material)

    def _rekey_done(self, material: KeyMaterial) -> None:
        """Send REKEY_DONE under the old keys, then switch sending keys."""
        assert self._rekey is not None
        self._send(PacketType.REKEY_DONE)
        self._install_send(material)
        self._rekey.receive, self._rekey.sent_done = material, True
        held, self._held = self._held, None
        for packet, max_padding in held or ():
            self._transmit(self._writer.seal(packet, max_padding))

    def _on_rekey_done(self, p: Packet) -> None:
        rekey = self._rekey
        if rekey is None or rekey.receive is None:
            raise SessionError("REKEY_DONE without a rekey")
        self._install_receive(rekey.receive)
        self._rekey = None
