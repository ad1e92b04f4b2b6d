"""check-config and run agree: a config check-config passes starts, one it refuses does not.

Each case is a config; the test asks `muc-bridge check-config` for its verdict and then does
what `muc-bridge run` does before it connects anywhere (load the config, set up logging,
construct `Bridge(config)`, make or read each SILC key pair), and asserts the two agree.
Refusals must name the key and its line.
"""

import logging
import os
import subprocess
import sys

import pytest
import structlog

from bridge import cli
from bridge.app import Bridge
from bridge.config import ConfigError, load_config
from bridge.log import setup_logging
from bridge.silc.adapter import SilcAdapter
from bridge.silc.pubkey import load_or_create_key_pair

BASE = """\
component:
  jid: bridge.example.org
  secret: ${TEST_BRIDGE_SECRET}
  puppet_joins: {burst: 4, interval: 2}
store:
  url: sqlite://{tmp}/bridge.db
log:
  level: info
delivery:
  max_age: 300
networks:
  libera:
    type: irc
    host: irc.example.net
    port: 6697
    nick: xbridge
    flood: {burst: 4, interval: 2.0}
    format: "<{nick}> {text}"
    max_lines: 5
    queue_size: 1000
  silcnet:
    type: silc
    host: silc.example.net
    key_dir: {tmp}/keys
    heartbeat: 300
links:
  hackers:
    - xmpp: hackers@conference.example.org
    - irc: libera/#hackers
    - silc: silcnet/hackers
"""

