"""The ssh platform's hosts file (`--hosts hosts.toml`): which machines, and how to reach them.

A pure parser: every host gets its settings from its own table, else `[defaults]`, else the
built-in defaults below. Nothing here opens a connection; the file is the whole list of machines
the platform may ever run anything on.

```toml
[defaults]
user = "root"                        # the SSH user
port = 22
key = "~/.ssh/id_ed25519"            # a private key file; or agent = true (SSH_AUTH_SOCK)
sudo = false                         # prefix iptables with `sudo -n` (a user that is not root)
dir = "/var/tmp/dynamo-harness"      # where runs put their files on the host
python = "python3"                   # the host's Python 3.11+ (the reference store)
client_port = 8000                   # the node's ports on the host
peer_port = 9000
known_hosts = "~/.ssh/known_hosts"   # unless --known-hosts or --insecure-accept-host-keys

[[hosts]]
name = "db1"                         # a label for messages and the report (default: address)
address = "203.0.113.11"
```
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_DIR = "/var/tmp/dynamo-harness"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
HOST_KEYS = {"name", "address", "port", "user", "key", "agent", "sudo", "dir", "python",
             "client_port", "peer_port", "faketime"}
DEFAULT_KEYS = (HOST_KEYS - {"name", "address"}) | {"known_hosts", "connect_timeout"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class HostsFileError(ValueError):
    """The hosts file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key: str | None = None  # a private key file (expanded); None with agent
    agent: bool = False
    sudo: bool = False
    dir: str = DEFAULT_DIR
    python: str = "python3"
    client_port: int = 8000
    peer_port: int = 9000
    faketime: str | None = None  # libfaketime on the host; None: looked for where Debian puts it

    @property
    def where(self) -> str:
        """`name (user@address:port)`, for every message about this host."""
        return f"{self.name} ({self.user}@{self.address}:{self.port})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HostsFile:
    path: str
    hosts: tuple[Host, ...]
    known_hosts: str | None  # from the file's [defaults]; None: not given there
    connect_timeout: float

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def _typed(where: str, key: str, value: Any) -> Any:
    kinds: dict[str, type | tuple[type, ...]] = {
        "port": int, "client_port": int, "peer_port": int, "agent": bool, "sudo": bool,
        "connect_timeout": (int, float)}
    want = kinds.get(key, str)
    if isinstance(value, bool) and want is not bool:
        raise HostsFileError(f"{where}: {key} must be {_kind(want)}, not a boolean")
    if not isinstance(value, want):
        raise HostsFileError(f"{where}: {key} must be {_kind(want)} (got {value!r})")
    if key in ("port", "client_port", "peer_port") and not 1 <= value <= 65535:
        raise HostsFileError(f"{where}: {key} must be 1..65535 (got {value})")
    if key == "connect_timeout" and value <= 0:
        raise HostsFileError(f"{where}: connect_timeout must be positive (got {value})")
    if key in ("dir", "python", "faketime", "user") and (not value or "\n" in value):
        raise HostsFileError(f"{where}: {key} must be a non-empty line (got {value!r})")
    if key == "dir" and not value.startswith("/"):
        raise HostsFileError(f"{where}: dir must be an absolute path on the host (got {value!r})")
    return value


def _kind(want: type | tuple[type, ...]) -> str:
    return {int: "an integer", bool: "true or false", str: "a string"}.get(
        want if isinstance(want, type) else int, "a number")


def parse_hosts(text: str, path: str = "hosts.toml") -> HostsFile:
    """A hosts file from its TOML text; HostsFileError says what is wrong, and where."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HostsFileError(f"{path}: not valid TOML: {e}") from None
    unknown = set(data) - {"defaults", "hosts"}
    if unknown:
        raise HostsFileError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; "
                             "a hosts file has [defaults] and [[hosts]]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise HostsFileError(f"{path}: [defaults] must be a table")
    bad = set(defaults) - DEFAULT_KEYS
    if bad:
        raise HostsFileError(f"{path} [defaults]: unknown key(s) {', '.join(sorted(bad))}; "
                             f"known: {', '.join(sorted(DEFAULT_KEYS))}")
    for k, v in defaults.items():
        _typed(f"{path} [defaults]", k, v)
    rows = data.get("hosts")
    if not isinstance(rows, list) or not rows:
        raise HostsFileError(f"{path}: no hosts; list each as a [[hosts]] table with an address")
    hosts: list[Host] = []
    for i, row in enumerate(rows):
        where = f"{path} host {i + 1}"
        if not isinstance(row, dict):
            raise HostsFileError(f"{where}: must be a table")
        bad = set(row) - HOST_KEYS
        if bad:
            raise HostsFileError(f"{where}: unknown key(s) {', '.join(sorted(bad))}; "
                                 f"known: {', '.join(sorted(HOST_KEYS))}")
        address = row.get("address")
        if not isinstance(address, str) or not _address_ok(address):
            raise HostsFileError(f"{where}: address must be an IPv4 address or a host name "
                                 f"(got {address!r})")
        name = row.get("name", address)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise HostsFileError(f"{where}: name must be letters, digits, '.', '_' or '-' "
                                 f"(got {name!r})")
        where = f"{path} host {name}"
        merged = {k: v for k, v in defaults.items() if k in HOST_KEYS}
        merged.update({k: v for k, v in row.items() if k not in ("name", "address")})
        for k, v in merged.items():
            _typed(where, k, v)
        agent = bool(merged.get("agent", False))
        key = merged.get("key")
        if agent and "key" in row:
            raise HostsFileError(f"{where}: give either key or agent = true, not both")
        if agent:
            key = None
        elif key is None:
            raise HostsFileError(f"{where}: no key; give key = \"PATH\" (a private key file) or "
                                 "agent = true, here or in [defaults]")
        else:
            key = str(Path(key).expanduser())
        hosts.append(Host(name=name, address=address, port=merged.get("port", 22),
                          user=merged.get("user", "root"), key=key, agent=agent,
                          sudo=merged.get("sudo", False), dir=merged.get("dir", DEFAULT_DIR),
                          python=merged.get("python", "python3"),
                          client_port=merged.get("client_port", 8000),
                          peer_port=merged.get("peer_port", 9000),
                          faketime=merged.get("faketime")))
    _check_unique(path, hosts)
    known = defaults.get("known_hosts")
    return HostsFile(path=path, hosts=tuple(hosts),
                     known_hosts=str(Path(known).expanduser()) if known else None,
                     connect_timeout=float(defaults.get("connect_timeout", 10)))


def _address_ok(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return bool(HOSTNAME.fullmatch(address)) and not address.replace(".", "").isdigit()


def _check_unique(path: str, hosts: list[Host]) -> None:
    seen: dict[str, str] = {}
    for h in hosts:
        if h.name in seen.values():
            raise HostsFileError(f"{path}: two hosts are named {h.name}")
        # partitions drop by source address: two nodes on one address cannot be told apart
        if h.address in seen:
            raise HostsFileError(f"{path}: hosts {seen[h.address]} and {h.name} have the same "
                                 f"address {h.address}; one node per host")
        seen[h.address] = h.name


def load_hosts(path: Path | str) -> HostsFile:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise HostsFileError(f"cannot read the hosts file {p}: {e.strerror or e}") from None
    return parse_hosts(text, str(p))
