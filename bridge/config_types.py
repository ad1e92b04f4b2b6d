"""Typed configuration: what `bridge.config.load_config` returns.

Every secret is already resolved (read from its file or environment variable)
by the time these objects exist. A field made with `checked` carries the rule its
value must meet; the loader applies it, so a value the bridge would fail on (or
misbehave with) is refused with its key and line before anything starts.
"""

from __future__ import annotations

import math
import ssl
import string
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Any

#: A rule for a value: returns what is wrong with it, or None.
Check = Callable[[Any], "str | None"]


def checked(check: Check, default: Any = MISSING) -> Any:
    """A dataclass field whose value `check` vets when the config is loaded."""
    return field(default=default, metadata={"check": check})


def port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "must be a port number, 1 to 65535"


def at_least(low: int) -> Check:
    def check(value: int) -> str | None:
        return None if value >= low else f"must be {low} or more"
    return check


def seconds(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a number of seconds above 0"


def positive(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a number above 0"


def seconds_or_off(value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else "must be 0 (off) or a number of seconds"


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be {', '.join(choices[:-1])} or {choices[-1]}"
    return check


def log_level(value: str) -> str | None:
    """`bridge.log.setup_logging` takes a level in any case."""
    return one_of("debug", "info", "warning", "error", "critical")(value.lower())


def one_line(value: str) -> str | None:
    """Non-empty and without line breaks (it ends up inside a protocol line)."""
    if not value.strip():
        return "must not be empty"
    return "must be one line" if any(c in value for c in "\r\n\0") else None


def word(value: str) -> str | None:
    """An IRC/SILC nick or user name: non-empty, no spaces (RFC 2812 2.3.1)."""
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        return "must be one word, without spaces"
    return None


def irc_nick_suffix(value: str) -> str | None:
    """What IRC nicks may end with (RFC 2812 2.3.1: letters, digits, `[]\\`_^{|}-`), short."""
    if len(value) > 8 or any(not (c.isascii() and (c.isalnum() or c in "[]\\`_^{|}-")) for c in value):
        return "must be at most 8 of the characters IRC nicks hold (letters, digits, []\\`_^{|}-)"
    return None


def words(values: tuple[str, ...]) -> str | None:
    return next((f"{v!r} {problem}" for v in values if (problem := word(v))), None)


def template(value: str) -> str | None:
    """A line format: `str.format` with `nick` and `text`, and the text in it."""
    try:
        value.format(nick="nick", text="text")
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except KeyError as exc:
        return f"unknown field {{{exc.args[0]}}}: the fields are {{nick}} and {{text}}"
    except IndexError:
        return "positional fields ({} or {0}) are not available: the fields are {nick} and {text}"
    except (ValueError, AttributeError, TypeError) as exc:
        return f"not a valid format ({exc}); write {{{{ and }}}} for a literal brace"
    if not any(name.partition(".")[0].partition("[")[0] == "text" for name in names):
        return "must contain {text} (the message)"
    return None


def fingerprint(value: str) -> str | None:
    """A SHA-1 key fingerprint: 40 hex digits, spaces and colons ignored (silc-spec 3.11)."""
    digits = "".join(c for c in value if c not in " :\t")
    if len(digits) == 40 and all(c in string.hexdigits for c in digits):
        return None
    return "must be 40 hex digits (a SHA-1 fingerprint; spaces and colons are ignored)"


def admin_jids(values: tuple[str, ...]) -> str | None:
    """Bare JIDs (alice@example.org) or every user of a domain (*@example.org)."""
    for value in values:
        node, at, host = value.partition("@")
        if not at or not node or not host or "/" in value or "@" in host or word(value) \
                or ("*" in node and node != "*"):
            return f"{value!r} is not a bare JID (alice@example.org) or *@domain"
    return None


def listen_address(value: str) -> str | None:
    """host:port, an IPv6 host in brackets ([::1]:9102)."""
    host, colon, number = value.rpartition(":")
    if not colon or not host.strip("[]") or word(host) or not number.isdigit() \
            or port(int(number)) or (":" in host and not (host[0] == "[" and host[-1] == "]")):
        return "must be host:port, such as 127.0.0.1:9102 or [::1]:9102"
    return None


def ca_bundle(value: str) -> str | None:
    """A PEM file of CA certificates that Python's ssl module can load."""
    try:
        ssl.create_default_context(cafile=value)
    except (ssl.SSLError, ValueError):  # SSLError first: it is an OSError too
        return f"{value} holds no CA certificate in PEM form"
    except FileNotFoundError:
        return f"no such file: {value}"
    except OSError as exc:
        return f"cannot read {value}: {exc.strerror or exc}"
    return None


def domain(value: str) -> str | None:
    if any(c in value for c in "@/") or "." not in value.strip(".") or word(value):
        return "must be a domain like bridge.example.org"
    return None


@dataclass(frozen=True)
class FloodConfig:
    """Token bucket: `burst` at once (IRC lines, puppet joins), then one more per
    `interval` seconds. `interval: 0` turns it off."""

    burst: int = checked(at_least(1), 4)
    interval: float = checked(seconds_or_off, 2.0)


@dataclass(frozen=True)
class MucJoinsConfig(FloodConfig):
    """MUC joins of the bot (and the puppets that come back with it), as a token bucket:
    `burst` rooms at once, then one more per `interval` seconds. Neither Prosody 0.12
    (mod_limits shapes c2s and s2s only) nor ejabberd (no shaper on components, no
    `min_presence_interval` by default) limits a component's joins: this keeps the stream
    steady (each join brings the room's occupants, subject and history back) and lets the
    first rooms join at once."""

    burst: int = checked(at_least(1), 20)
    interval: float = checked(seconds_or_off, 0.025)


@dataclass(frozen=True)
class ComponentConfig:
    jid: str = checked(domain)
    secret: str = checked(one_line)
    server: str = checked(one_line, "127.0.0.1")
    port: int = checked(port, 5347)
    bot_nick: str = checked(one_line, "bridge")
    puppet_idle: float = checked(seconds, 3600.0)
    #: 0: no puppets, every line comes from the bot as `<nick> text`. Presence traffic
    #: grows with the square of it: docs/design-notes.md.
    puppet_limit: int = checked(at_least(0), 20)
    puppet_joins: FloodConfig = field(default_factory=FloodConfig)  # new puppets per room
    joins: MucJoinsConfig = field(default_factory=MucJoinsConfig)  # rooms (re)joined, all rooms
    nick_suffix: str = checked(one_line, "[i]")  # appended (again) while a nick is taken
    ping_interval: float = checked(seconds, 60.0)  # XEP-0410 self-ping per room
    #: A component link silent this long is dead (an XEP-0199 ping goes out after half of it).
    ping_timeout: float = checked(seconds, 25.0)
    #: TLS from the first byte, as on ejabberd's `ejabberd_service` with `tls: true` (XEP-0114
    #: itself is plain TCP; this is no STARTTLS). The server's certificate is verified against
    #: the system's CAs, or those in `ca_file`, for the name `tls_name`.
    tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = checked(ca_bundle, None)
    #: Default: the XMPP server's domain, the component's own without its first label
    #: (bridge.example.org: example.org).
    tls_name: str | None = checked(word, None)

    @property
    def server_domain(self) -> str:
        """The XMPP server's domain: the component's own without its first label."""
        return self.jid.partition(".")[2] or self.jid

    @property
    def certificate_name(self) -> str:
        """The name the server's TLS certificate must carry."""
        return self.tls_name or self.server_domain


@dataclass(frozen=True)
class StoreConfig:
    #: `sqlite://bridge.db` is relative to the working directory (in the Docker image,
    #: /data); `sqlite:///var/lib/muc-bridge/bridge.db` is absolute.
    url: str = "sqlite://muc-bridge.db"
    #: A puppet unseen this many days is forgotten; message ids are kept this many days,
    #: and at most `message_limit` of them.
    puppet_days: float = checked(positive, 365.0)
    message_days: float = checked(positive, 7.0)
    message_limit: int = checked(at_least(1000), 200_000)
    #: Run as one of several instances with this config on one PostgreSQL store: the one
    #: that holds the lead relays, the others stand by (`bridge.store.lease`).
    standby: bool = False


@dataclass(frozen=True)
class LogConfig:
    level: str = checked(log_level, "info")
    format: str = checked(one_of("auto", "json", "console"), "auto")


@dataclass(frozen=True)
class DeliveryConfig:
    """How long a relayed message may wait: older than `max_age` seconds when its turn
    comes (after an outage, behind flood control), it is dropped and counted. 0: never."""

    max_age: float = checked(seconds_or_off, 300.0)


@dataclass(frozen=True)
class SaslConfig:
    username: str = checked(one_line)
    password: str = checked(one_line)


@dataclass(frozen=True)
class IrcNetworkConfig:
    name: str
    host: str = checked(one_line)
    port: int = checked(port, 6697)
    tls: bool = True
    tls_verify: bool = True
    nick: str = checked(word, "xbridge")
    alt_nicks: tuple[str, ...] = checked(words, ())
    username: str = checked(word, "xbridge")
    realname: str = checked(one_line, "muc-bridge relay")
    password: str | None = checked(one_line, None)  # server password (PASS)
    sasl: SaslConfig | None = None
    #: WEBIRC for portal users' connections (the relay never sends it): the network's
    #: password for this gateway.
    webirc_password: str | None = checked(one_line, None)
    flood: FloodConfig = field(default_factory=FloodConfig)
    format: str = checked(template, "<{nick}> {text}")
    action_format: str = checked(template, "* {nick} {text}")
    max_lines: int = checked(at_least(1), 5)
    #: A link silent this long is dead (our PING goes out after half of it).
    ping_timeout: float = checked(seconds, 25.0)
    #: Lines waiting for flood control; beyond it the oldest are dropped.
    queue_size: int = checked(at_least(1), 1000)
    #: Endpoints with `xmpp_users: connect`: XMPP users' own IRC connections on this network,
    #: at most (beyond it, users speak through the relay client); 0: none.
    xmpp_user_clients: int = checked(at_least(0), 20)
    #: Such a connection quits after this long without a line from its user.
    xmpp_user_idle: float = checked(seconds, 3600.0)
    #: What their nicks end with: alice speaks as `alice[x]`.
    xmpp_user_suffix: str = checked(irc_nick_suffix, "[x]")


@dataclass(frozen=True)
class SilcNetworkConfig:
    name: str
    host: str = checked(one_line)
    port: int = checked(port, 706)
    nick: str = checked(word, "xbridge")
    username: str = checked(word, "xbridge")
    realname: str = checked(one_line, "muc-bridge relay")
    #: Relative to the working directory (in the Docker image, /data).
    key_dir: str = checked(one_line, "silc-keys")
    server_fingerprint: str | None = checked(fingerprint, None)
    password: str | None = None  # connection passphrase, if the server wants one
    format: str = checked(template, "<{nick}> {text}")
    action_format: str = checked(template, "{nick} {text}")  # sent with the ACTION flag
    heartbeat: float = checked(seconds, 300.0)
    #: A link silent this long is dead (a SILC PING goes out after half of it).
    ping_timeout: float = checked(seconds, 25.0)
    #: Endpoints with `xmpp_users: connect`: XMPP users' own SILC clients on this network, at
    #: most (beyond it, users speak through the relay client); 0: none.
    xmpp_user_clients: int = checked(at_least(0), 20)
    #: Such a client quits after this long without a line from its user.
    xmpp_user_idle: float = checked(seconds, 3600.0)


@dataclass(frozen=True)
class MetricsConfig:
    """Where Prometheus metrics (/metrics) and the health check (/health) are served."""

    listen: str = checked(listen_address)


NetworkConfig = IrcNetworkConfig | SilcNetworkConfig


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint of a link. `network` is "xmpp" for the MUC side."""

    network: str
    room: str
    topic: str = checked(one_of("both", "none", "in", "out"), "both")
    #: eager: XMPP puppets join when the foreign user joins, not when they first speak.
    puppets: str = checked(one_of("lazy", "eager"), "lazy")
    passphrase: str | None = None  # SILC channel private key
    #: IRC and SILC endpoints: how XMPP occupants appear there. relay: as `<alice> text` from
    #: the relay client; connect: each through an IRC connection (`alice[x]`) or a SILC client
    #: (a key pair the bridge makes for them) of their own, once they speak.
    xmpp_users: str = checked(one_of("relay", "connect"), "relay")


@dataclass(frozen=True)
class LinkConfig:
    name: str
    endpoints: tuple[EndpointConfig, ...]


def jid_patterns(values: tuple[str, ...]) -> str | None:
    """Who may use the portal: `alice@example.org`, `example.org` (everyone there),
    `*.example.org` (its subdomains too) or `*` (anyone the XMPP server lets reach us)."""
    for value in values:
        node, at, host = value.rpartition("@")
        host = host.removeprefix("*.") if not at else host
        if value != "*" and (word(value) or "/" in value or (at and not node) or "@" in node
                             or "*" in node or "*" in host or not host.strip(".")):
            return f"{value!r} is not a JID or domain pattern (alice@example.org, example.org, " \
                   "*.example.org or *)"
    return None


@dataclass(frozen=True)
class PortalConfig:
    """Portal mode (biboumi's model): XMPP users join `#chan%network@component` themselves,
    each with their own IRC connection. Off while `networks` is empty."""

    networks: tuple[str, ...] = ()  # configured IRC networks reachable this way
    users: tuple[str, ...] = checked(jid_patterns, ())  # who may use them
    per_network: int = checked(at_least(1), 100)  # IRC connections per network, at most
    per_user: int = checked(at_least(1), 3)  # IRC connections per XMPP account, at most
    #: Lines of each portal room kept per user (served on join and by MAM); 0: none kept.
    history: int = checked(at_least(0), 0)
    #: The key that seals users' SASL passwords in the store (`bridge.store.sealed`), in a
    #: file of its own (made 0600 on first use); relative paths are to the working directory.
    secret_file: str = checked(one_line, "portal-secret.key")


@dataclass(frozen=True)
class IdentdConfig:
    """An identd (RFC 1413) answering IRC servers with the ident of each connection the
    bridge makes for an XMPP user (portal rooms and `xmpp_users: connect` alike)."""

    port: int = checked(port)  # servers ask on 113, which needs root or CAP_NET_BIND_SERVICE
    host: str = checked(lambda value: value and word(value), "")  # empty: every address, IPv4 and IPv6


@dataclass(frozen=True)
class Config:
    component: ComponentConfig
    store: StoreConfig
    log: LogConfig
    delivery: DeliveryConfig
    networks: dict[str, NetworkConfig]
    links: tuple[LinkConfig, ...]
    warnings: tuple = ()  # bridge.config.Problem entries that did not stop loading
    #: Who may run the operator commands: bare JIDs and `*@domain` patterns.
    admins: tuple[str, ...] = ()
    metrics: MetricsConfig | None = None  # None: no metrics, no health endpoint
    portal: PortalConfig = field(default_factory=PortalConfig)
    identd: IdentdConfig | None = None  # None: no identd
