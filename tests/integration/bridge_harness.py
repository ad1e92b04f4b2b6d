"""Run the whole bridge in-process against the fixture servers, from a YAML config."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bridge.app import Bridge
from bridge.config import parse_config

ROOM = "room@muc.localhost"


def config_text(prosody, tmp_path: Path, networks: str, links: str, component: str = "",
                port: int | None = None) -> str:
    """`port`: the component port to use instead of Prosody's (e.g. a proxy's)."""
    return f"""
component:
  jid: {prosody.component_jid}
  server: {prosody.host}
  port: {port or prosody.component_port}
  secret: "{prosody.component_secret}"
{component}
store: {{url: "sqlite://{tmp_path}/bridge.db"}}
networks:
{networks}
links:
{links}
"""


def irc_network(name: str, server, nick: str = "relay", extra: str = "") -> str:
    return (f"  {name}: {{type: irc, host: {server.host}, port: {server.port}, tls: false, "
            f"nick: {nick}, flood: {{burst: 50, interval: 0.02}}{extra}}}\n")


def silc_network(name: str, server, key_dir) -> str:
    """A SILC network entry for `server` (the project's SILC test server), nick relay."""
    return (f"  {name}: {{type: silc, host: 127.0.0.1, port: {server.port}, nick: relay, "
            f"key_dir: {key_dir}/silc-keys}}\n")


@contextlib.asynccontextmanager
async def running_bridge(text: str):
    bridge = Bridge(parse_config(text))
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def bridge_ready(xmpp_user, irc_users, channel: str, room: str = ROOM,
                       relay: str = "relay", bot: str = "bridge", timeout: float = 15.0,
                       after: tuple[int, int] = (0, 0)) -> None:
    """Wait until the bot is in the MUC and the relay client in the IRC channel
    (seen after the `(presence, line)` marks `after`, when the users were there before)."""
    if xmpp_user is not None:
        await xmpp_user.presences.wait_for(lambda p: p.room == room and p.nick == bot and p.available,
                                           timeout, after=after[0])
    for user in irc_users:
        await user.wait_for(lambda l: (l.command == "JOIN" and l.nick == relay
                                       and l.target.lower() == channel.lower())
                            or (l.command == "353" and relay in l.text.replace("@", "").split()),
                            timeout, after=after[1])


async def heard_once(listeners, nick: str, text: str, others: list[str], room: str = ROOM) -> None:
    """`nick`'s line `text` reaches every one of `listeners` in `room`, once; and the last of
    them heard `others` from everyone else but the bot, each once: nothing came back as an echo."""
    for listener in listeners:
        await listener.wait_for_message(room, text, nick=nick)
    await asyncio.sleep(1.0)  # a duplicate or an echo would be here by now
    last = listeners[-1]
    assert [m.body for m in last.messages if m.nick == nick] == [text]
    assert sorted(m.body for m in last.messages if m.body and m.nick not in (nick, "bridge")) == sorted(others)
