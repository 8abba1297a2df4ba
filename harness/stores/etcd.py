"""etcd (Debian's `etcd-server`, 3.4), spoken to over its v3 HTTP/JSON gateway.

Each node is one member; the cluster is formed at first start from `--initial-cluster`, and a
member killed and started again rejoins from its data directory (etcd ignores the initial-cluster
flags once it has data). Reads are linearizable unless the `serializable-reads` option asks for
etcd's serializable reads, which any member answers from its own state, stale or not.

Outcomes: a refused connection sent nothing (`fail`); a 4xx answer (bad request, too many
requests) was rejected before it was proposed (`fail`); a timeout, a dropped connection or any
other error (`request timed out`, `leader changed`, `no leader`) may have been committed (`info`,
or `fail` for a read, which has no effect either way). A cas whose compare did not hold is `fail`.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import requests

from harness.client import Client, OpFailed, OpUnknown, Reply
from harness.platforms.base import ADMIN_TIMEOUT_S, NodeSpec
from harness.settings import ClusterSettings
from harness.stores.base import Store, version_output

SERIALIZABLE = "serializable-reads"
DATA_DIR = "data"


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def encode_value(value: Any) -> str:
    """A register value as etcd holds it: its JSON text, base64'd for the gateway."""
    return _b64(json.dumps(value))


def decode_value(b64: str | None) -> Any:
    raw = base64.b64decode(b64 or "").decode("utf-8", errors="replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # not written by us; recorded as it is


class EtcdClient(Client):
    """`/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn` and `/v3/kv/deleterange` on one member."""

    ops = frozenset({"read", "write", "cas", "delete"})

    def __init__(self, session: aiohttp.ClientSession, node: str, base_url: str,
                 timeout_s: float, serializable: bool = False) -> None:
        super().__init__(session, node, base_url, timeout_s)
        self.serializable = serializable

    async def get(self, key: str) -> Reply:
        request: dict[str, Any] = {"key": _b64(key)}
        if self.serializable:
            request["serializable"] = True
        body = await self._call("range", request)
        meta = _header(body)
        kvs = body.get("kvs") or []
        if not kvs:
            return Reply(values=[], found=False, meta=meta)
        meta["mod_revision"] = int(kvs[0].get("mod_revision", 0))
        return Reply(values=[decode_value(kvs[0].get("value"))], meta=meta)

    async def put(self, key: str, value: Any, context: str | None = None) -> Reply:
        body = await self._call("put", {"key": _b64(key), "value": encode_value(value)})
        return Reply(values=[value], meta=_header(body))

    async def cas(self, key: str, old: Any, new: Any) -> Reply:
        body = await self._call("txn", {
            "compare": [{"key": _b64(key), "target": "VALUE", "result": "EQUAL",
                         "value": encode_value(old)}],
            "success": [{"requestPut": {"key": _b64(key), "value": encode_value(new)}}],
        })
        # proto3 JSON leaves false out: no "succeeded" means the compare did not hold
        if not body.get("succeeded"):
            raise OpFailed(f"cas: the value was not {json.dumps(old)}")
        return Reply(values=[new], meta=_header(body))

    async def delete(self, key: str, context: str | None = None) -> Reply:
        body = await self._call("deleterange", {"key": _b64(key)})
        return Reply(values=[], found=False, meta=_header(body))

    async def _call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/v3/kv/{method}"
        try:
            async with self.session.post(url, json=request, timeout=self.timeout) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {"error": "unreadable body", "message": (await resp.text())[:200]}
                status = resp.status
        except aiohttp.ClientConnectorError as e:
            raise OpFailed(f"connect failed: {e.os_error or e}") from e  # nothing was sent
        except TimeoutError as e:
            raise OpUnknown("timeout") from e
        except aiohttp.ClientError as e:
            raise OpUnknown(f"{type(e).__name__}: {e}") from e
        if not isinstance(body, dict):
            body = {"body": body}
        if status == 200 and "error" not in body:
            return body
        return self._error(status, body)

    @staticmethod
    def _error(status: int, body: dict[str, Any]) -> dict[str, Any]:
        message = f"{status} {body.get('message') or body.get('error') or 'error'}"
        if "code" in body:
            message += f" (grpc code {body['code']})"
        # 4xx: rejected before it was proposed; 499 is a cancelled call, which may have been
        if 400 <= status < 500 and status != 499:
            raise OpFailed(message)
        raise OpUnknown(message)


def _header(body: dict[str, Any]) -> dict[str, Any]:
    header = body.get("header") or {}
    meta: dict[str, Any] = {}
    if "revision" in header:
        meta["revision"] = int(header["revision"])
    return meta


class EtcdStore(Store):
    name = "etcd"
    description = "etcd 3.4 (Debian's etcd-server): Raft, linearizable reads by default"
    client_class = EtcdClient
    faults = frozenset({"partition", "crash", "pause"})
    unsupported_faults = {
        "clock": "etcd is a Go program, which reads the clock through the vDSO where "
                 "libfaketime cannot reach it",
        "packet": "not wired for outside stores yet",
        "wipe": "a member that lost its data must be removed and added again (etcdctl member "
                "remove/add) before it may rejoin; the harness does not do that",
    }
    platforms = ("local", "netns", "docker", "ssh")
    options = {SERIALIZABLE: "reads with serializable = true: any member answers from its own "
                             "state, which may be stale (etcd documents it)"}
    ready_probe = "/health"

    def __init__(self, cluster: ClusterSettings, options: Sequence[str] = (),
                 token: str | None = None) -> None:
        super().__init__(cluster, options)
        self.token = token or secrets.token_hex(8)  # no two clusters ever join each other
        self.initial_cluster = ""

    @classmethod
    def missing(cls) -> str | None:
        if etcd_binary() is None:
            return "the etcd store needs the etcd program: apt-get install etcd-server"
        return None

    def layout(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        for s in specs:
            (root / s.id).mkdir(parents=True, exist_ok=True)
        self.initial_cluster = ",".join(f"{s.id}=http://{s.host}:{s.peer_port}" for s in specs)
        (root / "etcd-cluster.txt").write_text(self.initial_cluster + "\n", encoding="utf-8")

    def command(self, spec: NodeSpec, root: Path) -> list[str]:
        if not self.initial_cluster:  # attached to a cluster laid out earlier
            self.initial_cluster = (root / "etcd-cluster.txt").read_text().strip()
        client = f"http://{spec.host}:{spec.client_port}"
        peer = f"http://{spec.host}:{spec.peer_port}"
        return [etcd_binary() or "etcd", "--name", spec.id,
                "--data-dir", str(root / spec.id / DATA_DIR),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"harness-{self.token}",
                "--logger", "zap", "--log-outputs", "stderr"]

    def is_ready(self, spec: NodeSpec) -> bool:
        # /health is true once the member has a leader and can serve a quorum read
        try:
            resp = requests.get(f"{spec.url}/health", timeout=ADMIN_TIMEOUT_S)
            return resp.status_code == 200 and resp.json().get("health") == "true"
        except (requests.RequestException, ValueError, AttributeError):
            return False

    def client(self, session: aiohttp.ClientSession, node: str, url: str,
               timeout_s: float, final: bool = False) -> Client:
        return EtcdClient(session, node, url, timeout_s,
                          serializable=SERIALIZABLE in self.option_names)

    def version(self) -> str | None:
        binary = etcd_binary()
        if binary is None:
            return None
        out = version_output(binary)
        first = out.splitlines()[0] if out else ""
        return first.split(":", 1)[1].strip() if ":" in first else None
