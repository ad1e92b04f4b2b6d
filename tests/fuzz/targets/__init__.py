"""One fuzz target per decoder of network input (and the config loader)."""

from __future__ import annotations

from tests.fuzz.engine import Target
from tests.fuzz.targets import irc_lines, irc_text, xmpp_framing

TARGETS: dict[str, Target] = {t.name: t for t in (
    irc_lines.TARGET,
    irc_text.FORMATTING,
    irc_text.SPLIT,
    xmpp_framing.TARGET,
)}
