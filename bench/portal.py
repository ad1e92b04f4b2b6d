"""What one more portal user costs: `python -m bench.portal [--k 200,1000] [--top 12]`.

K portal users join one channel on a real InspIRCd (`bench.servers`, per-IP and class
limits lifted), each through their own IRC connection, in process: the XMPP side's
`Portal` (its stanzas counted, not sent) over `IrcUsers`, as the bridge wires them. The
Python heap (tracemalloc) is read with one user in and again with K + 1 in; the
difference over K is the memory per IRC connection (the user's `UserLink`, its
`RelayClient`, reactor, reader and writer buffers, outbox, per-channel state, the room
on the XMPP side), and how many connections read the channel's shared member table
(`bridge.irc.members`). Then an IRC user says `--lines` lines in the channel and every one of
the K users must get each (no loss). `--own` puts each user in a channel of their own
instead (no member lists growing with K). The sites that grew most are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import resource
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET

from bench.irc_client import IrcClient
from bench.run import quiet_logs
from bench.servers import BenchInspIRCd
from bridge.config_types import FloodConfig, IrcNetworkConfig, PortalConfig
from bridge.irc.users import IrcUsers
from bridge.store.sqlite import SqliteStore
from bridge.xmpp.portal import Portal

DOMAIN = "bridge.localhost"
NETWORK = "bench"
CHANNEL = "#portal"
#: Users joining at once (InspIRCd takes connections faster than this; the bench host
#: runs other work too).
BATCH = 50
WAIT = 120.0


class Counted:
    """The component's `send`: counts the room messages each user's resource gets."""

    def __init__(self) -> None:
        self.stanzas = 0
        self.messages: Counter[str] = Counter()
        self._to = re.compile(r"<message type='groupchat' from=\S+ to='([^']+)'")

    def __call__(self, stanza: str) -> bool:
        self.stanzas += 1
        if "<body>" in stanza:
            found = self._to.match(stanza)
            if found:
                self.messages[found.group(1)] += 1
        return True


def join(portal: Portal, i: int, channel: str) -> None:
    user = f"u{i}@localhost"
    room = f"{channel}%{NETWORK}@{DOMAIN}/u{i}"
    portal.take("presence", ET.fromstring(
        f"<presence from='{user}/r' to='{room}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"))


def joined(users: IrcUsers, first: int, last: int, channel) -> bool:
    for i in range(first, last):
        link = users.links.get((f"u{i}@localhost", NETWORK))
        chan = link.channels.get(channel(i).lower()) if link is not None else None
        if chan is None or not chan.joined:
            return False
    return True


async def until(test, what: str, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not test():
            await asyncio.sleep(0.05)


async def measure(ircd: BenchInspIRCd, workdir: Path, k: int, own: bool, lines: int, top: int) -> dict:
    channel = (lambda i: f"#own{i}") if own else (lambda i: CHANNEL)
    net = IrcNetworkConfig(name=NETWORK, host=ircd.host, port=ircd.port, tls=False,
                           flood=FloodConfig(burst=1000, interval=0))
    config = PortalConfig(networks=(NETWORK,), users=("*",), per_network=k + 10, per_user=1,
                          secret_file=str(workdir / "portal.key"))
    store = SqliteStore(str(workdir / f"bridge-{k}-{own}.db"))
    users = IrcUsers(config, {NETWORK: net})
    sent = Counted()
    portal = Portal(config, DOMAIN, users, sent, store, lambda jid: False)
    users.view = portal
    speaker = await IrcClient(ircd.host, ircd.port, f"speaker{k}").connect()
    try:
        await speaker.join(CHANNEL)
        join(portal, 0, channel(0))  # the first user: what every user shares is made now
        await until(lambda: joined(users, 0, 1, channel), "the first user")
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        start = time.monotonic()
        for first in range(1, k + 1, BATCH):
            last = min(first + BATCH, k + 1)
            for i in range(first, last):
                join(portal, i, channel(i))
            await until(lambda: joined(users, first, last, channel), f"users {first}-{last - 1}")
        took = time.monotonic() - start
        await asyncio.sleep(1.0)  # the last NAMES, JOINs seen by everyone
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        shared = users.tables.get((NETWORK, CHANNEL))
        sharing = sum(1 for link in users.links.values()
                      if any(c.table is shared for c in link.channels.values())) if shared else 0
        grown = after.compare_to(before, "lineno")
        per = sum(stat.size_diff for stat in grown) / k
        sites = [(f"{s.traceback[0].filename.rpartition('/')[2]}:{s.traceback[0].lineno}",
                  s.size_diff / k) for s in grown[:top]]
        # No loss: lines said in the channel reach every user in it.
        sent.messages.clear()
        for n in range(lines):
            speaker.send(IrcClient.privmsg(CHANNEL, f"line {n}"))
        audience = [f"u{i}@localhost/r" for i in range(k + 1) if channel(i) == CHANNEL]
        try:
            await until(lambda: all(sent.messages[jid] >= lines for jid in audience), "every line", 60)
        except TimeoutError:
            pass
        missing = sum(max(0, lines - sent.messages[jid]) for jid in audience)
        return {"k": k, "channel": "own" if own else "shared", "per_connection_kib": per / 1024,
                "join_s": took, "sharing": sharing, "lines": lines * len(audience), "lost": missing, "sites": sites,
                "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        speaker.close()
        await users.close()
        store.close()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.portal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="200,1000", help="users, comma-separated (default 200,1000)")
    parser.add_argument("--own", action="store_true", help="each user in a channel of their own")
    parser.add_argument("--lines", type=int, default=5, help="lines said to check for loss")
    parser.add_argument("--top", type=int, default=12, help="sites shown")
    args = parser.parse_args(argv)
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="muc-bridge-portal-bench-") as tmp:
        workdir = Path(tmp)
        ircd = BenchInspIRCd(workdir / "inspircd")
        await ircd.start()
        try:
            for k in (int(v) for v in args.k.split(",") if v.strip()):
                row = await measure(ircd, workdir, k, args.own, args.lines, args.top)
                print(f"K={row['k']} ({row['channel']} channels): {row['per_connection_kib']:.1f} KiB per "
                      f"IRC connection (Python heap), joined in {row['join_s']:.1f} s, "
                      f"{row['lost']} of {row['lines']} lines lost, max RSS {row['max_rss_mib']:.0f} MiB, "
                      f"{row['sharing']} connections on the channel's shared member table",
                      flush=True)
                for site, size in row["sites"]:
                    print(f"    {size / 1024:7.2f} KiB  {site}", flush=True)
        finally:
            await ircd.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
