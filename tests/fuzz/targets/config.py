"""The config loader (bridge/config.py `parse_config`): never a traceback, only ConfigError.

Configs from the schema (every section and key, values of the right type and of every
wrong one, YAML's own types: timestamps, binary, sets, merge keys, anchors and aliases,
tags, multiple documents, deep nesting, ${ENV} references, secret files readable,
world-readable, empty, not UTF-8, missing or a directory), then sometimes corrupted at the
byte level, run in a scratch directory that holds those files.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bridge.config import ConfigError, parse_config, warnings_for
from tests.fuzz.engine import Target
from tests.fuzz.mutate import mutate

ENV = "MUC_BRIDGE_FUZZ_SECRET"
_FILES = {"good.secret": (b"s3cret\n", 0o600), "open.secret": (b"s3cret", 0o644),
          "empty.secret": (b"\n", 0o600), "latin1.secret": (b"caf\xe9", 0o600)}


@contextlib.contextmanager
def _scratch() -> Iterator[None]:
    """A directory with the secret files the configs name, the working directory meanwhile."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        for name, (data, mode) in _FILES.items():
            Path(name).write_bytes(data)
            os.chmod(name, mode)
        os.mkdir("adir")
        old = os.environ.get(ENV)
        os.environ[ENV] = "from-env"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = old


_SCALARS = ["x", "bridge.example.org", "127.0.0.1", "5347", "0", "-1", "65536", "1e999", ".inf", ".nan",
            "-.inf", "0x1F", "0o17", "1_000", "true", "no", "~", "null", "''", '""', "2001-12-14",
            "2001-12-14t21:59:43.10-05:00", "2001-13-45", "!!binary aGk=", "!!binary '!!'", "!!int x",
            "!!float abc", "!!str 5", "!!timestamp nope", "!!python/object:os.system x", "!unknown x",
            "'${" + ENV + "}'", "'${MISSING_VAR_X}'", "'a${" + ENV + "}b'", '"\\0"', '"a\\tb"', '"\\x85"',
            "'#hackers'", "'<{nick}> {text}'", "'{nick}'", "'{0}'", "'{text!z}'", "'{text.__class__}'",
            "'{text:>{nick}}'", "'{'", "'}'", "'{text[0]}'", "\"\\u0000\"", "sqlite://x.db", "sqlite://",
            "'sqlite:///adir/'", "sqlite://adir", "postgres://u:p@h/db", "good.secret", "open.secret",
            "empty.secret", "latin1.secret", "missing.secret", "adir", "'a\\0b'", "'é'", "'𝓍'",
            "[a, b]", "{a: 1}", "[]", "{}", "*anchor", "&anchor x", "!!set {a, b}", "!!omap [a: 1]"]
_KEYS = {
    "component": ["jid", "server", "port", "secret", "secret_file", "bot_nick", "puppet_idle",
                  "puppet_limit", "puppet_joins", "nick_suffix", "ping_interval", "ping_timeout"],
    "store": ["url"], "log": ["level", "format"], "delivery": ["max_age"],
}
_IRC = ["type", "host", "port", "tls", "tls_verify", "nick", "alt_nicks", "username", "realname",
        "password", "password_file", "sasl", "flood", "format", "action_format", "max_lines",
        "ping_timeout", "queue_size"]
_SILC = ["type", "host", "port", "nick", "username", "realname", "key_dir", "server_fingerprint",
         "password", "password_file", "format", "action_format", "heartbeat", "ping_timeout"]
_ENDPOINT = ["xmpp", "irc", "silc", "topic", "puppets", "passphrase", "passphrase_file"]


def _value(rng: random.Random, depth: int) -> str:
    kind = rng.randrange(12)
    if kind == 0 and depth < 3:
        return "{" + ", ".join(f"{rng.choice(['burst', 'interval', 'a', 'username', 'password'])}: "
                               f"{_value(rng, depth + 1)}" for _ in range(rng.randint(0, 3))) + "}"
    if kind == 1 and depth < 3:
        return "[" + ", ".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    return rng.choice(_SCALARS)


