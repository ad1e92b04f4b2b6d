"""Reloading the config without a restart, against real Prosody and InspIRCd: a link added
starts relaying, a removed one stops, the one left alone keeps relaying on the same
connections; an invalid config changes nothing and says why. In-process through the entry
point SIGHUP calls (`Reloader.reload`), as the admins' `reload` command, and for real:
SIGHUP to a `muc-bridge run` process, which also tells systemd (`$NOTIFY_SOCKET`) it is
ready, alive, reloading and stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.config import load_config
from tests.integration.bridge_harness import bridge_ready, config_text, irc_network
from tests.integration.test_operations import command

ROOT = Path(__file__).resolve().parents[2]
KEEP, GONE, NEW = "keep@muc.localhost", "gone@muc.localhost", "new@muc.localhost"


def links(*names: str) -> str:
    rooms = {"keep": (KEEP, "#keep"), "gone": (GONE, "#gone"), "new": (NEW, "#new")}
    return "".join(f"  {name}:\n    - xmpp: {rooms[name][0]}\n    - irc: net/{rooms[name][1]}\n"
                   for name in names)


def write(path: Path, prosody, inspircd, tmp_path, *names: str, extra: str = "") -> None:
    path.write_text(config_text(prosody, tmp_path, irc_network("net", inspircd), links(*names))
                    + "admins: [alice@localhost]\n" + extra)


@pytest.fixture
async def reloading(prosody, inspircd, xmpp_user, irc_user, tmp_path):
    """The bridge run from a file with links keep and gone; alice in all three MUC rooms,
    bob in all three channels, both links relaying."""
    path = tmp_path / "config.yaml"
    write(path, prosody, inspircd, tmp_path, "keep", "gone")
    bob = await irc_user(inspircd, "bob")
    for channel in ("#keep", "#gone", "#new"):
        await bob.join(channel)
    bridge = Bridge(load_config(path), str(path))
    task = asyncio.create_task(bridge.run())
    try:
        alice = await xmpp_user("alice")
        for room in (KEEP, GONE, NEW):
            await alice.join(room, "alice")
        for room, channel in ((KEEP, "#keep"), (GONE, "#gone")):
            await relays(alice, bob, room, channel, "before")
        yield bridge, path, alice, bob
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def relays(alice, bob, room: str, channel: str, tag: str, timeout: float = 20.0) -> None:
    """Both ways between `room` and `channel`."""
    alice.say(room, f"{tag} to {channel}")
    await bob.wait_for_privmsg(channel, f"<alice> {tag} to {channel}", timeout=timeout)
    bob.privmsg(channel, f"{tag} to {room}")
    await alice.wait_for_message(room, f"{tag} to {room}", nick="bob", timeout=timeout)


def connections(bridge: Bridge):
    """The IRC connection (and its local port) and the component's XMPP stream."""
    irc = bridge.router.adapters["net"]
    return irc, irc.client.conn, irc.client.conn.transport.get_extra_info("sockname"), bridge.xmpp.component.stream


