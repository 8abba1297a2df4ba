"""Redis with Sentinel (Debian's redis-server and redis-sentinel 7.0): one primary (n1), the other
nodes its replicas, and a sentinel beside every node that fails the primary over when a majority
of sentinels cannot reach it.

Replication is asynchronous, so a primary cut off from the others keeps acknowledging writes
that the promoted replica never received; when the partition heals, the old primary becomes a
replica of the new one and drops them (Jepsen's 2013 analysis of Redis Sentinel). The store
options are the mitigations that do not close that hole: `wait` (WAIT 1 after each write: the
acknowledgement waits for one replica, but an unreplicated write is not undone, so its outcome
is unknown) and `min-replicas` (min-replicas-to-write 1: a primary that has lost its replicas
for 10 s refuses writes).

The client speaks RESP over one TCP connection per worker and node (asyncio streams, no library).
Operations: SADD/SMEMBERS for the set workload; GET, SET and a compare-and-set script (EVAL) for
cas-register, which the `register` workload becomes here. Outcomes: a refused connection,
READONLY (a replica), NOREPLICAS and a cas whose compare did not hold are `fail`; a timeout or a
dropped connection is `info` for a write, `fail` for a read.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

from harness.client import Client, OpFailed, OpUnknown, Reply
from harness.platforms.base import ADMIN_TIMEOUT_S, NodeSpec
from harness.settings import ClusterSettings
from harness.stores.base import Roles, Sidecars, Store, version_output

MASTER = "harness"
WAIT = "wait"
MIN_REPLICAS = "min-replicas"
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 6000


class RespError(Exception):
    """An error reply (`-ERR ...`)."""


def encode(*args: Any) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        data = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [await read_reply(reader) for _ in range(n)]
    raise RespError(f"unreadable reply {line[:40]!r}")


def command_sync(host: str, port: int, *args: Any, timeout_s: float = ADMIN_TIMEOUT_S) -> Any:
    """One command on a fresh blocking connection (for probes outside the event loop)."""

    async def run() -> Any:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(encode(*args))
            await writer.drain()
            return await read_reply(reader)
        finally:
            writer.close()

    return asyncio.run(asyncio.wait_for(run(), timeout_s))


# compare-and-set as one atomic script on the primary (a replica refuses it: READONLY)
CAS_SCRIPT = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
              "redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0")


class RedisClient(Client):
    ops = frozenset({"add", "read-set", "read", "write", "cas"})

    def __init__(self, session: aiohttp.ClientSession, node: str, base_url: str,
                 timeout_s: float, wait: bool = False) -> None:
        super().__init__(session, node, base_url, timeout_s)
        url = urlparse(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", int(url.port or 6379)
        self.timeout_s = timeout_s
        self.wait = wait
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def add(self, key: str, element: Any) -> Reply:
        await self._call("SADD", key, element, write=True)
        if self.wait:
            acked = await self._call("WAIT", 1, int(self.timeout_s * 1000 * 0.8), write=True)
            if not acked:
                raise OpUnknown("WAIT 1: no replica acknowledged the write (it stays on the "
                                "primary, and may or may not survive)")
        return Reply(values=[element])

    async def read_set(self, key: str) -> Reply:
        members = await self._call("SMEMBERS", key, write=False)
        return Reply(values=[_number(m) for m in members or []])

    async def get(self, key: str) -> Reply:
        """GET of a string key; the value is the JSON text `put` stored."""
        raw = await self._call("GET", key, write=False)
        if raw is None:
            return Reply(values=[], found=False)
        try:
            return Reply(values=[json.loads(raw)])
        except ValueError:
            return Reply(values=[raw])  # not written by us; recorded as it is

    async def put(self, key: str, value: Any, context: str | None = None) -> Reply:
        """SET of a string key to the value's JSON text (WAIT 1 after it with `wait`, as `add`)."""
        await self._call("SET", key, json.dumps(value), write=True)
        await self._wait_for_a_replica()
        return Reply(values=[value])

    async def cas(self, key: str, old: Any, new: Any) -> Reply:
        """`put` of `new` if the key holds `old` (an EVAL of CAS_SCRIPT); `fail` if it did not."""
        done = await self._call("EVAL", CAS_SCRIPT, 1, key, json.dumps(old), json.dumps(new),
                                write=True)
        if not done:
            raise OpFailed(f"cas: the value was not {json.dumps(old)}")
        await self._wait_for_a_replica()
        return Reply(values=[new])

    async def _wait_for_a_replica(self) -> None:
        if self.wait and not await self._call("WAIT", 1, int(self.timeout_s * 800), write=True):
            raise OpUnknown("WAIT 1: no replica acknowledged the write")

    async def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def _call(self, *args: Any, write: bool) -> Any:
        try:
            if self._conn is None:
                self._conn = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout_s)
        except (OSError, TimeoutError) as e:
            self._conn = None
            raise OpFailed(f"connect failed: {e}") from e  # nothing was sent
        reader, writer = self._conn
        try:
            writer.write(encode(*args))
            await writer.drain()
            return await asyncio.wait_for(read_reply(reader), self.timeout_s)
        except RespError as e:
            # READONLY (a replica), NOREPLICAS (min-replicas-to-write): refused before writing
            raise OpFailed(str(e)) from e
        except TimeoutError as e:
            await self.close()  # a late reply must not answer the next command
            raise OpUnknown("timeout") from e
        except (OSError, asyncio.IncompleteReadError) as e:
            await self.close()
            raise OpUnknown(f"{type(e).__name__}: {e}") from e


def _number(v: Any) -> Any:
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