# (id, replacements in BASE, None if it must start, else (line, key path) of the refusal)
CASES = [
    ("base", {}, None),
    ("inline secret: a warning, runs", {"${TEST_BRIDGE_SECRET}": "inline-secret"}, None),
    ("world-readable secret file: a warning, runs", {"${TEST_BRIDGE_SECRET}": "WORLD_READABLE"}, None),
    ("default store, in the working directory", {"store:\n  url: sqlite://{tmp}/bridge.db\n": ""},
     None),
    ("store in memory", {"sqlite://{tmp}/bridge.db": '"sqlite://:memory:"'}, None),
    ("store directory made on start", {"{tmp}/bridge.db": "{tmp}/new/dir/bridge.db"}, None),
    ("no puppets", {"  puppet_joins:": "  puppet_limit: 0\n  puppet_joins:"}, None),
    ("flood control off", {"{burst: 4, interval: 2.0}": "{burst: 1, interval: 0}"}, None),
    ("stale messages kept", {"max_age: 300": "max_age: 0"}, None),
    ("log level in capitals", {"level: info": "level: INFO"}, None),
    ("server fingerprint with spaces", {"    heartbeat:": '    server_fingerprint: "716C 6749 A718 '
                                        '20D4 C62D  04F6 E198 8C81 6A6E A3A2"\n    heartbeat:'}, None),
    ("postgres store not reachable", {"sqlite://{tmp}/bridge.db": "postgres://bridge:pw@db.invalid/bridge"},
     (6, "store.url")),
    ("standby on a SQLite store", {"{tmp}/bridge.db\n": "{tmp}/bridge.db\n  standby: true\n"},
     (7, "store.standby")),
    ("standby that is not a boolean", {"{tmp}/bridge.db\n": "{tmp}/bridge.db\n  standby: maybe\n"},
     (7, "store.standby")),
    ("store of an unknown kind", {"sqlite://{tmp}/bridge.db": "mysql://bridge@db/bridge"}, (6, "store.url")),
    ("store url without a file", {"sqlite://{tmp}/bridge.db": "sqlite://"}, (6, "store.url")),
    ("store under a file", {"{tmp}/bridge.db": "{tmp}/afile/bridge.db"}, (6, "store.url")),
    ("store is not a database", {"{tmp}/bridge.db": "{tmp}/afile"}, (6, "store.url")),
    ("store is a directory", {"{tmp}/bridge.db": "{tmp}"}, (6, "store.url")),
    ("max_lines -3", {"max_lines: 5": "max_lines: -3"}, (19, "networks.libera.max_lines")),
    ("flood burst 0", {"{burst: 4, interval: 2.0}": "{burst: 0, interval: 2.0}"},
     (17, "networks.libera.flood.burst")),
    ("flood interval -1", {"{burst: 4, interval: 2.0}": "{burst: 4, interval: -1}"},
     (17, "networks.libera.flood.interval")),
    ("puppet joins burst 0", {"{burst: 4, interval: 2}": "{burst: 0, interval: 2}"},
     (4, "component.puppet_joins.burst")),
    ("puppet_limit -1", {"  puppet_joins:": "  puppet_limit: -1\n  puppet_joins:"},
     (4, "component.puppet_limit")),
    ("port 0", {"port: 6697": "port: 0"}, (15, "networks.libera.port")),
    ("port 70000", {"port: 6697": "port: 70000"}, (15, "networks.libera.port")),
    ("ping_interval 0", {"  puppet_joins:": "  ping_interval: 0\n  puppet_joins:"},
     (4, "component.ping_interval")),
    ("ping_timeout nan", {"    max_lines: 5": "    max_lines: 5\n    ping_timeout: .nan"},
     (20, "networks.libera.ping_timeout")),
    ("puppet_idle infinite", {"  puppet_joins:": "  puppet_idle: .inf\n  puppet_joins:"},
     (4, "component.puppet_idle")),
    ("heartbeat -1", {"heartbeat: 300": "heartbeat: -1"}, (25, "networks.silcnet.heartbeat")),
    ("queue_size 0", {"queue_size: 1000": "queue_size: 0"}, (20, "networks.libera.queue_size")),
    ("max_age -1", {"max_age: 300": "max_age: -1"}, (10, "delivery.max_age")),
    ("format with an unknown field", {'"<{nick}> {text}"': '"{user}: {text}"'}, (18, "networks.libera.format")),
    ("format with an unclosed brace", {'"<{nick}> {text}"': '"<{nick}> {text"'}, (18, "networks.libera.format")),
    ("format with a positional field", {'"<{nick}> {text}"': '"<{}> {text}"'}, (18, "networks.libera.format")),
    ("format without the text", {'"<{nick}> {text}"': '"<{nick}>"'}, (18, "networks.libera.format")),
    ("SILC action format", {"    heartbeat:": '    action_format: "{nick} {0}"\n    heartbeat:'},
     (25, "networks.silcnet.action_format")),
    ("log level verbose", {"level: info": "level: verbose"}, (8, "log.level")),
    ("nick with a space", {"nick: xbridge": "nick: x bridge"}, (16, "networks.libera.nick")),
    ("bad fingerprint", {"    heartbeat:": "    server_fingerprint: abc\n    heartbeat:"},
     (25, "networks.silcnet.server_fingerprint")),
    ("key_dir under a file", {"{tmp}/keys": "{tmp}/afile/keys"}, (24, "networks.silcnet.key_dir")),
    ("a room twice in a link", {"    - silc: silcnet/hackers": "    - irc: libera/#Hackers"},
     (30, "links.hackers[2]")),
    ("multi-line secret file", {"${TEST_BRIDGE_SECRET}": "TWO_LINES"}, (3, "component.secret_file")),
    ("yaml syntax", {"  level: info": "  level: [info"}, (9, "(yaml)")),
    ("yaml value that is not an int", {"port: 6697": "port: !!int high"}, (15, "networks.libera.port")),
    ("admins and metrics", {"links:": "admins: [ops@example.org, '*@example.net']\n"
                            "metrics: {listen: '[::1]:9102'}\nlinks:"}, None),
    ("an admin that is no JID", {"links:": "admins: [ops]\nlinks:"}, (26, "admins[0]")),
    ("metrics without a port", {"links:": "metrics: {listen: localhost}\nlinks:"}, (26, "metrics.listen")),
    ("portal to an IRC network", {"links:\n": "portal: {networks: [libera], users: ['*']}\nlinks:\n"}, None),
    ("portal to a SILC network", {"links:\n": "portal: {networks: [silcnet], users: ['*']}\nlinks:\n"},
     (26, "portal.networks[0]")),
    ("portal for nobody", {"links:\n": "portal:\n  networks: [libera]\n  users: []\nlinks:\n"},
     (28, "portal.users")),
    ("portal key file in a directory made on first use",
     {"links:\n": "portal: {networks: [libera], users: ['*'], secret_file: {tmp}/new/portal.key}\nlinks:\n"},
     None),
    ("portal key file under a file",
     {"links:\n": "portal: {networks: [libera], users: ['*'], secret_file: {tmp}/afile/portal.key}\nlinks:\n"},
     (26, "portal.secret_file")),
]