async def test_a_link_added_relays_a_removed_one_stops_the_third_keeps_its_connections(
        reloading, prosody, inspircd, tmp_path):
    bridge, path, alice, bob = reloading
    before = connections(bridge)
    mark, seen = bob.lines.mark(), alice.presences.mark()
    write(path, prosody, inspircd, tmp_path, "keep", "new")
    outcome = await bridge.reloader.reload()
    assert not outcome.refused and outcome.kept == []
    assert sorted(outcome.changes) == sorted(["net/#new: joining", f"xmpp/{NEW}: joining",
                                              "net/#gone: leaving", f"xmpp/{GONE}: leaving"])
    await bridge_ready(alice, [bob], "#new", room=NEW, after=(seen, mark))
    await relays(alice, bob, NEW, "#new", "added")
    # The removed link: the relay left #gone and the bot its room; nothing crosses any more.
    await bob.lines.wait_for(lambda l: l.command == "PART" and l.nick == "relay" and l.target == "#gone",
                             after=mark)
    await alice.presences.wait_for(lambda p: p.room == GONE and p.nick == "bridge" and not p.available,
                                   after=seen)
    gone_mark, irc_mark = alice.messages.mark(), bob.lines.mark()
    bob.privmsg("#gone", "not relayed")
    alice.say(GONE, "not relayed either")
    await relays(alice, bob, KEEP, "#keep", "after")  # the third: still relaying...
    await asyncio.sleep(0.5)
    assert not alice.messages.matching(lambda m: m.room == GONE and m.nick != "alice" and m.body is not None,
                                       after=gone_mark)
    assert not bob.lines.matching(lambda l: l.command == "PRIVMSG" and "relayed" in l.text, after=irc_mark)
    # ...on the same connections: the relay never quit nor joined #keep again.
    assert connections(bridge) == before
    assert not bob.lines.matching(lambda l: l.nick == "relay" and l.command == "QUIT", after=mark)
    assert not bob.lines.matching(lambda l: l.nick == "relay" and l.command == "JOIN" and l.target == "#keep",
                                  after=mark)
    assert bridge.watch.states["net"].reconnects == 0 and bridge.watch.states["xmpp"].reconnects == 0


async def test_an_invalid_config_is_refused_with_its_problems_and_nothing_changes(
        reloading, prosody, inspircd, tmp_path):
    bridge, path, alice, bob = reloading
    before, config = connections(bridge), bridge.config
    write(path, prosody, inspircd, tmp_path, "keep", "new")
    path.write_text(path.read_text().replace("irc: net/#new", "irc: nowhere/#new")
                    + "delivery: {max_age: -1}\n")
    outcome = await bridge.reloader.reload()
    assert outcome.refused and outcome.changes == []
    assert any("links.new" in p and "unknown network 'nowhere'" in p for p in outcome.problems)
    assert any("delivery.max_age" in p for p in outcome.problems)
    assert bridge.config is config and connections(bridge) == before
    await relays(alice, bob, GONE, "#gone", "still")
    await relays(alice, bob, KEEP, "#keep", "still")


async def test_an_admin_reloads_and_hears_what_changed_and_what_needs_a_restart(
        reloading, prosody, inspircd, tmp_path):
    bridge, path, alice, bob = reloading
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        alice.client.register_plugin(plugin)
    write(path, prosody, inspircd, tmp_path, "keep", "gone", "new")
    path.write_text(path.read_text().replace("component:\n", "component:\n  bot_nick: other\n"))
    seen, mark = alice.presences.mark(), bob.lines.mark()
    answer, _ = await command(alice, "reload")
    assert answer["command"]["status"] == "completed"
    assert sorted(answer["command"]["notes"]) == [
        ("info", "net/#new: joining"), ("info", f"xmpp/{NEW}: joining"),
        ("warn", "component.bot_nick: cannot change while the bridge runs; restart to apply it "
                 "(the running value stays)")]
    await bridge_ready(alice, [bob], "#new", room=NEW, after=(seen, mark))
    await relays(alice, bob, NEW, "#new", "added")
    path.write_text("links: [")
    answer, _ = await command(alice, "reload")
    kind, text = answer["command"]["notes"][0]
    assert kind == "error" and text.startswith(f"{path}:line ")


# -- for real: a `muc-bridge run` process, SIGHUP, and systemd's notifications --------------


class NotifySocket:
    """What a process tells systemd, as systemd's socket would hear it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.heard: list[str] = []

    async def wait_for(self, field: str, timeout: float = 30.0) -> list[str]:
        """Datagrams until one holding the line `field`; all heard so far."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(self.sock, 4096)
                self.heard.append(data.decode())
                if field in data.decode().split("\n"):
                    return self.heard


