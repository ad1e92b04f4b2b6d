"""What a network says about one of its users: an XMPP client shows it as the puppet's
contact card (vcard-temp). Network-neutral."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    nick: str
    network: str  # as configured
    protocol: str  # "IRC", "SILC"
    online: bool | None = None  # None: the network was not asked, or did not answer
    realname: str | None = None
    account: str | None = None
    away: str | None = None  # the away message
    fingerprint: str | None = None  # of the user's public key, as people read it

    def lines(self) -> list[str]:
        """What a card says beyond the name, one fact a line."""
        where = f"{self.protocol} network {self.network}".strip()
        lines = [f"{self.nick} is a user on the {where}, relayed by muc-bridge."]
        if self.online is False:
            lines.append(f"Not on {self.network} right now.")
        if self.realname:
            lines.append(f"Real name: {self.realname}")
        if self.account:
            lines.append(f"Account: {self.account}")
        if self.away:
            lines.append(f"Away: {self.away}")
        if self.fingerprint:
            lines.append(f"Public key fingerprint: {self.fingerprint}")
        return lines
