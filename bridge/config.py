"""Load and validate the YAML configuration.

Every mistake is reported with its key path and line, all at once, before
anything connects: `ConfigError.problems` lists them. Secrets are read from
`*_file` keys or `${ENV_VAR}` references and never need to be in the YAML.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from bridge.config_types import (
    ComponentConfig,
    Config,
    DeliveryConfig,
    EndpointConfig,
    FloodConfig,
    IdentdConfig,
    IrcNetworkConfig,
    LinkConfig,
    LogConfig,
    MetricsConfig,
    MucJoinsConfig,
    PortalConfig,
    SaslConfig,
    SilcNetworkConfig,
    StoreConfig,
    admin_jids,
    port,
    word,
)
from bridge.silc.pubkey import PRIVATE_FILE
from bridge.store import POSTGRES_SCHEMES


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"line {self.line}: {kind}{self.path}: {self.message}"


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}:{p}" for p in problems))


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BARE_JID = re.compile(r"^[^@/\s]+@[^@/\s]+$")
_IRC_CHANNEL = re.compile(r"^[#&+!][^\s,\x07]+$")
_SILC_CHANNEL = re.compile(r"^[^\s,]+$")


class _Reader:
    """Walks the YAML node tree, converting values and collecting problems."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.problems: list[Problem] = []

    def error(self, path: str, node: yaml.Node, message: str, warning: bool = False) -> None:
        self.problems.append(Problem(path, node.start_mark.line + 1, message, warning))

    def mapping(self, path: str, node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(path, node, "expected a mapping")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.construct(path, key_node)
            if key is _UNREADABLE:
                continue
            key = str(key)
            if key in out:
                self.error(_join(path, key), key_node, "duplicate key")
            out[key] = (key_node, value_node)
        return out

    def construct(self, path: str, node: yaml.Node) -> Any:
        """The node's Python value, or _UNREADABLE (reported) when YAML cannot make one
        (`!!int abc`, an unknown tag...)."""
        try:
            return self.loader.construct_object(node)
        except Exception as exc:  # PyYAML's constructors raise what they like (`!!int` alone: IndexError)
            if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
                text = exc.problem
            elif isinstance(exc, RecursionError):
                text = "nested too deeply"
            else:
                text = f"not a valid {node.tag.rpartition(':')[2]}"
            self.error(path or "(top)", node, f"cannot read this value: {text}")
            return _UNREADABLE

    def scalar(self, path: str, node: yaml.Node, kind: type) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.error(path, node, f"expected {_NAMES[kind]}")
            return None
        value = self.construct(path, node)
        if value is _UNREADABLE:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(path, node, f"expected {_NAMES[kind]}, got {node.value!r}")
            return None
        if kind is str:
            value = self.expand_env(path, node, value)
        return value

    def expand_env(self, path: str, node: yaml.Node, value: str) -> str | None:
        missing = [name for name in _ENV.findall(value) if name not in os.environ]
        if missing:
            self.error(path, node, f"environment variable {missing[0]} is not set")
            return None
        return _ENV.sub(lambda m: os.environ[m.group(1)], value)

    def secret_file(self, path: str, node: yaml.Node) -> str | None:
        name = self.scalar(path, node, str)
        if name is None:
            return None
        if "\0" in name:  # the OS cannot even look it up
            self.error(path, node, "cannot read secret file: its name holds a NUL character")
            return None
        try:
            st = os.stat(name)
            text = Path(name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.error(path, node, f"cannot read secret file: {exc.strerror}")
            return None
        except UnicodeDecodeError:
            self.error(path, node, f"secret file {name} is not UTF-8 text")
            return None
        if st.st_mode & stat.S_IROTH:
            self.error(path, node, f"secret file {name} is world-readable (chmod 600 it)", warning=True)
        if not text:
            self.error(path, node, f"secret file {name} is empty")
            return None
        return text

    def section(self, path: str, node: yaml.Node, cls: type, extra: dict[str, Any] | None = None,
                secrets: tuple[str, ...] = (), nested: dict[str, Any] | None = None,
                ignore: tuple[str, ...] = ()) -> Any:
        """Build dataclass `cls` from a mapping node, checking keys and types.

        `secrets` are fields that may also be given as `<field>_file`;
        `nested` maps a field to a function building it from its node.
        """
        items = self.mapping(path, node)
        if items is None:
            return None
        kinds = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = dict(extra or {})
        ok = True
        for key, (key_node, value_node) in items.items():
            sub = _join(path, key)
            base = key[: -len("_file")] if key.endswith("_file") else None
            if key in ignore:
                continue
            if base in secrets:
                if base in items:
                    self.error(sub, key_node, f"give either {base} or {key}, not both")
                name, value = base, self.secret_file(sub, value_node)
            elif nested and key in nested:
                name, value = key, nested[key](sub, value_node)
            elif key in kinds and key not in values:
                kind = _field_kind(kinds[key].type)
                name = key
                if kind is tuple:
                    value = self.str_list(sub, value_node)
                else:
                    value = self.scalar(sub, value_node, kind)
                if key in secrets and value is not None and not _ENV.search(value_node.value):
                    self.error(sub, value_node,
                               f"secret written in the config; prefer {key}_file or ${{ENV_VAR}}",
                               warning=True)
            else:
                self.error(sub, key_node, f"unknown key {key!r}")
                ok = False
                continue
            check = kinds[name].metadata.get("check")
            if value is not None and check and (problem := check(value)):
                self.error(sub, value_node, problem)
                value = None
            values[name] = value
            ok &= value is not None
        required = [f.name for f in fields(cls) if f.name not in values
                    and f.default is MISSING and f.default_factory is MISSING]
        for name in required:
            hint = f" (or {name}_file)" if name in secrets else ""
            self.error(_join(path, name), node, f"missing required key{hint}")
        if not ok or required:
            return None
        return cls(**values)

    def str_list(self, path: str, node: yaml.Node) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.error(path, node, "expected a list of strings")
            return None
        items = [self.scalar(f"{path}[{i}]", n, str) for i, n in enumerate(node.value)]
        return None if None in items else tuple(items)


_UNREADABLE = object()
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _field_kind(annotation: Any) -> type:
    text = str(annotation)
    for name, kind in (("tuple", tuple), ("bool", bool), ("int", int), ("float", float)):
        if text.startswith(name):
            return kind
    return str


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse and validate config text; raise ConfigError listing every problem."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_syntax_problem(exc, text)]) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(source, [Problem("(yaml)", 1, "nested too deeply")]) from None
    if root is None:
        raise ConfigError(source, [Problem("(top)", 1, "the config is empty")])
    r = _Reader(loader)
    top = r.mapping("", root) or {}
    known = {"component", "store", "log", "delivery", "networks", "links", "admins", "metrics",
             "portal", "identd"}
    for key, (key_node, _) in top.items():
        if key not in known:
            r.error(key, key_node, f"unknown key {key!r}")
    for key in ("component", "networks", "links"):
        if key not in top:
            r.error(key, root, "missing required section")

    component = store = log = None
    if "component" in top:
        component = r.section("component", top["component"][1], ComponentConfig, secrets=("secret",),
                              nested={"puppet_joins": lambda p, n: r.section(p, n, FloodConfig),
                                      "joins": lambda p, n: r.section(p, n, MucJoinsConfig)})
    store = r.section("store", top["store"][1], StoreConfig) if "store" in top else StoreConfig()
    log = r.section("log", top["log"][1], LogConfig) if "log" in top else LogConfig()
    delivery = (r.section("delivery", top["delivery"][1], DeliveryConfig)
                if "delivery" in top else DeliveryConfig())
    networks = _networks(r, top["networks"][1]) if "networks" in top else {}
    links = _links(r, top["links"][1], networks) if "links" in top else ()
    admins = _admins(r, top["admins"][1]) if "admins" in top else ()
    metrics = r.section("metrics", top["metrics"][1], MetricsConfig) if "metrics" in top else None
    portal = _portal(r, top["portal"][1], networks) if "portal" in top else PortalConfig()
    identd = _identd(r, top)
    if portal is not None and portal.history and store is not None and not store.url.startswith("sqlite:"):
        r.error("portal.history", _node_at(root, "portal", "history") or top["portal"][1],
                "portal history is kept in SQLite stores only, for now: set it to 0 or use sqlite://")
    if store is not None and store.standby and not store.url.startswith(POSTGRES_SCHEMES):
        r.error("store.standby", _node_at(root, "store", "standby") or root,
                "a standby shares its store with the leader: it needs a postgresql:// store url")
    _check_places(r, root, store, networks)
    if portal is not None and portal.networks:
        problem = _secret_file_problem(Path(portal.secret_file))
        if problem:
            node = _node_at(root, "portal", "secret_file")
            r.error("portal.secret_file", node or top["portal"][1], problem if node else
                    f"the default {portal.secret_file!r} (relative to {os.getcwd()}): {problem}")

    errors = [p for p in r.problems if not p.warning]
    if errors or None in (component, store, log, delivery, admins, portal) \
            or ("metrics" in top and not metrics) or ("identd" in top and not identd):
        raise ConfigError(source, sorted(r.problems, key=lambda p: p.line))
    return Config(component, store, log, delivery, networks, links,
                  tuple(p for p in r.problems if p.warning), admins=admins, metrics=metrics,
                  portal=portal, identd=identd)


def _syntax_problem(exc: yaml.YAMLError, text: str) -> Problem:
    """PyYAML's own explanation, on one line: the problem, where, and what it was
    in the middle of (`while parsing a flow sequence` from the line it started on)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
        mark = exc.problem_mark
        message = f"{exc.problem} (column {mark.column + 1})"
        if exc.context:
            start = exc.context_mark
            since = f" from line {start.line + 1}, column {start.column + 1}" if start else ""
            message += f"; {exc.context}{since}"
        if exc.note:
            message += f"; {exc.note}"
        return Problem("(yaml)", mark.line + 1, message)
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML refuses
    line = text.count("\n", 0, position) + 1 if position is not None else 0
    return Problem("(yaml)", line, str(exc).splitlines()[0])


def warnings_for(config: Config) -> list[Problem]:
    return list(config.warnings)


def load_config(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [Problem("(file)", 0, exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(str(path), [Problem("(file)", line, f"not UTF-8 text (byte "
                                               f"{data[exc.start]:#04x})")]) from None
    return parse_config(text, str(path))


def _networks(r: _Reader, node: yaml.Node) -> dict[str, Any]:
    items = r.mapping("networks", node) or {}
    out: dict[str, Any] = {}
    for name, (key_node, value_node) in items.items():
        path = f"networks.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name == "xmpp":
            r.error(path, key_node, "network names use letters, digits, _ . - (and not 'xmpp')")
            continue
        fields_ = r.mapping(path, value_node)
        if fields_ is None:
            continue
        kind_node = fields_.get("type", (None, None))[1]
        kind = r.scalar(f"{path}.type", kind_node, str) if kind_node is not None else None
        if kind_node is None:
            r.error(f"{path}.type", value_node, "missing required key (irc or silc)")
        elif kind == "irc":
            net = r.section(path, value_node, IrcNetworkConfig, extra={"name": name},
                            secrets=("password", "webirc_password"), ignore=("type",), nested={
                                "flood": lambda p, n: r.section(p, n, FloodConfig),
                                "sasl": lambda p, n: r.section(p, n, SaslConfig, secrets=("password",)),
                            })
            out[name] = net
        elif kind == "silc":
            out[name] = r.section(path, value_node, SilcNetworkConfig, extra={"name": name},
                                  secrets=("password",), ignore=("type",))
        elif kind is not None:
            r.error(f"{path}.type", kind_node, f"unknown network type {kind!r} (irc or silc)")
    return out  # a network that failed validation maps to None: no cascade of errors


def _admins(r: _Reader, node: yaml.Node) -> tuple[str, ...] | None:
    """Admin JIDs, compared case-insensitively (as servers fold them, near enough)."""
    values = r.str_list("admins", node)
    if values is None:
        return None
    problems = [(i, item, problem) for i, (value, item) in enumerate(zip(values, node.value))
                if (problem := admin_jids((value,)))]
    for i, item, problem in problems:
        r.error(f"admins[{i}]", item, problem)
    return None if problems else tuple(v.lower() for v in values)


def _links(r: _Reader, node: yaml.Node, networks: dict[str, Any]) -> tuple[LinkConfig, ...]:
    items = r.mapping("links", node) or {}
    links = []
    for name, (_, value_node) in items.items():
        path = f"links.{name}"
        if not isinstance(value_node, yaml.SequenceNode) or len(value_node.value) < 2:
            r.error(path, value_node, "a link is a list of at least two endpoints")
            continue
        endpoints = [_endpoint(r, f"{path}[{i}]", n, networks)
                     for i, n in enumerate(value_node.value)]
        if None in endpoints:
            continue
        first: dict[tuple[str, str], int] = {}
        for i, (endpoint, n) in enumerate(zip(endpoints, value_node.value)):
            i0 = first.setdefault((endpoint.network, endpoint.room.casefold()), i)
            if i0 != i:  # it would relay the room's talk back into it
                r.error(f"{path}[{i}]", n, f"the same room as {path}[{i0}]")
        links.append(LinkConfig(name, tuple(endpoints)))
    return tuple(links)


def _endpoint(r: _Reader, path: str, node: yaml.Node, networks: dict[str, Any]) -> EndpointConfig | None:
    items = r.mapping(path, node)
    if items is None:
        return None
    kinds = [k for k in ("xmpp", "irc", "silc") if k in items]
    if len(kinds) != 1:
        r.error(path, node, "an endpoint names exactly one of xmpp:, irc:, silc:")
        return None
    kind = kinds[0]
    value_node = items[kind][1]
    target = r.scalar(f"{path}.{kind}", value_node, str)
    if target is None:
        return None
    sub = f"{path}.{kind}"
    if kind == "xmpp":
        if not _BARE_JID.match(target):
            r.error(sub, value_node, f"{target!r} is not a bare room JID (room@conference.example.org)")
            return None
        network, room = "xmpp", target.lower()
    else:
        network, _, room = target.partition("/")
        if not room:
            r.error(sub, value_node, f"expected network/{'#channel' if kind == 'irc' else 'channel'}")
            return None
        net = networks.get(network)
        if network not in networks:
            r.error(sub, value_node, f"unknown network {network!r}")
            return None
        if net is not None and not isinstance(net, IrcNetworkConfig if kind == "irc" else SilcNetworkConfig):
            r.error(sub, value_node, f"network {network!r} is not an {kind} network")
            return None
        pattern = _IRC_CHANNEL if kind == "irc" else _SILC_CHANNEL
        if not pattern.match(room):
            hint = " (IRC channels start with #, &, + or !)" if kind == "irc" else ""
            r.error(sub, value_node, f"{room!r} is not a valid channel name{hint}")
            return None
    endpoint = r.section(path, node, EndpointConfig, extra={"network": network, "room": room},
                         secrets=("passphrase",), ignore=(kind,))
    if endpoint is None:
        return None
    if endpoint.passphrase is not None and kind != "silc":
        r.error(f"{path}.passphrase", node, "only SILC endpoints take a channel passphrase")
    if endpoint.xmpp_users != "relay" and kind == "xmpp":
        r.error(f"{path}.xmpp_users", items["xmpp_users"][1], "only IRC and SILC endpoints take xmpp_users")
    return endpoint


def _portal(r: _Reader, node: yaml.Node, networks: dict[str, Any]) -> PortalConfig | None:
    """The portal section: its networks must be configured IRC networks, and a portal
    that reaches any network says who may use it."""
    portal = r.section("portal", node, PortalConfig, ignore=OLD_IDENTD)
    items = r.mapping("portal", node) or {}
    names = items.get("networks", (None, None))[1]
    for i, name_node in enumerate(names.value if isinstance(names, yaml.SequenceNode) else ()):
        name = name_node.value if isinstance(name_node, yaml.ScalarNode) else None
        if name in networks and not isinstance(networks[name], (IrcNetworkConfig, type(None))):
            r.error(f"portal.networks[{i}]", name_node, f"network {name!r} is not an irc network")
        elif name is not None and name not in networks:
            r.error(f"portal.networks[{i}]", name_node, f"unknown network {name!r}")
    if portal is not None and portal.networks and not portal.users:
        r.error("portal.users", items.get("users", (node, node))[1],
                "say who may use the portal (alice@example.org, example.org, *.example.org or *)")
        return None
    return portal


#: Where the identd was configured when it served portal users only: portal key -> identd key.
OLD_IDENTD = {"identd_port": "port", "identd_host": "host"}


def _identd(r: _Reader, top: dict[str, tuple[yaml.Node, yaml.Node]]) -> IdentdConfig | None:
    """The identd section; `portal.identd_port` and `identd_host`, its keys of old, still
    do (with a warning saying where they moved), unless it is there too."""
    portal = top.get("portal", (None, None))[1]
    old = {k.value: (k, v) for k, v in portal.value if isinstance(k, yaml.ScalarNode) and k.value in OLD_IDENTD} \
        if isinstance(portal, yaml.MappingNode) else {}
    for key, (key_node, _) in old.items():
        if "identd" in top:
            r.error(f"portal.{key}", key_node, f"the identd is configured under identd: (identd.{OLD_IDENTD[key]}); "
                    "remove this one")
        else:
            r.error(f"portal.{key}", key_node, f"moved to identd.{OLD_IDENTD[key]} (the identd answers for "
                    "portal and xmpp_users: connect connections alike); this one still works", warning=True)
    if "identd" in top:
        return r.section("identd", top["identd"][1], IdentdConfig)
    if "identd_port" not in old:
        return None
    value_node = old["identd_port"][1]
    number = r.scalar("portal.identd_port", value_node, int)
    if not number:  # 0 was the old way of saying "no identd"
        return None
    if problem := port(number):
        r.error("portal.identd_port", value_node, problem)
        return None
    host = r.scalar("portal.identd_host", old["identd_host"][1], str) if "identd_host" in old else ""
    if host and (problem := word(host)):
        r.error("portal.identd_host", old["identd_host"][1], problem)
        return None
    return IdentdConfig(number, host) if host is not None else None


# -- the files the bridge writes ----------------------------------------------


def _check_places(r: _Reader, root: yaml.Node, store: StoreConfig | None,
                  networks: dict[str, Any]) -> None:
    """The store and each SILC key_dir must be usable by this user, from this working
    directory, as `run` will be: it opens the store at once and each SILC adapter
    makes or reads its key pair when it starts."""
    if store is not None:
        node = _node_at(root, "store", "url")
        problem = _store_problem(store.url)
        if problem:
            where = node or _node_at(root, "store") or root
            r.error("store.url", where, problem if node else f"the default "
                    f"{store.url} (relative to {os.getcwd()}): {problem}")
    for name, net in networks.items():
        if isinstance(net, SilcNetworkConfig):
            node = _node_at(root, "networks", name, "key_dir")
            problem = _key_dir_problem(Path(net.key_dir))
            if problem:
                r.error(f"networks.{name}.key_dir", node or _node_at(root, "networks", name),
                        problem if node else f"the default {net.key_dir!r} "
                        f"(relative to {os.getcwd()}): {problem}")


def _secret_file_problem(path: Path) -> str | None:
    """What would keep portal users' logins from being sealed with the key in `path`."""
    path = Path(os.path.abspath(path))
    try:
        if path.is_dir():
            return f"{path} is a directory"
        if path.exists():
            return None if os.access(path, os.R_OK) else f"{path} is not readable by {_user()}"
        return _creatable(path.parent, "the key file's directory")
    except OSError as exc:  # a name too long for the file system, say
        return f"cannot be the key file: {exc.strerror}"


def _node_at(node: yaml.Node, *keys: str) -> yaml.Node | None:
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if k.value == key), None)
        if node is None:
            return None
    return node


