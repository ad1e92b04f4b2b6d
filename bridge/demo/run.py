"""`muc-bridge demo`: a local Prosody and InspIRCd, a test account, a linked room, the bridge.

Everything lives in a temporary directory on free loopback ports and is gone after Ctrl-C,
closing the terminal (SIGHUP) or SIGTERM: each cancels the demo, which stops the servers (they
run in sessions of their own, out of the terminal's reach) and removes the directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

from bridge.demo.servers import InspIRCd, Prosody, ServerProcess, find_binary

INSTALL = "apt-get install -y prosody inspircd"
ROOM = "demo"
CHANNEL = "#demo"
NETWORK = "demo"
ACCOUNT = "alice"


async def run_demo(install: bool = False) -> int:
    """Run the demo until cancelled (Ctrl-C, SIGHUP, SIGTERM); 1 if the servers are missing."""
    if not await _servers_installed(install):
        return 1
    _stop_on_signals()
    from bridge.log import setup_logging
    setup_logging("info")
    with tempfile.TemporaryDirectory(prefix="muc-bridge-demo-") as tmp:
        workdir = Path(tmp)
        prosody = Prosody(workdir / "prosody", tls=True)
        ircd = InspIRCd(workdir / "inspircd")
        try:
            await prosody.start()
            await ircd.start()
            password = secrets.token_urlsafe(9)
            await prosody.register(ACCOUNT, password)
            config_path = _write_config(workdir, prosody, ircd)
            print(_how_to_connect(prosody, ircd, password, workdir), flush=True)
            await _run_bridge(config_path)
        finally:
            await _stop(ircd, prosody)
    return 0


def _stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP cancel this task, so that its `finally` clean-up runs."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminal = [stream for stream in (sys.stdout, sys.stderr) if stream.isatty()]
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    loop.add_signal_handler(signal.SIGHUP, _hung_up, task, terminal)


def _hung_up(task: asyncio.Task, terminal: list) -> None:
    """The terminal is gone: what the clean-up logs goes nowhere instead of failing (a write
    to a hung-up terminal is an error), then clean up as for Ctrl-C."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in terminal:
        os.dup2(devnull, stream.fileno())
    os.close(devnull)
    task.cancel()


async def _servers_installed(install: bool) -> bool:
    missing = [cls.binary for cls in (Prosody, InspIRCd) if find_binary(cls.binary) is None]
    if not missing:
        return True
    verb = "is" if len(missing) == 1 else "are"
    print(f"muc-bridge demo needs {' and '.join(missing)}, which {verb} not installed. "
          f"On Debian:\n\n    {INSTALL}\n")
    if not install:
        print("(or run `muc-bridge demo --install` as root to have it done for you)")
        return False
    if os.geteuid() != 0:
        print("--install needs root: run the command above with sudo, then `muc-bridge demo`.")
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ("apt-get update", INSTALL):
        process = await asyncio.create_subprocess_exec(*command.split(), env=env)
        try:
            async with asyncio.timeout(900):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            code = "timeout"
        if code != 0:
            print(f"`{command}` failed ({code})")
            return False
    return all(find_binary(cls.binary) for cls in (Prosody, InspIRCd))


def _write_config(workdir: Path, prosody: Prosody, ircd: InspIRCd) -> Path:
    """A bridge config in the format of config.example.yaml, pointing at the local servers."""
    secret = workdir / "component.secret"
    secret.write_text(prosody.component_secret + "\n")
    secret.chmod(0o600)
    q = json.dumps  # a JSON string is a valid YAML string
    path = workdir / "bridge.yaml"
    path.write_text(f"""\
# muc-bridge demo config (written by `muc-bridge demo`; see config.example.yaml)
component:
  jid: {prosody.component_jid}
  server: {prosody.host}
  port: {prosody.component_port}
  secret_file: {q(str(secret))}
  bot_nick: bridge

store:
  url: {q("sqlite://" + str(workdir / "bridge.db"))}

log:
  level: info

networks:
  {NETWORK}:
    type: irc
    host: {ircd.host}
    port: {ircd.port}
    tls: false                   # plain IRC, loopback only
    nick: xbridge
    flood: {{burst: 20, interval: 0.2}}  # our own server: relaxed flood control

links:
  {ROOM}:
    - xmpp: {prosody.room_jid(ROOM)}
    - irc: {NETWORK}/{CHANNEL}
""")
    return path


def _how_to_connect(prosody: Prosody, ircd: InspIRCd, password: str, workdir: Path) -> str:
    jid = prosody.jid(ACCOUNT)
    return f"""
muc-bridge demo: Prosody and InspIRCd are running on 127.0.0.1, linked by the bridge.
Messages in the XMPP room and the IRC channel reach each other. Ctrl-C (or closing this
terminal) stops everything.

XMPP (any client; set the server address by hand, the port is not the usual 5222)
  account   {jid}
  password  {password}
  server    {prosody.host}  port {prosody.c2s_port}
            (STARTTLS with a self-signed certificate, or plain: it is loopback)
  room      {prosody.room_jid(ROOM)}
  e.g.      profanity, then: /connect {jid} server {prosody.host} port {prosody.c2s_port} tls allow
                             /join {prosody.room_jid(ROOM)}

IRC (any client, any nick)
  server    {ircd.host}  port {ircd.port}  (plain)
            or port {ircd.tls_port} with TLS (self-signed: {ircd.cert_path})
  channel   {CHANNEL}
  e.g.      irssi -c {ircd.host} -p {ircd.port} -n bob, then: /join {CHANNEL}

Config, logs and data: {workdir} (removed when the demo stops)
"""


async def _run_bridge(config_path: Path) -> None:
    from bridge.app import Bridge
    from bridge.config import load_config
    from bridge.log import setup_logging

    config = load_config(config_path)
    setup_logging(config.log.level, config.log.format)
    await Bridge(config).run()


async def _stop(*servers: ServerProcess) -> None:
    """Stop the servers even if this task is being cancelled (Ctrl-C)."""
    stopping = asyncio.ensure_future(asyncio.gather(*(server.stop() for server in servers)))
    while not stopping.done():
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            continue
    stopping.result()