def _section(rng: random.Random, keys: list[str], indent: str) -> list[str]:
    lines = []
    for key in rng.sample(keys, rng.randint(0, len(keys))):
        lines.append(f"{indent}{key}: {_value(rng, 0)}")
        if rng.random() < 0.05:
            lines.append(f"{indent}{key}: {_value(rng, 0)}")  # a duplicate key
    return lines


def _valid(rng: random.Random) -> list[str]:
    """A config that loads, to corrupt from."""
    lines = ["component:", "  jid: bridge.example.org", f"  secret: ${{{ENV}}}",
             "networks:", "  libera: {type: irc, host: irc.example.org, nick: xb}",
             "  silcnet: {type: silc, host: silc.example.org, key_dir: keys}",
             "links:", "  one:", "    - xmpp: room@muc.example.org", "    - irc: libera/#chan",
             "    - silc: silcnet/chan"]
    if rng.random() < 0.5:
        lines += ["store: {url: 'sqlite://bridge.db'}", "log: {level: DEBUG, format: json}",
                  "delivery: {max_age: 0}"]
    return lines


def _schema(rng: random.Random) -> list[str]:
    lines = []
    for section, keys in _KEYS.items():
        if rng.random() < 0.7:
            lines.append(f"{section}:")
            lines += _section(rng, keys, "  ")
    if rng.random() < 0.9:
        lines.append("networks:")
        for n in range(rng.randint(0, 3)):
            name = rng.choice(["libera", "silcnet", "xmpp", "bad name", "n" + str(n), "ünï"])
            lines.append(f"  {name}:")
            lines += _section(rng, _IRC if rng.random() < 0.6 else _SILC, "    ")
    if rng.random() < 0.9:
        lines.append("links:")
        for n in range(rng.randint(0, 3)):
            lines.append(f"  link{n}:")
            for _ in range(rng.randint(0, 4)):
                fields = _section(rng, _ENDPOINT, "      ")
                if fields:
                    fields[0] = "    - " + fields[0].lstrip()
                    lines += fields
                else:
                    lines.append(f"    - {_value(rng, 0)}")
    return lines


def _yaml_tricks(rng: random.Random, lines: list[str]) -> list[str]:
    trick = rng.randrange(10)
    if trick == 0:
        depth = rng.choice((10, 100, 300, 400))  # deeper: PyYAML takes seconds (docs/fuzzing.md)
        lines.append("deep: " + "[" * depth + "]" * depth)
    elif trick == 1:
        lines.insert(0, "base: &base {type: irc, host: h}")
        lines.append("networks2: {a: {<<: *base, nick: x}}")
    elif trick == 2:
        lines.append("---")
        lines.append("second: document")
    elif trick == 3:
        lines.insert(0, "%YAML 1.1")
        lines.insert(1, "---")
    elif trick == 4:
        lines.append("a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c]")
    elif trick == 5:
        lines = [line.replace("  ", "\t", 1) for line in lines]
    elif trick == 6:
        lines.append("? [complex, key]\n: value")
    elif trick == 7:
        lines.insert(0, "\ufeff")
    return lines


def generate(rng: random.Random) -> bytes:
    lines = _valid(rng) if rng.random() < 0.3 else _schema(rng)
    if rng.random() < 0.3:
        lines = _yaml_tricks(rng, lines)
    data = "\n".join(lines).encode()
    if rng.random() < 0.3:
        data = mutate(rng, data)
    return data


def check(data: bytes) -> None:
    try:
        config = parse_config(data.decode("utf-8", "replace"), "fuzz.yaml")
    except ConfigError:
        return
    warnings_for(config)


TARGET = Target("config", "YAML text -> parse_config: a Config or ConfigError, nothing else",
                generate, check, bound=1.0, full=200_000, context=_scratch)