async def test_sighup_to_muc_bridge_run_reloads_and_systemd_hears_ready_watchdog_reloading_stopping(
        prosody, inspircd, xmpp_user, irc_user, tmp_path):
    path = tmp_path / "config.yaml"
    write(path, prosody, inspircd, tmp_path, "keep")
    bob = await irc_user(inspircd, "bob")
    for channel in ("#keep", "#new"):
        await bob.join(channel)
    systemd = NotifySocket(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "--config", str(path), cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=open(tmp_path / "bridge.log", "wb"))
    try:
        alice = await xmpp_user("alice")
        for room in (KEEP, NEW):
            await alice.join(room, "alice")
        heard = await systemd.wait_for("READY=1")
        assert any(line == "STATUS=relaying" for d in heard for line in d.split("\n"))
        await relays(alice, bob, KEEP, "#keep", "before")
        first = len(systemd.heard)
        await systemd.wait_for("WATCHDOG=1", timeout=5)  # every 0.5 s: half of WATCHDOG_USEC
        write(path, prosody, inspircd, tmp_path, "keep", "new")
        seen, mark = alice.presences.mark(), bob.lines.mark()
        proc.send_signal(signal.SIGHUP)
        await systemd.wait_for("RELOADING=1")
        assert any(line.startswith("MONOTONIC_USEC=") for line in systemd.heard[-1].split("\n"))
        await systemd.wait_for("READY=1")
        await bridge_ready(alice, [bob], "#new", room=NEW, after=(seen, mark))
        await relays(alice, bob, NEW, "#new", "added")
        await relays(alice, bob, KEEP, "#keep", "after")
        assert len(systemd.heard) > first
        proc.send_signal(signal.SIGTERM)
        await systemd.wait_for("STOPPING=1")
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        systemd.sock.close()
    log = (tmp_path / "bridge.log").read_text()
    assert '"reload_change"' in log and "net/#new: joining" in log


async def test_a_network_changed_reconnects_one_added_connects_one_removed_quits(
        reloading, prosody, inspircd, tmp_path):
    bridge, path, alice, bob = reloading
    xmpp_stream = bridge.xmpp.component.stream
    seen, mark = alice.presences.mark(), bob.lines.mark()
    other = irc_network("other", inspircd, nick="relay3")
    path.write_text(config_text(prosody, tmp_path, irc_network("net", inspircd, nick="relay2") + other,
                                links("keep") + f"  new:\n    - xmpp: {NEW}\n    - irc: other/#new\n")
                    + "admins: [alice@localhost]\n")
    outcome = await bridge.reloader.reload()
    assert outcome.changes == ["network other: added, connecting", "network net: settings changed, reconnecting",
                               f"xmpp/{NEW}: joining", f"xmpp/{GONE}: leaving"]
    await bob.lines.wait_for(lambda l: l.command == "QUIT" and l.nick == "relay", after=mark)
    await bridge_ready(alice, [bob], "#keep", room=KEEP, relay="relay2", after=(0, mark))
    await bridge_ready(alice, [bob], "#new", room=NEW, relay="relay3", after=(seen, mark))
    await relays(alice, bob, KEEP, "#keep", "renamed")
    await relays(alice, bob, NEW, "#new", "added")
    assert bridge.xmpp.component.stream is xmpp_stream  # the XMPP side kept its stream
    mark = bob.lines.mark()
    write(path, prosody, inspircd, tmp_path, "keep")
    path.write_text(path.read_text().replace("nick: relay,", "nick: relay2,"))
    outcome = await bridge.reloader.reload()
    assert outcome.changes == ["network other: removed, disconnecting", f"xmpp/{NEW}: leaving"]
    await bob.lines.wait_for(lambda l: l.command == "QUIT" and l.nick == "relay3", after=mark)
    assert "other" not in bridge.router.adapters and "other" not in bridge.watch.states
    await relays(alice, bob, KEEP, "#keep", "still")
    assert not bob.lines.matching(lambda l: l.nick == "relay2" and l.command in ("QUIT", "JOIN"), after=mark)
