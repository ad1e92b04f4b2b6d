"""Bad input mid-stream toward the bridge: it costs that input only, nothing else is lost or
held, and its content stays out of the log above debug. See tests/faults/harness.py."""

from __future__ import annotations

import pytest

from tests.faults.harness import IRC, ROOM, XMPP, FaultRun

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

MARKER = "FAULT-MARKER-7f3a"

#: Not well-formed (the end tag does not match), between two stanzas from Prosody.
BAD_STANZA = (f"<message from='{ROOM}/mallory' to='bridge.localhost' type='groupchat' "
              f"id='bad-1'><body>{MARKER}</bod></message>").encode()
STANZA_ENDS = (b"</message>", b"</presence>", b"</iq>")

#: Lines an IRC server should never send, between two lines of InspIRCd's.
BAD_IRC_LINES = b"".join([
    b"\xff\xfe\x00 " + MARKER.encode() + b" no command at all\r\n",
    b":mallory!m@h PRIVMSG\r\n",  # no target, no text
    b":irc.localhost 353\r\n",  # a names reply without its parameters
    b"@k=" + b"v" * 9000 + b" :mallory!m@h PRIVMSG #room :" + MARKER.encode() + b"\r\n",  # tags over 8 KiB
])


async def test_malformed_stanza_on_the_component_link(tmp_path):
    async with FaultRun("malformed stanza", tmp_path) as run:
        await run.inject(XMPP, BAD_STANZA, STANZA_ENDS, secret=MARKER)
        result = await run.finish()
    result.check(bodies_in_logs=True)


async def test_malformed_irc_lines_mid_stream(tmp_path):
    async with FaultRun("malformed IRC line", tmp_path) as run:
        await run.inject(IRC, BAD_IRC_LINES, (b"\n",), secret=MARKER)
        result = await run.finish()
    result.check(bodies_in_logs=True)