class RedisStore(Store, Sidecars, Roles):
    name = "redis"
    description = ("Redis 7 with Sentinel (Debian's redis-server, redis-sentinel): a primary, "
                   "asynchronous replicas, failover by sentinels")
    client_class = RedisClient
    faults = frozenset({"partition", "pause"})
    unsupported_faults = {
        "clock": "not wired for Redis yet",
        "crash": "not wired for Redis yet (a restarted node must rejoin as what Sentinel says)",
        "packet": "not wired for outside stores yet",
        "wipe": "not wired for Redis yet (a primary restarted empty before Sentinel fails it "
                "over would hand its empty data set to its replicas)",
    }
    platforms = ("local", "netns", "docker", "ssh")
    options = {
        WAIT: "WAIT 1 after each add: acknowledged once a replica has it; an add no replica "
              "took is unknown (Redis keeps it on the primary)",
        MIN_REPLICAS: "min-replicas-to-write 1 / min-replicas-max-lag 10: a primary without a "
                      "replica for 10 s refuses writes",
    }
    ready_probe = "PING"
    roles = frozenset({"primary"})

    def __init__(self, cluster: ClusterSettings, options: Sequence[str] = ()) -> None:
        super().__init__(cluster, options)
        self._primary: NodeSpec | None = None

    @classmethod
    def missing(cls) -> str | None:
        if shutil.which("redis-server") is None or shutil.which("redis-sentinel") is None:
            return ("the redis store needs redis-server and redis-sentinel: "
                    "apt-get install redis-server redis-sentinel")
        return None

    def layout(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        # paths in the files are relative to the node's folder (every platform runs the node
        # and its sentinel there): the docker platform mounts `root` elsewhere
        primary = specs[0]
        self._primary = primary
        for s in specs:
            d = root / s.id
            (d / "data").mkdir(parents=True, exist_ok=True)
            # set-proc-title no: the harness knows its processes by their command line
            lines = [f"bind {s.host}", f"port {s.client_port}", "protected-mode no",
                     "set-proc-title no",
                     "daemonize no", 'logfile ""', "dir data", 'save ""',
                     "appendonly no", f"replica-announce-ip {s.host}"]
            if MIN_REPLICAS in self.option_names:
                lines += ["min-replicas-to-write 1", "min-replicas-max-lag 10"]
            if s is not primary:
                lines.append(f"replicaof {primary.host} {primary.client_port}")
            (d / "redis.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
            sentinel = [f"bind {s.host}", f"port {s.peer_port}", "protected-mode no",
                        "set-proc-title no",
                        "daemonize no", 'logfile ""', "dir .",
                        f"sentinel announce-ip {s.host}",
                        f"sentinel monitor {MASTER} {primary.host} {primary.client_port} "
                        f"{len(specs) // 2 + 1}",
                        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                        f"sentinel parallel-syncs {MASTER} 1"]
            (d / "sentinel.conf").write_text("\n".join(sentinel) + "\n", encoding="utf-8")

    def command(self, spec: NodeSpec, root: Path) -> list[str]:
        return [shutil.which("redis-server") or "redis-server", str(root / spec.id / "redis.conf")]

    def sidecars(self, spec: NodeSpec, root: Path) -> dict[str, list[str]]:
        return {"sentinel": [shutil.which("redis-sentinel") or "redis-sentinel",
                             str(root / spec.id / "sentinel.conf")]}

    def is_ready(self, spec: NodeSpec) -> bool:
        try:
            return command_sync(spec.host, spec.client_port, "PING") == "PONG"
        except (OSError, TimeoutError, RespError, asyncio.IncompleteReadError):
            return False

    def settled(self, specs: Sequence[NodeSpec]) -> bool:
        """One primary, every other node its replica with the link up and nothing to catch up:
        the final reads then see what failover and resynchronisation kept."""
        roles = {}
        for s in specs:
            try:
                info = command_sync(s.host, s.client_port, "INFO", "replication")
            except (OSError, TimeoutError, RespError, asyncio.IncompleteReadError):
                return False
            fields = dict(line.split(":", 1) for line in str(info).splitlines() if ":" in line)
            roles[s.id] = fields
        primaries = [n for n, f in roles.items() if f.get("role") == "master"]
        if len(primaries) != 1:
            return False
        offset = roles[primaries[0]].get("master_repl_offset")
        return all(f.get("master_link_status") == "up" and f.get("slave_repl_offset") == offset
                   for n, f in roles.items() if n != primaries[0])

    def holder(self, role: str, specs: Sequence[NodeSpec]) -> str | None:
        """The primary as most sentinels name it (`SENTINEL get-master-addr-by-name`)."""
        if role != "primary":
            return None
        votes: dict[tuple[str, int], int] = {}
        for s in specs:
            try:
                addr = command_sync(s.host, s.peer_port, "SENTINEL", "get-master-addr-by-name",
                                    MASTER)
            except (OSError, TimeoutError, RespError, asyncio.IncompleteReadError):
                continue
            if isinstance(addr, list) and len(addr) == 2:
                key = (str(addr[0]), int(addr[1]))
                votes[key] = votes.get(key, 0) + 1
        if not votes:
            return None
        host, port = max(votes, key=lambda k: votes[k])
        return next((s.id for s in specs if (s.host, s.client_port) == (host, port)), None)

    def client(self, session: aiohttp.ClientSession, node: str, url: str,
               timeout_s: float, final: bool = False) -> Client:
        return RedisClient(session, node, url, timeout_s, wait=WAIT in self.option_names)

    def version(self) -> str | None:
        binary = shutil.which("redis-server")
        if binary is None:
            return None
        out = version_output(binary)
        for part in out.split():
            if part.startswith("v="):
                return part[2:]
        return None
