"""The deterministic simulator: the reference node's own code, every node of a cluster, its
clients and the nemesis in one process on virtual time (issue 15).

`loop` the virtual-time event loop and the per-node scheduling gate (pause, crash); `net` the
in-memory network; `disk` in-memory storage that keeps exactly what the fsync policy made
durable; `cluster` the nodes made of those; `run` one `harness run --platform sim`.
"""