@pytest.fixture(autouse=True)
def no_patience(monkeypatch):
    """`run` waits a minute for a PostgreSQL store that does not answer; what it decides
    in the end is what is compared here."""
    from bridge.store import postgres
    monkeypatch.setattr(postgres, "START_WAIT", 0.0)


@pytest.fixture(autouse=True)
def restore_logging():
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:], root.level = handlers, level


def starts(path) -> tuple[bool, str]:
    """What `muc-bridge run` does before connecting: True, or False and why not."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return False, str(exc)
    try:
        setup_logging(config.log.level, config.log.format)
        bridge = Bridge(config)
        bridge.store.close()
        for adapter in bridge.adapters:
            if isinstance(adapter, SilcAdapter):
                load_or_create_key_pair(adapter.config.key_dir, adapter.config.username)
    except Exception as exc:  # what `run` would die of
        return False, repr(exc)
    return True, ""


def write_case(tmp_path, replacements) -> str:
    text = BASE
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    secret.chmod(0o644)
    (tmp_path / "afile").write_text("not a database\n")
    two_lines = tmp_path / "two-lines"
    two_lines.write_text("one\ntwo\n")
    two_lines.chmod(0o600)
    text = text.replace("secret: TWO_LINES", f"secret_file: {two_lines}")
    text = text.replace("WORLD_READABLE", "").replace(
        "secret: \n", f"secret_file: {secret}\n").replace("{tmp}", str(tmp_path))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("replacements, refusal", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_config_passes_exactly_what_run_starts(tmp_path, monkeypatch, capsys, replacements,
                                                     refusal):
    agree(tmp_path, monkeypatch, capsys, replacements, refusal)


# (id, the store URL on the test's PostgreSQL server, as for CASES)
POSTGRES_CASES = [
    ("postgres store", "postgresql://bridge@127.0.0.1:{port}/{db}", None),
    ("postgres:// store", "postgres://bridge@127.0.0.1:{port}/{db}", None),
    ("postgres store with a standby", "postgresql://bridge@127.0.0.1:{port}/{db}\n  standby: true", None),
    ("no such database", "postgresql://bridge@127.0.0.1:{port}/nosuchdb", (6, "store.url")),
    ("no server on the port", "postgresql://bridge@127.0.0.1:1/{db}", (6, "store.url")),
    ("no such role", "postgresql://nobody@127.0.0.1:{port}/{db}", (6, "store.url")),
    ("a role that may not make the tables", "postgresql://reader@127.0.0.1:{port}/{db}", (6, "store.url")),
]


@pytest.mark.parametrize("url, refusal", [c[1:] for c in POSTGRES_CASES], ids=[c[0] for c in POSTGRES_CASES])
def test_check_config_passes_exactly_the_postgres_stores_run_opens(tmp_path, monkeypatch, capsys,
                                                                   postgres_server, url, refusal):
    db = f"config{abs(hash(str(tmp_path)))}"
    postgres_server.create_database(db)
    postgres_server.psql("DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
    url = url.format(port=postgres_server.port, db=db)
    agree(tmp_path, monkeypatch, capsys, {"sqlite://{tmp}/bridge.db": url}, refusal)


def agree(tmp_path, monkeypatch, capsys, replacements, refusal):
    monkeypatch.setenv("TEST_BRIDGE_SECRET", "s3cret")
    monkeypatch.chdir(tmp_path)
    path = write_case(tmp_path, replacements)
    verdict = cli.main(["check-config", "--config", path])
    out, err = capsys.readouterr()
    started, why = starts(path)
    assert (verdict == 0) == started, f"check-config said {verdict}: {out}{err}; run: {why}"
    if refusal is None:
        assert verdict == 0 and f"{path}: ok" in out
    else:
        line, key = refusal
        assert verdict == 2
        assert f"{path}:line {line}: {key}: " in err, err


def test_warnings_are_shown_but_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_BRIDGE_SECRET", "s3cret")
    path = write_case(tmp_path, {"${TEST_BRIDGE_SECRET}": "WORLD_READABLE"})
    assert cli.main(["check-config", "--config", path]) == 0
    out, err = capsys.readouterr()
    assert "world-readable" in err and "1 warning(s) above" in out
    path = write_case(tmp_path, {"${TEST_BRIDGE_SECRET}": "inline-secret"})
    assert cli.main(["check-config", "--config", path]) == 0
    assert "secret written in the config" in capsys.readouterr().err


def test_store_url_password_is_not_echoed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_BRIDGE_SECRET", "s3cret")
    path = write_case(tmp_path, {"sqlite://{tmp}/bridge.db": "postgres://bridge:hunter2@db.invalid/bridge"})
    assert cli.main(["check-config", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to the PostgreSQL database" in err and "hunter2" not in err


def test_yaml_syntax_error_keeps_pyyaml_explanation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_BRIDGE_SECRET", "s3cret")
    path = write_case(tmp_path, {"  level: info": "  level: [info"})
    assert cli.main(["check-config", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "expected ',' or ']'" in err and "while parsing a flow sequence from line 8" in err


def test_config_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"component:\n  jid: caf\xe9.example.org\n")
    assert cli.main(["check-config", "--config", str(path)]) == 2
    assert f"{path}:line 2: (file): not UTF-8" in capsys.readouterr().err


def test_run_refuses_what_check_config_refuses(tmp_path):
    path = write_case(tmp_path, {"sqlite://{tmp}/bridge.db": "mysql://db/bridge"})
    result = subprocess.run([sys.executable, "-m", "bridge", "run", "--config", path],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TEST_BRIDGE_SECRET": "s3cret"})
    assert result.returncode == 2
    assert f"{path}:line 6: store.url: unsupported store 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


def read_only(directory) -> list[str]:
    """A command prefix that runs the rest with `directory` mounted read-only (as root, in
    a mount namespace of its own); [] where this machine does not allow it."""
    prefix = ["unshare", "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
              str(directory)]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probe.returncode == 0 else []


def test_default_paths_in_a_directory_the_bridge_cannot_write(tmp_path):
    """The Docker case: the defaults (store, SILC keys) land in the working directory; where
    the bridge cannot write there, check-config (and so run) says so, naming the directory."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    prefix = read_only(workdir)
    if not prefix:
        pytest.skip("cannot mount a read-only directory here (needs root and unshare)")
    path = write_case(tmp_path, {"store:\n  url: sqlite://{tmp}/bridge.db\n": "",
                                 "    key_dir: {tmp}/keys\n": ""})
    env = {**os.environ, "TEST_BRIDGE_SECRET": "s3cret", "PYTHONPATH": os.getcwd()}
    result = subprocess.run([*prefix, sys.executable, "-m", "bridge", "check-config", "--config", path],
                            capture_output=True, text=True, timeout=60, cwd=workdir, env=env)
    assert result.returncode == 2, result.stderr
    assert (f"store.url: the default sqlite://muc-bridge.db (relative to {workdir}): cannot write "
            f"in the database directory {workdir}: {workdir} is on a read-only file system") \
        in result.stderr
    assert (f"networks.silcnet.key_dir: the default 'silc-keys' (relative to {workdir}): cannot "
            f"make the key directory {workdir}/silc-keys: {workdir} is on a read-only file system") \
        in result.stderr
