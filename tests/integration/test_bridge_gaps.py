"""Nothing said while the bridge's link is down is lost: a user's view across a dropped
component stream (the bridge reconnects, rejoins and fills the gap)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

from tests.integration.bridge_harness import ROOM, config_text, irc_network
from tests.integration.clients import wait_until
from tests.integration.test_bridge_relay import CHAN, pair  # noqa: F401  (fixture)


async def test_what_is_said_on_both_sides_while_the_component_link_is_down_arrives_once(pair):  # noqa: F811
    alice, bob, bridge = pair
    alice.say(ROOM, "before")
    await bob.wait_for_privmsg(CHAN, "<alice> before")
    presence_mark, line_mark = alice.presences.mark(), bob.lines.mark()
    bridge.adapters[0].component.abort()  # the stream is gone; back after a backoff of ~1 s
    for n in range(5):
        alice.say(ROOM, f"while out {n}")
        bob.privmsg(CHAN, f"irc while out {n}")
    await alice.presences.wait_for(lambda p: p.nick == "bridge" and not p.available, timeout=15,
                                   after=presence_mark)
    await alice.presences.wait_for(lambda p: p.nick == "bridge" and p.available, timeout=15,
                                   after=presence_mark)
    late = re.compile(r"<alice> \[\d\d:\d\d:\d\d UTC\] (while out \d)")  # replayed: said then
    for n in range(5):
        await bob.wait_for(lambda l: l.command == "PRIVMSG" and (m := late.fullmatch(l.text))
                           and m[1] == f"while out {n}", timeout=10)
        await alice.wait_for_message(ROOM, f"irc while out {n}", nick="bob", timeout=10)
    alice.say(ROOM, "after")
    await bob.wait_for_privmsg(CHAN, "<alice> after")
    texts = [line.text for line in bob.privmsgs(CHAN, after=line_mark)]
    assert len(texts) == 6 and texts[-1] == "<alice> after"
    assert sorted(late.fullmatch(t)[1] for t in texts[:-1]) == [f"while out {n}" for n in range(5)]
    relayed = [m.body for m in alice.messages if m.nick == "bob" and m.body.startswith("irc while out")]
    assert sorted(relayed) == [f"irc while out {n}" for n in range(5)]


def test_the_log_stays_one_json_event_per_line_across_server_restarts(tmp_path):
    """No multi-line asyncio noise ('Task was destroyed but it is pending!') on reconnects."""
    import asyncio

    from bridge.demo.servers import InspIRCd, Prosody

    async def scenario() -> list[str]:
        async with Prosody(tmp_path / "prosody") as prosody, InspIRCd(tmp_path / "ircd") as ircd:
            path = tmp_path / "config.yaml"
            path.write_text(config_text(prosody, tmp_path, irc_network("net", ircd),
                                        f"  l:\n    - xmpp: {ROOM}\n    - irc: net/{CHAN}\n")
                            + "log: {format: json}\n")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-X", "dev", "-m", "bridge", "run", "--config", str(path),
                stderr=subprocess.PIPE, env=os.environ.copy())
            lines: list[str] = []

            async def read() -> None:
                async for raw in process.stderr:
                    lines.append(raw.decode(errors="replace").rstrip("\n"))
            reader = asyncio.create_task(read())

            async def logged(event: str, after: int, what: str) -> None:
                await wait_until(lambda: any(f'"{event}"' in line for line in lines[after:]), 30, what)
            try:
                mark = 0
                for _ in range(3):
                    await logged("muc_joined", mark, "the bot in the room")
                    mark = len(lines)
                    await prosody.kill()
                    await logged("xmpp_offline", mark, "the bridge to notice")
                    await prosody.start()
                await logged("muc_joined", mark, "the bot back in the room")
            finally:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 20)
                await reader
            return lines

    lines = asyncio.run(scenario())
    assert lines
    for line in lines:
        assert line.startswith("{"), f"not a JSON event: {line!r}"
        json.loads(line)
    assert not [line for line in lines if "Task was destroyed" in line]
