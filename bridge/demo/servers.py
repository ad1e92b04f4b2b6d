"""Real chat servers from Debian's packages, run in a directory of ours on free loopback ports.

Used by the integration tests and by `muc-bridge demo`. Each server writes its config, data,
logs and certificates into the `workdir` it is given and listens on 127.0.0.1 only. Ports are
picked when the object is made and kept, so `stop()` then `start()` brings the same server back
on the same ports with the same data (the tests restart Prosody to test reconnects).

    prosody = Prosody(Path(tmp) / "prosody")
    await prosody.start()
    await prosody.register("alice", "secret")
    ...
    await prosody.stop()

Findings that shaped the configs (Debian 12 packages):
- Prosody 0.12 refuses to start as root ("Danger, Will Robinson!", mod_posix) unless
  `run_as_root = true`; prosodyctl would also try to switch to the `prosody` user. We set it,
  so both work as root and as any other user.
- InspIRCd 3 refuses to start as root without `--runasroot`. The Debian build has GnuTLS
  (`ssl_gnutls`), not OpenSSL. With it loaded, InspIRCd 3.15 crashes with SIGSEGV *after* it
  has shut down on SIGTERM (a call into an already unloaded module): harmless, so `stop()`
  accepts that exit, and core dumps are switched off for every server we start.
- InspIRCd completes a client's registration in its once-a-second housekeeping tick, so a
  client waits up to ~1 s for 001. `<performance:netbuffersize>` above 65534 silently falls
  back to 10240, so we leave it alone.
- SASL needs services on InspIRCd (m_sasl only relays to a services server) and ngIRCd has
  none, so neither test server offers SASL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import secrets
import shutil
import signal
import socket
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"

#: Where Debian puts daemons; not on a normal user's PATH.
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class ServerMissing(RuntimeError):
    """A server binary is not installed; the message names the Debian package."""

    def __init__(self, binary: str, package: str) -> None:
        super().__init__(f"{binary} not found: install it with `apt-get install -y {package}`")
        self.binary = binary
        self.package = package


class ServerFailed(RuntimeError):
    """A server did not start (or a command against it failed); the message has its log tail."""


#: Ports this process has handed out, never handed out twice (they are kept for restarts).
_issued: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this process has
    not handed out before."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in _issued:
            _issued.add(port)
            return port


def find_binary(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path=os.pathsep.join(_SBIN))


def make_self_signed_cert(cert_path: Path, key_path: Path, hostname: str = "localhost") -> None:
    """Write a fresh self-signed certificate for `hostname` and 127.0.0.1 (PEM, ECDSA P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)


