"""The floor for `store_throughput.py --store floor`: the least a durable key-value server can do.

    python benchmarks/floor_server.py --host 127.0.0.2 --port 8001 --data DIR/floor.log

It answers the reference node's client API (`GET` and `PUT /kv/{key}`, JSON, docs/node-api.md)
with nothing behind it: no replication, no clocks, no siblings, values held in memory. A PUT is
appended to one file and fdatasynced before its answer, with the writes that queued up meanwhile
(group commit, as the reference node's storage does). On the node's own HTTP server
(node/http_server.py, on uvloop) and driven by the same load generator, its figures are what this
machine allows any store that keeps an acknowledged write on disk: a target below them cannot be
met by replicating more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import queue
import threading

from node.http_server import HttpServer, Request, Response

NOT_FOUND = json.dumps({"error": "not_found", "message": "no value"}).encode()
WRITTEN = json.dumps({"context": None, "clock": {}}).encode()


class GroupCommit:
    """Appends from the event loop, fdatasynced by one thread a batch at a time."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, name="floor-writer", daemon=True).start()

    def append(self, record: bytes) -> asyncio.Future:
        done = self.loop.create_future()
        self.queue.put((record, done))
        return done

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get())
            error: OSError | None = None
            try:
                os.write(self.fd, b"".join(record for record, _ in batch))
                os.fdatasync(self.fd)
            except OSError as e:  # each waiting PUT answers it, rather than hanging
                error = e
            self.loop.call_soon_threadsafe(_settle, [done for _, done in batch], error)


def _settle(futures: list[asyncio.Future], error: OSError | None) -> None:
    for f in futures:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)


async def serve(host: str, port: int, data: str) -> None:
    values: dict[str, object] = {}
    log = GroupCommit(data)

    def bad(message: str) -> Response:
        return Response(400, json.dumps({"error": "bad_request", "message": message}).encode())

    async def handle(request: Request) -> Response:
        if request.path == "/health":
            return Response(200, b'"ok"')
        key = request.path[len("/kv/"):]
        if not request.path.startswith("/kv/") or not key:
            return Response(404, NOT_FOUND)
        if request.method == "GET":
            if key not in values:
                return Response(404, NOT_FOUND)
            return Response(200, json.dumps({"key": key, "values": [values[key]],
                                             "context": None, "clock": {}}).encode())
        if request.method != "PUT":
            return Response(405, json.dumps({"error": "bad_method"}).encode())
        try:
            body = json.loads(request.body)
        except ValueError as e:
            return bad(f"not JSON: {e}")
        if not isinstance(body, dict) or "value" not in body:
            return bad('the body must be a JSON object with "value"')
        try:
            await log.append(key.encode() + b"\t" + request.body + b"\n")
        except OSError as e:
            return Response(500, json.dumps({"error": "write_failed", "message": str(e)}).encode())
        values[key] = body["value"]
        return Response(200, WRITTEN)

    server = HttpServer(handle, max_body=1 << 20, max_url=8192, log=logging.getLogger("floor"),
                        malformed=bad)
    await server.start(host, port)
    await asyncio.Event().wait()  # until the benchmark stops the process


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data", required=True, help="the file every write is appended to")
    args = p.parse_args()
    try:
        import uvloop  # the reference node's loop, when installed

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    run(serve(args.host, args.port, args.data))


if __name__ == "__main__":
    main()