def _store_problem(url: str) -> str | None:
    """What would keep `bridge.store.open_store(url)` from opening its database."""
    if url.startswith(POSTGRES_SCHEMES):
        try:
            from bridge.store import postgres
        except ImportError:
            return "PostgreSQL needs the asyncpg package: pip install 'muc-bridge[postgres]'"
        return postgres.problem(url)
    if not url.startswith("sqlite://"):
        scheme = url.partition("://")[0] if "://" in url else url[:20]
        # Only the scheme: a URL may hold a password.
        return (f"unsupported store {scheme!r}: use sqlite:///absolute/path.db, "
                "sqlite://relative/path.db or postgresql://user@host/database")
    name = url.removeprefix("sqlite://")
    if name == ":memory:":
        return None
    if not name or name.endswith("/"):
        return "names no database file (sqlite:///var/lib/muc-bridge/bridge.db)"
    path = Path(os.path.abspath(name))
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as exc:  # a name too long for the file system, say
        return f"cannot be a database file: {exc.strerror}"
    if is_dir:
        return f"{path} is a directory"
    if exists:
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} must be readable and writable: it {_not_writable(path)}"
        try:
            with path.open("rb") as f:
                head = f.read(16)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror}"
        if head and head != b"SQLite format 3\0":
            return f"{path} is not an SQLite database"
    # WAL mode writes its -wal and -shm files beside the database.
    try:
        return _creatable(path.parent, "the database directory")
    except OSError as exc:
        return f"cannot be a database file: {exc.strerror}"


def _key_dir_problem(key_dir: Path) -> str | None:
    """What would keep the SILC adapter from reading or making its key pair there."""
    key = Path(os.path.abspath(key_dir)) / PRIVATE_FILE
    try:
        if key.exists():
            return None if os.access(key, os.R_OK) else f"{key} is not readable by {_user()}"
        return _creatable(key.parent, "the key directory")
    except OSError as exc:  # a name too long for the file system, say
        return f"cannot hold the key pair: {exc.strerror}"


def _creatable(directory: Path, what: str) -> str | None:
    """None if `directory` is (or can be made) a directory this user writes in."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{what} {directory} is not a directory" if existing == directory else (
            f"cannot make {what} {directory}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write in" if existing == directory else "make"
        return f"cannot {verb} {what} {directory}: {existing} {_not_writable(existing)}"
    return None


def _not_writable(path: Path) -> str:
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return "is on a read-only file system"
    return f"is not writable by {_user()}"


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
