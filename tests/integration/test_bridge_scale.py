"""Many links on one bridge: 60 MUC rooms and IRC channels, joined within the servers'
limits, every one relaying both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.demo.servers import HOST, InspIRCd, free_port
from tests.integration.bridge_harness import config_text, running_bridge

LINKS = 60
#: Long names: several JOIN lines (about 9 channels each) instead of one or two.
CHANNELS = [f"#scale-{n:02}-{'x' * 28}" for n in range(LINKS)]
ROOMS = [f"scale{n:02}@muc.localhost" for n in range(LINKS)]


class StrictInspIRCd(InspIRCd):
    """The test InspIRCd plus a port for the bridge whose connect class is strict: flood
    threshold 10 s of penalty with fakelag off, so a client that goes over it is dropped
    ("Excess Flood") rather than slowed down, and `<channels users="20">`, so the server
    advertises CHANLIMIT=#:20 while the class (maxchans) lets the bridge into 100. Test users
    connect on the usual port, without limits. The drain (commandrate, 8 s of penalty a
    second) leaves room for the bridge's flood control below: 5 lines a second, of 1 s
    each, and JOIN lines of 2 s at their own pace. (At 6.7 a second the margin was too thin
    for a loaded machine: InspIRCd, reading late, now and then took a second's lines at once
    and dropped the relay for Excess Flood.)"""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.bridge_port = free_port()

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        strict = (f'<bind address="{HOST}" port="{self.bridge_port}" type="clients">\n'
                  f'<connect name="bridge" allow="*" port="{self.bridge_port}" timeout="20" '
                  'pingfreq="120" hardsendq="1M" threshold="10" commandrate="8000" fakelag="no" '
                  'recvq="64K" softsendq="64K" localmax="1000" globalmax="1000" '
                  'maxconnwarn="no" resolvehostnames="no" useident="no" maxchans="100">\n'
                  '<channels users="20">\n')
        self.config_path.write_text(text.replace('<connect name="main"', strict + '<connect name="main"', 1))


@pytest.fixture
async def strict_ircd(tmp_path):
    server = StrictInspIRCd(tmp_path / "inspircd")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_sixty_links_all_joined_within_the_servers_limits_and_all_relaying(
        prosody, strict_ircd, xmpp_user, irc_user, tmp_path):
    ircd = strict_ircd
    bob = await irc_user(ircd, "bob")
    for n in range(0, LINKS, 10):  # within 512 bytes a line
        bob.send_raw("JOIN " + ",".join(CHANNELS[n:n + 10]))
    alice = await xmpp_user("alice")
    for room in ROOMS:
        await alice.join(room, "alice")
    await bob.wait_for(lambda l: l.command == "366" and l.params[1] == CHANNELS[-1])
    networks = (f"  net: {{type: irc, host: {ircd.host}, port: {ircd.bridge_port}, tls: false, "
                f"nick: relay, flood: {{burst: 4, interval: 0.2}}}}\n")
    links = "".join(f"  l{n}:\n    - xmpp: {room}\n    - irc: net/{channel}\n"
                    for n, (room, channel) in enumerate(zip(ROOMS, CHANNELS)))
    text = config_text(prosody, tmp_path, networks, links)
    with capture_logs() as logs:
        async with running_bridge(text) as bridge:
            irc = next(a for a in bridge.adapters if a.network == "net")
            for channel in CHANNELS:
                await bob.wait_for(lambda l: l.command == "JOIN" and l.nick == "relay"
                                   and l.target == channel, timeout=30)
            for room in ROOMS:
                await alice.presences.wait_for(lambda p: p.room == room and p.nick == "bridge"
                                               and p.available, timeout=30)
            for n, channel in enumerate(CHANNELS):
                bob.privmsg(channel, f"from irc {n}")
            for n, room in enumerate(ROOMS):
                alice.say(room, f"from xmpp {n}")
            for n, room in enumerate(ROOMS):
                await alice.wait_for_message(room, f"from irc {n}", nick="bob", timeout=30)
            for n, channel in enumerate(CHANNELS):
                await bob.wait_for_privmsg(channel, f"<alice> from xmpp {n}", sender="relay",
                                           timeout=30)
            drops = [e for e in logs if e["event"] in ("irc_server_error", "irc_disconnected")]
            assert irc.client.connections == 1, drops  # never dropped for flooding the server
    # CHANLIMIT=#:20 was said once, naming the 40 beyond it, and all 60 were joined anyway.
    limits = [e for e in logs if e["event"] == "irc_channel_limit"]
    assert len(limits) == 1 and limits[0]["limit"] == 20 and limits[0]["beyond"] == LINKS - 20
    assert not [e for e in logs if e["event"] in ("irc_too_many_channels", "irc_join_failed")]
