"""A fuzzing campaign against a running 3-node cluster (issue 17), driven by hypothesis.

    python benchmarks/fuzz.py --seconds 60 [--seed N] [--json figures.json]

Half the time goes to HTTP (random and mutated requests to every route: methods, paths, query
parameters, headers, bodies, contexts read from the store and then altered; some as raw bytes),
half to internode frames sent after a valid handshake as member n2 (every request kind with
well-shaped and random bodies, sibling sets valid and mangled, big integers, deep nesting).
Each answer must be one the contract allows: HTTP 2xx, 4xx or 503 (a 500 or a dropped
connection is a finding); an internode reply frame, ok or an error (a closed connection is a
finding). Throughout, every node must stay alive; their peak RSS is sampled. Keys `known-*`,
written before the campaign, are never targeted and must read back unchanged. Exit 0 when
nothing was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import re
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from nodeproc import LocalCluster  # noqa: E402
from rogue_peer import RoguePeer, read_one  # noqa: E402

SECRET = "test-cluster-secret-0123456789"  # nodeproc's
TOKEN = "test-token"
KNOWN = [f"known-{i}" for i in range(12)]
KINDS = ["read", "replicate", "hint", "read_hints", "hints_for", "read_many", "replicate_many",
         "aae", "reap", "coord_put", "gossip", "ping", "overwrite", "nonsense"]


def http_ok(status: int) -> bool:
    """What the contract allows (docs/node-api.md): a 500 is a crash, anything else 5xx too."""
    return 200 <= status < 300 or 400 <= status < 500 or status == 503


class _Stop(Exception):
    """Time is up: ends a hypothesis run early (not a failure)."""


@dataclass
class Campaign:
    cluster: LocalCluster
    deadline: float = 0.0
    requests: int = 0
    raw_requests: int = 0
    frames: int = 0
    handshakes: int = 0
    reconnects: int = 0
    findings: dict[str, str] = field(default_factory=dict)  # distinct signature -> example
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    _peer: RoguePeer | None = None

    def finding(self, signature: str, example: str) -> None:
        if signature not in self.findings:
            print(f"FINDING {signature}: {example[:300]}", flush=True)
            self.findings[signature] = example[:2000]

    # ---- HTTP ----

    def http(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        if time.monotonic() > self.deadline:
            raise _Stop
        if "known-" in path:
            return
        nid = random.choice(self.cluster.ids)
        conn = http.client.HTTPConnection(self.cluster.hosts[nid],
                                          self.cluster.client_ports[nid], timeout=20)
        self.requests += 1
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except ValueError:
                self.requests -= 1
                return  # the client library refused to send it (control characters)
            resp = conn.getresponse()
            text = resp.read()[:500]
            if not http_ok(resp.status):
                code = _error_code(text)
                self.finding(f"http {resp.status} {code}", f"{method} {path} {headers} "
                             f"{body[:300] if body else body!r} -> {text!r}")
        except (http.client.HTTPException, OSError) as e:
            self.finding(f"http connection {type(e).__name__}",
                         f"{method} {path} {headers} -> {e}")
        finally:
            conn.close()

    def raw(self, data: bytes) -> None:
        if time.monotonic() > self.deadline:
            raise _Stop
        if b"known-" in data:
            return
        nid = random.choice(self.cluster.ids)
        self.raw_requests += 1
        with socket.create_connection((self.cluster.hosts[nid],
                                       self.cluster.client_ports[nid]), 10) as s:
            s.settimeout(10)
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = s.recv(64)
            except (ConnectionResetError, TimeoutError, BrokenPipeError):
                return  # a node may hang up on garbage; only its survival matters here
            if got.startswith(b"HTTP/") and got[9:10] == b"5" and got[9:12] != b"503":
                self.finding(f"raw http {got[9:12].decode(errors='replace')}", repr(data[:300]))

    # ---- internode ----

    def peer(self) -> RoguePeer:
        if self._peer is None:
            p = RoguePeer((self.cluster.hosts["n1"], self.cluster.peer_ports["n1"]))
            if not p.handshake(SECRET, "dynamo", "n2", "n1"):
                p.close()
                self.finding("handshake refused", "a valid handshake was refused")
                raise _Stop
            self._peer = p
            self.reconnects += 1
        return self._peer

    def frame(self, kind: str, body: Any, mangle: int | None) -> None:
        if time.monotonic() > self.deadline:
            raise _Stop
        try:
            packed = msgpack.packb(body, use_bin_type=True)
        except (OverflowError, ValueError, TypeError):
            return
        if b"known-" in packed:
            return
        try:  # what the node can decode (its msgpack refuses non-string map keys, for one)
            msgpack.unpackb(msgpack.packb([0, 1, "n2", kind, body], use_bin_type=True),
                            raw=False)
            decodable = True
        except Exception:  # noqa: BLE001 - msgpack raises several unrelated types
            decodable = False
        p = self.peer()
        self.frames += 1
        data = p.sealed(kind, body)
        if mangle is not None or not decodable:
            # an altered or undecodable frame: the node must hang up, and keep serving
            buf = bytearray(data)
            if mangle is not None:
                buf[4 + mangle % (len(buf) - 4)] ^= 0x40
            p.sock.sendall(bytes(buf))
            if not p.closed():
                self.finding("altered or undecodable frame not refused", f"{kind} {body!r}"[:300])
            p.close()
            self._peer = None
            return
        try:
            p.sock.sendall(data)
            reply = p.reply()
        except (OSError, ValueError) as e:
            reply, why = None, str(e)
        else:
            why = "closed"
        if reply is None:
            self.finding(f"frame {kind}: connection {why}", f"{kind} {body!r}"[:300])
            p.close()
            self._peer = None
            return
        if not (isinstance(reply, list) and len(reply) == 5 and reply[0] == 1):
            self.finding(f"frame {kind}: bad reply", f"{kind} {body!r} -> {reply!r}"[:300])

    def hello(self, first: Any, second: Any) -> None:
        """A stranger's handshake: whatever it sends, the node hangs up or challenges it, and
        never accepts it (it does not hold the secret)."""
        if time.monotonic() > self.deadline:
            raise _Stop
        try:
            one, two = (msgpack.packb(m, use_bin_type=True) for m in (first, second))
        except (OverflowError, ValueError, TypeError):
            return
        self.handshakes += 1
        p = RoguePeer((self.cluster.hosts["n1"], self.cluster.peer_ports["n1"]))
        try:
            p.send_raw(one)
            got = read_one(p.sock)
            if got is not None:
                p.send_raw(two)
                p.send_raw(msgpack.packb([0, 1, "n2", "ping", None], use_bin_type=True))
                if read_one(p.sock) is not None:
                    self.finding("stranger accepted", f"{first!r} {second!r}"[:300])
        except OSError:
            pass
        finally:
            p.close()

    # ---- health ----

    def sample(self) -> None:
        for nid, proc in self.cluster.procs.items():
            if proc.poll() is not None:
                self.finding(f"node {nid} died", f"exit {proc.returncode}: "
                             f"{self.cluster.log_text(nid)[-1500:]}")
                continue
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) / 1024
                        self.peak_rss_mib[nid] = max(self.peak_rss_mib.get(nid, 0.0), rss)
            except OSError:
                pass


def _error_code(text: bytes) -> str:
    try:
        return str(json.loads(text).get("error"))
    except (ValueError, AttributeError):
        return text[:40].decode(errors="replace")


# ---- strategies ----

KEYS = st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(["a", "b", "cart-1", "x/y"]),
                 st.text(min_size=1000, max_size=1100))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=30),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20)


def _contexts(c: Campaign) -> st.SearchStrategy[Any]:
    def read_one(key: str) -> str | None:
        try:
            r = requests.get(c.cluster.url("n1", f"/kv/{key}"), timeout=10)
            return r.json().get("context")
        except (requests.RequestException, ValueError):
            return None

    cache: dict[str, tuple[int, str | None]] = {}

    def cached(key: str) -> str | None:  # a read per draw would halve the request rate
        n, ctx = cache.get(key, (0, None))
        if n % 20 == 0:
            ctx = read_one(key)
        cache[key] = (n + 1, ctx)
        return ctx

    base = st.sampled_from(["a", "b"]).map(cached)
    return st.one_of(
        st.none(), st.text(max_size=60), base,
        st.tuples(base, st.integers(0, 200), st.characters()).map(
            lambda t: None if t[0] is None else
            t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1) + 1:]),
        st.lists(st.tuples(st.text(max_size=12), st.integers(-5, 2**64), st.integers(-5, 2**64)),
                 max_size=3).map(lambda e: "c1." + __import__("base64").urlsafe_b64encode(
                     msgpack.packb([list(x) for x in e], use_bin_type=True)).decode()
                 if all(abs(v) < 2**64 for x in e for v in x[1:]) else "c1.x"))


def http_requests(c: Campaign) -> st.SearchStrategy[tuple]:
    path = st.one_of(
        KEYS.map(lambda k: "/kv/" + requests.utils.quote(k, safe="")),
        KEYS.map(lambda k: "/admin/replicas/" + requests.utils.quote(k, safe="")),
        st.sampled_from(["/admin/status", "/admin/stats", "/admin/aae", "/admin/clock",
                         "/admin/faults/partition", "/", "/kv/", "/kv", "/admin/",
                         "/kv/%ff%fe", "/kv/%00", "/kv/" + "a" * 5000]),
        st.text(max_size=50).map(lambda t: "/" + requests.utils.quote(t)))
    query = st.dictionaries(st.sampled_from(["r", "w", "pr", "pw", "timeout_ms", "zz"]),
                            st.one_of(st.integers(-3, 5).map(str), st.text(max_size=5),
                                      st.sampled_from(["1", "2", "3", "99999999999999999999",
                                                       "60000"])), max_size=3)
    headers = st.dictionaries(
        st.sampled_from(["Content-Type", "Authorization", "X-Admin-Token", "Accept",
                         "Content-Encoding", "X-Junk"]),
        st.one_of(st.sampled_from(["application/json", "Bearer x", TOKEN, "gzip", ""]),
                  st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                          max_size=20)), max_size=3)
    body = st.one_of(
        st.none(),
        st.fixed_dictionaries({"value": JSON, "context": _contexts(c)}).map(
            lambda d: json.dumps(d).encode()),
        st.fixed_dictionaries({"drop_from": st.lists(st.sampled_from(["n1", "n2", "n3", "n9"]),
                                                     max_size=2)}).map(
            lambda d: json.dumps(d).encode()),
        st.sampled_from([b'{"value": "\\ud800", "context": null}', b"[" * 5000, b"{}",
                         b'{"value": 1, "context": null, "x": 1}', b"\xff\xfe", b"null",
                         b'{"value": ' + b"[" * 3000 + b"]" * 3000 + b', "context": null}']),
        st.binary(max_size=200))
    method = st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD", "OPTIONS"])
    return st.tuples(method, path, query, headers, body)


RAW = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from([b"GET /kv/a HTTP/1.1\r\nHost: x\r\n\r\n",
                               b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\n\r\n"
                               b'{"value": 1, "context": null}',
                               b"GET /admin/status HTTP/1.1\r\nHost: x\r\n\r\n",
                               b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"5\r\n{\"va\r\n0\r\n\r\n"]),
              st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4)).map(
        lambda t: _mutate(t[0], t[1])))


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, byte in edits:
        buf[pos % len(buf)] = byte
    return bytes(buf)


def _blob(versions: list[tuple]) -> bytes:
    return msgpack.packb([list(v) for v in versions], use_bin_type=True)


ANY = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
                   | st.text(max_size=20) | st.binary(max_size=40) | st.floats(),
                   lambda kids: st.lists(kids, max_size=5)
                   # mostly string keys: a frame with another key type is refused whole
                   | st.dictionaries(st.one_of(*[st.text(max_size=6)] * 5, st.integers(0, 5)),
                                     kids, max_size=4),
                   max_leaves=25)
VERSION = st.tuples(st.text(max_size=12), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
                    st.lists(st.tuples(st.text(max_size=8), st.integers(0, 2**63 - 1),
                                       st.integers(0, 2**63 - 1)).map(list), max_size=3),
                    st.one_of(st.none(), st.text(max_size=20).map(json.dumps)), st.booleans())
BLOB = st.one_of(st.lists(VERSION, max_size=3).map(_blob), st.binary(max_size=60))
FKEY = st.one_of(st.sampled_from(["a", "b", "fz"]), st.text(max_size=10))


def frames() -> st.SearchStrategy[tuple]:
    shaped = st.one_of(
        st.tuples(st.just("read"), st.tuples(FKEY).map(list)),
        st.tuples(st.just("replicate"), st.tuples(FKEY, BLOB).map(list)),
        st.tuples(st.just("hint"), st.tuples(FKEY, BLOB, st.sampled_from(["n2", "n3", "n1",
                                                                          "zz"])).map(list)),
        st.tuples(st.sampled_from(["read_hints", "hints_for"]), st.tuples(FKEY).map(list)),
        st.tuples(st.just("read_many"), st.lists(FKEY, max_size=4)),
        st.tuples(st.just("replicate_many"), st.lists(st.tuples(FKEY, BLOB).map(list),
                                                      max_size=3)),
        st.tuples(st.just("aae"), st.tuples(st.integers(-2, 70), ANY).map(list)),
        st.tuples(st.just("reap"), st.tuples(FKEY, st.binary(max_size=40)).map(list)),
        st.tuples(st.just("coord_put"), st.fixed_dictionaries(
            {"key": FKEY, "value": st.one_of(st.none(), st.text(max_size=10).map(json.dumps)),
             "context": st.one_of(st.none(), st.text(max_size=20)), "tombstone": ANY,
             "w": st.integers(-1, 5), "pw": st.integers(-1, 5),
             "timeout_ms": st.integers(-1, 3000)})),
        st.tuples(st.just("gossip"), st.dictionaries(
            st.sampled_from(["n1", "n2", "n3", "n9"]),
            st.fixed_dictionaries({"generation": st.integers(0, 2**64 - 1),
                                   "heartbeat": st.integers(0, 2**64 - 1),
                                   "incarnation": ANY, "ring": ANY}), max_size=3)),
    )
    random_kind = st.tuples(st.sampled_from(KINDS) | st.text(max_size=10), ANY)
    mangle = st.one_of(st.none(), st.none(), st.none(), st.none(), st.integers(0, 10_000))
    return st.tuples(st.one_of(shaped, shaped, random_kind), mangle)


def run(seconds: float, seed: int | None = None, workdir: Path | None = None,
        log: bool = True) -> dict[str, Any]:
    """The campaign: figures as a dict (`findings` empty when nothing was found)."""
    rnd = random.Random(seed)
    random.seed(rnd.random())
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        root = Path(workdir or tmp).resolve()
        with LocalCluster(root, size=3, first_host=100 + rnd.randrange(50), anti_entropy=True,
                          aae_interval_ms=2000) as cluster:
            cluster.start_all()
            known = {}
            for i, k in enumerate(KNOWN):
                r = requests.put(cluster.url("n1", f"/kv/{k}?w=3"),
                                 json={"value": {"i": i, "pad": "k" * i}, "context": None},
                                 timeout=10)
                r.raise_for_status()
                known[k] = [{"i": i, "pad": "k" * i}]
            c = Campaign(cluster)
            stop_sampler = threading.Event()

            def sampler() -> None:
                while not stop_sampler.wait(0.25):
                    c.sample()

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            started = time.monotonic()
            conf = settings(max_examples=10**9, deadline=None, database=None,
                            phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                            derandomize=seed is not None)

            @conf
            @given(http_requests(c))
            def fuzz_http(req: tuple) -> None:
                method, path, query, headers, body = req
                if query:
                    path += "?" + "&".join(f"{k}={requests.utils.quote(v)}"
                                           for k, v in query.items())
                c.http(method, path, headers, body)

            @conf
            @given(RAW)
            def fuzz_raw(data: bytes) -> None:
                c.raw(data)

            @conf
            @given(frames())
            def fuzz_frames(item: tuple) -> None:
                (kind, body), mangle = item
                c.frame(kind, body, mangle)

            hello = st.one_of(
                ANY, st.tuples(st.just("hello"), st.integers(0, 2), st.sampled_from(
                    ["dynamo", "x"]), st.sampled_from(["n2", "n3", "n1", ""]) | ANY,
                    st.sampled_from(["n1", "n2"]) | ANY, st.binary(min_size=30, max_size=34)
                ).map(list))

            @conf
            @given(hello, st.one_of(ANY, st.tuples(st.just("auth"), st.binary(
                min_size=31, max_size=33)).map(list)))
            def fuzz_hello(first: Any, second: Any) -> None:
                c.hello(first, second)

            share = [(fuzz_http, 0.35), (fuzz_raw, 0.1), (fuzz_hello, 0.1), (fuzz_frames, 0.45)]
            for fn, part in share:
                c.deadline = time.monotonic() + seconds * part
                with contextlib.suppress(_Stop):  # time is up for this part
                    fn()
            elapsed = time.monotonic() - started
            if c._peer is not None:
                c._peer.close()
            for nid in cluster.ids:  # a fuzzed partition must not outlive the campaign
                requests.delete(cluster.url(nid, "/admin/faults/partition"),
                                headers={"X-Admin-Token": TOKEN}, timeout=10)
            stop_sampler.set()
            thread.join(5)
            c.sample()
            for k, want in known.items():
                got = _read_back(cluster, k)
                if got != want:
                    c.finding(f"known key {k} changed", f"{got!r} != {want!r}")
            for nid in cluster.ids:  # an exception nobody handled is a crash of its own
                lines = (root / f"{nid}.log").read_text(errors="replace").splitlines()
                for i, line in enumerate(lines):
                    if " ERROR " in line:
                        block = []
                        for t in lines[i + 1:i + 80]:
                            if t[:4].isdigit():  # the next log record
                                break
                            block.append(t)
                        last = next((t for t in reversed(block)
                                     if re.match(r"[A-Za-z_][\w.]*(Error|Exception)\b", t)), "")
                        c.finding(f"{nid} log: {line.split(': ', 1)[-1][:60]} {last[:100]}",
                                  "\n".join([line, *block]))
            figures = {"seconds": round(elapsed, 1), "http_requests": c.requests,
                       "raw_http_requests": c.raw_requests, "stranger_handshakes": c.handshakes,
                       "frames": c.frames,
                       "connections": c.reconnects, "findings": c.findings,
                       "peak_rss_mib": {k: round(v, 1) for k, v in sorted(c.peak_rss_mib.items())},
                       "known_keys": len(known)}
    if log:
        print(json.dumps(figures, indent=2))
    return figures


def _read_back(cluster: LocalCluster, key: str) -> Any:
    deadline = time.monotonic() + 20
    got: Any = None
    while time.monotonic() < deadline:  # a fuzzed partition may take a moment to heal
        try:
            r = requests.get(cluster.url("n2", f"/kv/{key}?r=3"), timeout=10)
            if r.status_code == 200:
                return r.json()["values"]
            got = r.status_code
        except requests.RequestException as e:
            got = e
        time.sleep(0.2)
    return got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the cluster's files and logs here (default: a temporary folder)")
    args = p.parse_args()
    figures = run(args.seconds, args.seed, args.workdir)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(1 if figures["findings"] else 0)


if __name__ == "__main__":
    main()
