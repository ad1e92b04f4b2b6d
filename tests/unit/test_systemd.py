"""systemd: the unit file (contrib/muc-bridge.service) and the notifications the bridge
sends (`bridge.ops.systemd`). `muc-bridge run` itself is tested under a notify socket in
tests/integration/test_reload.py."""

import asyncio
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bridge.config import parse_config
from bridge.ops import systemd

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "muc-bridge.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_is_notify_with_a_watchdog_a_reload_and_a_sandbox():
    unit = settings()
    assert unit["Type"] == ["notify"] and int(unit["WatchdogSec"][0]) > 0
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["ExecStart"][0].endswith(" run --config /etc/muc-bridge/config.yaml")
    for key in ("DynamicUser", "NoNewPrivileges", "PrivateTmp", "ProtectHome", "RestrictNamespaces"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"] and unit["StateDirectory"] == ["muc-bridge"]
    assert unit["WorkingDirectory"] == ["/var/lib/muc-bridge"]  # relative store and key paths land here
    assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]  # AF_UNIX: $NOTIFY_SOCKET


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed "
                    "(Debian package systemd)")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # verify wants ExecStart to exist: the installed command, wherever pip put it.
    command = shutil.which("muc-bridge") or "/bin/true"
    unit = tmp_path / "muc-bridge.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/muc-bridge", command))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_secret_systemd_hands_over_is_read_from_its_credentials_directory(tmp_path, monkeypatch):
    (tmp_path / "component.secret").write_text("s3cret\n")
    (tmp_path / "component.secret").chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = parse_config("component: {jid: bridge.example.org, secret_file: "
                          "'${CREDENTIALS_DIRECTORY}/component.secret'}\n"
                          "store: {url: 'sqlite://:memory:'}\nnetworks: {}\nlinks: {}\n")
    assert config.component.secret == "s3cret"
    comment = re.search(r"secret_file: (\S+)", UNIT.read_text())
    assert comment and comment[1] == "${CREDENTIALS_DIRECTORY}/component.secret"


@pytest.fixture
def listener(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def test_notify_sends_one_datagram_and_nothing_without_a_socket(listener, monkeypatch):
    assert systemd.notify("READY=1", "STATUS=relaying")
    assert listener.recv(4096) == b"READY=1\nSTATUS=relaying"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not systemd.notify("READY=1")


def test_an_abstract_socket_name_starts_with_an_at(monkeypatch):
    name = f"muc-bridge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert systemd.watchdog_interval() is None


async def test_ready_once_nothing_is_missing_or_after_the_wait_saying_what_is(listener, monkeypatch):
    monkeypatch.setattr(systemd, "TICK", 0.01)
    monkeypatch.setattr(systemd, "READY_WAIT", 0.1)
    monkeypatch.setenv("WATCHDOG_USEC", "40000")  # a WATCHDOG=1 every 20 ms
    missing = ["net not connected"]
    task = asyncio.create_task(systemd.run(lambda: missing))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    heard = []
    try:
        async with asyncio.timeout(5):
            while not any(d.startswith("READY=1") for d in heard):
                heard.append((await loop.sock_recv(listener, 4096)).decode())
            assert heard[-1] == "READY=1\nSTATUS=relaying; not yet: net not connected"
            assert heard[0] == "WATCHDOG=1" and heard.count("WATCHDOG=1") >= 3  # ~0.1 s of them
            missing.clear()
            while heard[-1] != "STATUS=relaying":
                heard.append((await loop.sock_recv(listener, 4096)).decode())
    finally:
        task.cancel()
