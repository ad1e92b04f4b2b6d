"""One fuzz target per decoder of network input (and the config loader)."""

from __future__ import annotations

from tests.fuzz.engine import Target
from tests.fuzz.targets import (
    config, irc_lines, irc_text, silc_packets, silc_payloads, silc_session, silc_ske, xmpp_framing,
)

TARGETS: dict[str, Target] = {t.name: t for t in (
    silc_packets.TARGET,
    silc_payloads.TARGET,
    silc_ske.TARGET,
    silc_session.TARGET,
    irc_lines.TARGET,
    irc_text.FORMATTING,
    irc_text.SPLIT,
    xmpp_framing.TARGET,
    config.TARGET,
)}
