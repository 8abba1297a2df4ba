"""The reference Dynamo store: one OS process per node (`dynamo-node`, `python -m node`).

Modules, one job each:
  config       the cluster file, validated
  ring         partitions, balanced claims, preference lists
  clocks       dotted version vectors, sibling sets, the client's context (pure)
  storage      durable key -> sibling set (SQLite WAL, group commit) and an in-memory one
  transport    internode frames (length-prefixed msgpack over persistent TCP)
  replica      this node's copy: coordinated writes and merges from peers
  coordinator  quorum GET/PUT/DELETE over an injected `call`: sloppy quorum, read repair
  membership   the failure detector and gossiped membership (state only)
  handoff      pushing hints to their owners
  aae          Merkle trees per partition and the anti-entropy exchange
  reaper       tombstone reaping once every primary holds the tombstone
  tasks        periodic background loops
  http_api     the client and admin HTTP API (docs/node-api.md): routes and handlers
  http_server  the HTTP/1.1 server under it (httptools): keep-alive, pipelining, limits
  server       wiring of clock, random source, storage, transport; internode requests
  env          clocks and random sources that are handed in
"""
