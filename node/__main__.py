"""`dynamo-node --cluster CLUSTER.toml --id n1` (also `python -m node ...`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from node.config import ConfigError, load_cluster
from node.env import SystemClock, system_random
from node.server import Node, serve
from node.storage import SqliteStorage
from node.transport import TcpTransport

# Young-generation GC threshold. At the default 700, the objects of the ~50 requests in flight
# alone crossed it: ~35 collections a second, each scanning objects still alive (3% of a node's
# time under load). Allocation nets out between requests, so 10,000 is reached about never.
GC_YOUNG_THRESHOLD = 10_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dynamo-node", description="Run one node of the Dynamo store.")
    p.add_argument("--cluster", required=True, help="the cluster file (TOML)")
    p.add_argument("--id", required=True, help="this node's id in the cluster file")
    p.add_argument("--bug", action="append", default=[], metavar="NAME",
                   help="enable a seeded defect (repeatable; adds to the cluster file's bugs)")
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="event loop: uvloop if installed (auto), or the standard one")
    p.add_argument("--check", action="store_true",
                   help="only check the cluster file and --id, then exit (0: the node would "
                        "start with them; 2: what is wrong)")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, log: logging.Logger) -> None:
    config = load_cluster(args.cluster, tuple(args.bug))
    me = config.node(args.id)
    for key in config.ignored_keys:
        log.warning("cluster file: %s is not used by this version of the node", key)
    data_dir = config.node_data_dir(args.id)
    storage = SqliteStorage(data_dir / "store.sqlite3", config.fsync, log)
    peers = {e.id: (e.host, e.peer_port) for e in config.nodes if e.id != me.id}
    if config.insecure:
        log.warning("cluster file: insecure = true: internode frames and client contexts are "
                    "not authenticated; anyone who reaches a peer port can write any data")
    transport = TcpTransport(me.id, me.bind_host, me.peer_port, peers, log,
                             max_frame=config.max_frame_bytes,
                             connect_timeout=config.connect_timeout_ms / 1000,
                             secret=config.cluster_secret, cluster=config.name)
    node = Node(config, me.id, SystemClock(), system_random(), storage, transport, log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(node, me.bind_host, me.client_port, stop)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.check:
        try:
            load_cluster(args.cluster, tuple(args.bug)).node(args.id)
        except ConfigError as e:
            print(f"dynamo-node: {e}", file=sys.stderr)
            sys.exit(2)
        print(f"dynamo-node: {args.cluster} is a cluster file node {args.id} accepts")
        return
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {args.id}: %(message)s")
    log = logging.getLogger("node")
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    loop_factory = None
    if args.loop != "asyncio":
        try:
            import uvloop  # optional: about a third less CPU per request

            loop_factory = uvloop.new_event_loop
        except ImportError:
            if args.loop == "uvloop":
                print("dynamo-node: --loop uvloop, but uvloop is not installed", file=sys.stderr)
                sys.exit(2)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(run(args, log))
    except ConfigError as e:
        print(f"dynamo-node: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print(f"dynamo-node: cannot start: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
