"""A real ejabberd for tests: Debian's 23.01, in the foreground, config and data in a temp dir.

One server serves a whole test session (`erl` takes a second or two to start): the tests
give it fresh room names and register their users again (a second `register` of a name
resets its password). It listens on 127.0.0.1 only, on free ports:
- `c2s_port`: plain c2s (no STARTTLS offered), SCRAM;
- `component_port`: XEP-0114 for `bridge.localhost`, plain TCP;
- `component_tls_port`: the same component over TLS from the first byte (`tls: true` on an
  `ejabberd_service` listener; not STARTTLS), with a certificate for `localhost` signed by a
  CA made here (`ca_path`, PEM), so a client that trusts that CA verifies it;
- `api_port`: mod_http_api, which `register` uses (from loopback only).

MUC `muc.localhost` lets local users and the component's domain create rooms: by default
(`room_creators`) the `muc_create` rule below is the one the README gives.

Findings (ejabberd 23.01, Debian 12):
- No Erlang distribution: `erl` without `-sname` runs as `nonode@nohost` and needs no epmd
  and no cookie; users are registered over HTTP (mod_http_api) instead of `ejabberdctl`,
  which would need both (and, as root, switches to the `ejabberd` user).
- The Debian package's own service is never used: its config, spool and node name are not
  ours, and its ports are not the ones picked here.
- An `ejabberd_service` listener with `tls: true` takes no certificate from the global
  `certfiles`: without its own `certfile` it accepts the TCP connection and closes it at
  once, and logs nothing at level info.
- Run as `nobody` when the tests run as root, like the PostgreSQL fixture.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bridge.demo.servers import ServerFailed, ServerMissing, find_binary, free_port

HOST = "127.0.0.1"
#: Where Debian's ejabberd keeps its Erlang applications (`ERL_LIBS` in ejabberdctl).
ERL_LIBS = "/usr/lib/x86_64-linux-gnu"
#: How long the server may take to answer after `erl` starts.
READY_WAIT = 60.0


def make_ca_and_cert(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A CA and a certificate for `hostname` (and 127.0.0.1) signed by it. Returns
    (the CA's certificate, the server's certificate chain + key in one PEM, as ejabberd's
    `certfiles` take it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(not_valid_before=now - datetime.timedelta(days=1),
                 not_valid_after=now + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "muc-bridge test CA")])
    ca = (x509.CertificateBuilder(**valid)
          .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder(**valid)
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(HOST))]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    chain_path = directory / f"{hostname}.pem"
    chain_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem) + key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    chain_path.chmod(0o600)
    return ca_path, chain_path


class Ejabberd:
    """One ejabberd process; `start`, `register` users, `stop` (and `remove` its files)."""

    domain = "localhost"
    muc_domain = "muc.localhost"
    component_jid = "bridge.localhost"

    def __init__(self, room_creators: tuple[str, ...] = ("local", "bridge")) -> None:
        """`room_creators`: the ACLs allowed to create MUC rooms (`local`: this server's
        users; `bridge`: the component's domain); Debian's default config has `local` only."""
        self.room_creators = room_creators
        self.host = HOST
        self.c2s_port, self.component_port = free_port(), free_port()
        self.component_tls_port, self.api_port = free_port(), free_port()
        self.component_secret = secrets.token_hex(16)
        self.dir = Path(tempfile.mkdtemp(prefix="muc-bridge-ejabberd-"))
        self.config_path = self.dir / "ejabberd.yml"
        self.log_path = self.dir / "ejabberd.log"
        self.out_path = self.dir / "erl.out"
        self.ca_path, self.cert_path = make_ca_and_cert(self.dir, self.domain)
        self.proc: subprocess.Popen | None = None
        self._ids: dict = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            self._ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            for path in (self.dir, self.cert_path):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o700)

    def _write_config(self) -> None:
        creators = "\n".join(f"    - allow: {acl}" for acl in self.room_creators)
        self.config_path.write_text(f"""\
# written by tests/servers/ejabberd.py
hosts: [{self.domain}]
loglevel: info
log_rotate_count: 0
hide_sensitive_log_data: true
certfiles: ["{self.cert_path}"]
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
  bridge:
    server: {self.component_jid}
access_rules:
  muc_create:
{creators}
listen:
  - port: {self.c2s_port}
    ip: "{HOST}"
    module: ejabberd_c2s
    starttls: false
  - port: {self.component_port}
    ip: "{HOST}"
    module: ejabberd_service
    hosts:
      "{self.component_jid}":
        password: "{self.component_secret}"
  - port: {self.component_tls_port}
    ip: "{HOST}"
    module: ejabberd_service
    tls: true
    certfile: "{self.cert_path}"
    hosts:
      "{self.component_jid}":
        password: "{self.component_secret}"
  - port: {self.api_port}
    ip: "{HOST}"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
api_permissions:
  "tests register users from loopback":
    from: [mod_http_api]
    who:
      ip: 127.0.0.1/8
    what: [status, register, change_password]
modules:
  mod_admin_extra: {{}}
  mod_disco: {{}}
  mod_http_api: {{}}
  mod_ping: {{}}
  mod_muc:
    host: {self.muc_domain}
    access_create: muc_create
    access_persistent: muc_create
""")

    def start(self) -> None:
        erl = find_binary("erl")
        if erl is None or not any(Path(ERL_LIBS).glob("ejabberd-*")):
            raise ServerMissing("ejabberd", "ejabberd")
        self._write_config()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir),
            "ERL_LIBS": ERL_LIBS,
            "EJABBERD_CONFIG_PATH": str(self.config_path),
            "EJABBERD_LOG_PATH": str(self.log_path),
            "ERL_CRASH_DUMP_BYTES": "0",
        }
        with open(self.out_path, "ab") as out:
            # No -sname/-name: no distribution, so no epmd and no cookie (see the docstring).
            self.proc = subprocess.Popen(
                [erl, "-noinput", "-mnesia", "dir", f'"{self.dir / "spool"}"', "-s", "ejabberd"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                env=env, start_new_session=True, **self._ids)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WAIT
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"ejabberd exited with code {self.proc.returncode} while "
                                   f"starting:\n{self.log_tail()}")
            try:
                self.api("status")
                for port in (self.c2s_port, self.component_port, self.component_tls_port):
                    socket.create_connection((HOST, port), timeout=1).close()
                return
            except (OSError, ServerFailed):
                if time.monotonic() > deadline:
                    raise ServerFailed(f"ejabberd did not answer within {READY_WAIT} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Erlang's orderly `init:stop()`), then SIGKILL after `timeout` seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        text = []
        for path in (self.out_path, self.log_path, self.dir / "error.log"):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(text)

    # -- what tests use ------------------------------------------------------------------

    def api(self, command: str, **args: str) -> object:
        """Call an ejabberd API command (mod_http_api) and return its decoded answer."""
        request = urllib.request.Request(
            f"http://{HOST}:{self.api_port}/api/{command}", data=json.dumps(args).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ServerFailed(f"ejabberd API {command} failed ({exc.code}): "
                               f"{exc.read().decode(errors='replace')}") from None

    async def register(self, user: str, password: str) -> str:
        """Create the account `user@localhost`, or give an existing one this password."""
        def call() -> None:
            try:
                self.api("register", user=user, host=self.domain, password=password)
            except ServerFailed as exc:
                if "already registered" not in str(exc):
                    raise
                self.api("change_password", user=user, host=self.domain, newpass=password)
        await asyncio.to_thread(call)
        return self.jid(user)

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def room_jid(self, room: str) -> str:
        return f"{room}@{self.muc_domain}"