class ServerProcess:
    """One server process: config written on start, readiness proven by talking to it,
    every wait bounded. Subclasses say how to configure, run and probe it."""

    binary: str
    package: str

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.binary}.out"
        self._process: asyncio.subprocess.Process | None = None

    # -- what subclasses provide -------------------------------------------------------
    def _write_config(self) -> None:
        raise NotImplementedError

    def _args(self, binary: str) -> list[str]:
        raise NotImplementedError

    async def _probe(self) -> None:
        """Return once the server answers; raise OSError (or TimeoutError) while it does not."""
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it answers on its port."""
        if self.running:
            return
        binary = find_binary(self.binary)
        if binary is None:
            raise ServerMissing(self.binary, self.package)
        self._write_config()
        with open(self.log_path, "ab") as out:
            # `ulimit -c 0`: no core files from a server that crashes on its way out.
            self._process = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", 'ulimit -c 0; exec "$0" "$@"', binary, *self._args(binary),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                # Own session: a terminal's Ctrl-C reaches us, and we stop the server in order.
                cwd=self.workdir, start_new_session=True)
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise
        log.debug("server_started", server=self.binary, pid=self._process.pid)

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.running:
                raise ServerFailed(f"{self.binary} exited with code {self._process.returncode} "
                                   f"while starting:\n{self.log_tail()}")
            try:
                async with asyncio.timeout(max(0.1, min(2.0, deadline - loop.time()))):
                    await self._probe()
                return
            except (OSError, TimeoutError):
                if loop.time() >= deadline:
                    raise ServerFailed(f"{self.binary} did not answer within {timeout} s:\n"
                                       f"{self.log_tail()}") from None
                await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout` seconds. (Prosody with
        clients still connected takes about a second: it waits for their streams to close.)"""
        await self._end(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash (no stream closes, no goodbyes)."""
        await self._end(signal.SIGKILL, 5.0)

    async def _end(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        for attempt in (sig, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(attempt)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
                break
            except TimeoutError:
                log.warning("server_stop_timeout", server=self.binary, signal=attempt.name)
        log.debug("server_stopped", server=self.binary, code=process.returncode)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's own output and log files, for error messages."""
        text = []
        for path in (self.log_path, *self._log_files()):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(text)

    def _log_files(self) -> tuple[Path, ...]:
        return ()


async def _exchange(port: int, send: bytes, expect: bytes, timeout: float = 2.0) -> bytes:
    """Connect, send `send`, read until `expect` appears; what a readiness probe needs."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        async with asyncio.timeout(timeout):
            writer.write(send)
            data = b""
            while expect not in data:
                chunk = await reader.read(4096)
                if not chunk:
                    raise ConnectionResetError(f"port {port} closed before answering")
                data += chunk
            return data
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(2):
                await writer.wait_closed()


def _lua(value: Any) -> str:
    """A Python value as a Lua literal (for Prosody's config)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(_lua(v) for v in value) + " }"
    if isinstance(value, dict):
        return "{ " + "; ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no Lua literal for {value!r}")


class Prosody(ServerProcess):
    """Prosody 0.12: VirtualHost `localhost` (plain c2s on loopback, no TLS needed; with
    `tls=True` STARTTLS is offered too, self-signed), MUC `muc.localhost` (rooms made on first
    join, unlocked, persistent, subject changeable by any occupant) and the XEP-0114
    component `bridge.localhost`."""

    binary = "prosody"
    package = "prosody"
    domain = "localhost"
    muc_domain = "muc.localhost"
    component_jid = "bridge.localhost"

    def __init__(self, workdir: str | os.PathLike[str], *, muc_mam: bool = False,
                 muc_options: dict[str, Any] | None = None, tls: bool = False,
                 log_level: str = "info", settings: dict[str, Any] | None = None) -> None:
        super().__init__(workdir)
        #: More global options, e.g. {"gc": {"mode": "generational"}}.
        self.settings = settings or {}
        self.tls = tls
        self.host = HOST
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.component_secret = secrets.token_hex(16)
        self.muc_mam = muc_mam
        self.muc_options = {
            "muc_room_locking": False,
            "muc_room_default_persistent": True,
            "muc_room_default_change_subject": True,
            **(muc_options or {}),
        }
        self.log_level = log_level
        self.config_path = self.workdir / "prosody.cfg.lua"

    def _write_config(self) -> None:
        (self.workdir / "data").mkdir(exist_ok=True)
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        self.cert_path = certs / f"{self.domain}.crt"
        key_path = certs / f"{self.domain}.key"
        if self.tls and not self.cert_path.exists():
            make_self_signed_cert(self.cert_path, key_path, self.domain)
        modules = ["roster", "saslauth", "disco", "ping", "time", "version"]
        host_tls = []
        if self.tls:
            modules.append("tls")
            host_tls = [f"    ssl = {{ certificate = {_lua(str(self.cert_path))}, "
                        f"key = {_lua(str(key_path))} }}"]
        muc_modules = ["muc_mam"] if self.muc_mam else []
        lines = [
            "-- written by bridge.demo.servers; rewritten on every start",
            "run_as_root = true  -- mod_posix refuses root without it; harmless otherwise",
            "daemonize = false",
            f"pidfile = {_lua(str(self.workdir / 'prosody.pid'))}",
            f"data_path = {_lua(str(self.workdir / 'data'))}",
            f"certificates = {_lua(str(self.workdir / 'certs'))}",
            f'log = {{ {{ levels = {{ min = {_lua(self.log_level)} }}, to = "file", '
            f"filename = {_lua(str(self.workdir / 'prosody.log'))} }} }}",
            f"modules_enabled = {_lua(modules)}",
            *(f"{key} = {_lua(value)}" for key, value in self.settings.items()),
            'modules_disabled = { "s2s", "s2s_auth_certs" }',
            f"interfaces = {_lua([HOST])}",
            f"c2s_ports = {_lua([self.c2s_port])}",
            "c2s_direct_tls_ports = { }",
            "legacy_ssl_ports = { }",
            "s2s_ports = { }",
            f"component_ports = {_lua([self.component_port])}",
            f"component_interfaces = {_lua([HOST])}",
            "c2s_require_encryption = false",
            "allow_unencrypted_plain_auth = true",
            'authentication = "internal_hashed"',
            'storage = "internal"',
            f"VirtualHost {_lua(self.domain)}",
            *host_tls,
            f"Component {_lua(self.muc_domain)} \"muc\"",
            f"    modules_enabled = {_lua(muc_modules)}",
            *(f"    {key} = {_lua(value)}" for key, value in self.muc_options.items()),
            f"Component {_lua(self.component_jid)}",
            f"    component_secret = {_lua(self.component_secret)}",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _args(self, binary: str) -> list[str]:
        return ["-F", "--config", str(self.config_path)]

    async def _probe(self) -> None:
        # Prosody loads every host before its event loop runs, so stream features on c2s
        # mean the MUC and the component are ready too.
        header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  f"xmlns:stream='http://etherx.jabber.org/streams' to='{self.domain}' "
                  "version='1.0'>").encode()
        await _exchange(self.c2s_port, header, b"features")
        _, writer = await asyncio.open_connection(HOST, self.component_port)
        writer.close()

    def _log_files(self) -> tuple[Path, ...]:
        return (self.workdir / "prosody.log",)

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def room_jid(self, room: str) -> str:
        return f"{room}@{self.muc_domain}"

    async def register(self, user: str, password: str, timeout: float = 10.0) -> str:
        """Create (or reset) the account `user@localhost`; works whether or not Prosody runs.
        Returns the bare JID."""
        binary = find_binary("prosodyctl")
        if binary is None:
            raise ServerMissing("prosodyctl", self.package)
        self._write_config()
        proc = await asyncio.create_subprocess_exec(
            binary, "--config", str(self.config_path), "register", user, self.domain, password,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.workdir)
        try:
            async with asyncio.timeout(timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ServerFailed(f"prosodyctl register {user} took more than {timeout} s") from None
        if proc.returncode != 0:
            raise ServerFailed(f"prosodyctl register {user} failed ({proc.returncode}): "
                               f"{output.decode(errors='replace').strip()}")
        return self.jid(user)


async def _irc_probe(port: int) -> None:
    """An IRC server answers an unregistered client's CAP LS (or complains about it)."""
    await _exchange(port, b"CAP LS 302\r\n", b"\r\n")


class InspIRCd(ServerProcess):
    """InspIRCd 3 with a plain and a TLS port (self-signed certificate made here), IRCv3
    capabilities, an oper account, an optional server password, and flood limits lifted
    unless `flood_limits=True` (then InspIRCd's defaults: threshold 10, 1 command/s, fakelag);
    `webirc_password=` lets gateways on loopback say where their users come from (WEBIRC);
    `ident=True` asks each client's identd (RFC 1413, port 113 of its address) who it is."""

    binary = "inspircd"
    package = "inspircd"
    server_name = "irc.localhost"
    network = "TestNet"
    oper_name = "oper"
    #: IRCv3 and friends the Debian build has (m_sasl is left out: it needs services).
    modules = ("ssl_gnutls", "cap", "ircv3", "ircv3_accounttag", "ircv3_batch",
               "ircv3_capnotify", "ircv3_chghost", "ircv3_ctctags", "ircv3_echomessage",
               "ircv3_invitenotify", "ircv3_msgid", "ircv3_servertime", "namesx", "uhnames",
               "monitor", "setname")

    def __init__(self, workdir: str | os.PathLike[str], *, password: str | None = None,
                 flood_limits: bool = False, webirc_password: str | None = None,
                 ident: bool = False) -> None:
        super().__init__(workdir)
        self.host = HOST
        self.ident = ident
        self.port = free_port()
        self.tls_port = free_port()
        self.password = password
        self.webirc_password = webirc_password
        self.flood_limits = flood_limits
        self.oper_password = secrets.token_hex(8)
        self.cert_path = self.workdir / "cert.pem"
        self.key_path = self.workdir / "key.pem"
        self.config_path = self.workdir / "inspircd.conf"

    def _write_config(self) -> None:
        if not self.cert_path.exists():
            make_self_signed_cert(self.cert_path, self.key_path, self.server_name)
        motd = self.workdir / "motd.txt"
        motd.write_text("muc-bridge test server\n")
        flood = ('threshold="10" commandrate="1000" fakelag="yes" recvq="10K" softsendq="10240"'
                 if self.flood_limits else
                 'threshold="1000000" commandrate="1000000" fakelag="no" recvq="1M" '
                 'softsendq="1M"')
        password = f' password="{self.password}"' if self.password else ""
        webirc = (f'<module name="cgiirc">\n<cgihost type="webirc" password="{self.webirc_password}" '
                  f'mask="*@{HOST}">' if self.webirc_password else "")
        w = self.workdir
        self.config_path.write_text(f"""\
# written by bridge.demo.servers; rewritten on every start
<server name="{self.server_name}" description="muc-bridge test server" network="{self.network}">
<admin name="test" nick="test" email="test@localhost">
<pid file="{w / 'inspircd.pid'}">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{w / 'ircd.log'}">
<files motd="{motd}">
{''.join(f'<module name="{m}">{chr(10)}' for m in self.modules)}\
<sslprofile name="tests" provider="gnutls" certfile="{self.cert_path}" keyfile="{self.key_path}"
            dhfile="" hash="sha256" requestclientcert="no">
<bind address="{HOST}" port="{self.port}" type="clients">
<bind address="{HOST}" port="{self.tls_port}" type="clients" sslprofile="tests">
<connect name="main" allow="*"{password} timeout="20" pingfreq="120" hardsendq="1M"
         {flood} localmax="1000" globalmax="1000" maxconnwarn="no"
         resolvehostnames="no" useident="{'yes' if self.ident else 'no'}" limit="5000" maxchans="100">
{'<module name="ident">' + chr(10) + '<ident timeout="3">' if self.ident else ''}
<class name="all" commands="*" privs="*" usermodes="*" chanmodes="*" snomasks="*">
<type name="Admin" classes="all">
<oper name="{self.oper_name}" password="{self.oper_password}" host="*@*" type="Admin">
<dns server="{HOST}" timeout="1">
<options defaultmodes="not">  # "o": whoever makes a channel is its op
{webirc}
<security runasuser="" runasgroup="">
""")

    def _args(self, binary: str) -> list[str]:
        args = ["--nofork", f"--config={self.config_path}"]
        if os.geteuid() == 0:
            args.append("--runasroot")  # InspIRCd refuses root otherwise
        return args

    async def _probe(self) -> None:
        await _irc_probe(self.port)

    def _log_files(self) -> tuple[Path, ...]:
        return (self.workdir / "ircd.log",)


class NgIRCd(ServerProcess):
    """ngIRCd 26, a classic RFC 2812 server: one plain port, no IRCv3 beyond the basics,
    flood penalties off unless `flood_limits=True`."""

    binary = "ngircd"
    package = "ngircd"
    server_name = "irc.ngircd.localhost"

    def __init__(self, workdir: str | os.PathLike[str], *, password: str | None = None,
                 flood_limits: bool = False) -> None:
        super().__init__(workdir)
        self.host = HOST
        self.port = free_port()
        self.password = password
        self.flood_limits = flood_limits
        self.config_path = self.workdir / "ngircd.conf"

    def _write_config(self) -> None:
        password = f"\tPassword = {self.password}\n" if self.password else ""
        self.config_path.write_text(f"""\
# written by bridge.demo.servers; rewritten on every start
[Global]
\tName = {self.server_name}
\tInfo = muc-bridge test server
\tAdminInfo1 = muc-bridge tests
\tAdminInfo2 = loopback only
\tAdminEMail = test@localhost
\tListen = {HOST}
\tPorts = {self.port}
\tPidFile = {self.workdir / 'ngircd.pid'}
\tMotdPhrase = "muc-bridge test server"
{password}\
[Limits]
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxNickLength = 30
\tMaxPenaltyTime = {-1 if self.flood_limits else 0}
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
""")

    def _args(self, binary: str) -> list[str]:
        return ["--nodaemon", "--config", str(self.config_path)]

    async def _probe(self) -> None:
        await _irc_probe(self.port)
