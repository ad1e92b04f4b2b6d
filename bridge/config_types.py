"""Typed configuration: what `bridge.config.load_config` returns.

Every secret is already resolved (read from its file or environment variable)
by the time these objects exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FloodConfig:
    """Token bucket: `burst` at once (IRC lines, puppet joins), then one more per
    `interval` seconds. `interval: 0` turns it off."""

    burst: int = 4
    interval: float = 2.0


@dataclass(frozen=True)
class ComponentConfig:
    jid: str
    secret: str
    server: str = "127.0.0.1"
    port: int = 5347
    bot_nick: str = "bridge"
    puppet_idle: float = 3600.0
    puppet_limit: int = 20  # presence traffic grows with its square: docs/design-notes.md
    puppet_joins: FloodConfig = field(default_factory=FloodConfig)  # new puppets per room
    nick_suffix: str = "[i]"
    ping_interval: float = 60.0  # XEP-0410 self-ping per room
    #: A component link silent this long is dead (an XEP-0199 ping goes out after half of it).
    ping_timeout: float = 25.0


@dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///muc-bridge.db"


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"  # auto | json | console


@dataclass(frozen=True)
class DeliveryConfig:
    """How long a relayed message may wait: older than `max_age` seconds when its turn
    comes (after an outage, behind flood control), it is dropped and counted."""

    max_age: float = 300.0


@dataclass(frozen=True)
class SaslConfig:
    username: str
    password: str


@dataclass(frozen=True)
class IrcNetworkConfig:
    name: str
    host: str
    port: int = 6697
    tls: bool = True
    tls_verify: bool = True
    nick: str = "xbridge"
    alt_nicks: tuple[str, ...] = ()
    username: str = "xbridge"
    realname: str = "muc-bridge relay"
    password: str | None = None  # server password (PASS)
    sasl: SaslConfig | None = None
    flood: FloodConfig = field(default_factory=FloodConfig)
    format: str = "<{nick}> {text}"
    action_format: str = "* {nick} {text}"
    max_lines: int = 5
    #: A link silent this long is dead (our PING goes out after half of it).
    ping_timeout: float = 25.0
    queue_size: int = 1000  # lines waiting for flood control; beyond it the oldest are dropped


@dataclass(frozen=True)
class SilcNetworkConfig:
    name: str
    host: str
    port: int = 706
    nick: str = "xbridge"
    username: str = "xbridge"
    realname: str = "muc-bridge relay"
    key_dir: str = "silc-keys"
    server_fingerprint: str | None = None
    password: str | None = None  # connection passphrase, if the server wants one
    format: str = "<{nick}> {text}"
    action_format: str = "{nick} {text}"  # sent with the ACTION flag
    heartbeat: float = 300.0
    #: A link silent this long is dead (a SILC PING goes out after half of it).
    ping_timeout: float = 25.0


NetworkConfig = IrcNetworkConfig | SilcNetworkConfig


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint of a link. `network` is "xmpp" for the MUC side."""

    network: str
    room: str
    topic: str = "both"  # both | none | in | out
    puppets: str = "lazy"  # lazy | eager (XMPP puppets join when the foreign user joins)
    passphrase: str | None = None  # SILC channel private key


@dataclass(frozen=True)
class LinkConfig:
    name: str
    endpoints: tuple[EndpointConfig, ...]


@dataclass(frozen=True)
class Config:
    component: ComponentConfig
    store: StoreConfig
    log: LogConfig
    delivery: DeliveryConfig
    networks: dict[str, NetworkConfig]
    links: tuple[LinkConfig, ...]
    warnings: tuple = ()  # bridge.config.Problem entries that did not stop loading
