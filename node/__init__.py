"""The reference Dynamo store: one OS process per node (`dynamo-node`, `python -m node`).

Modules, one job each:
  config       the cluster file, validated
  ring         partitions, balanced claims, preference lists
  clocks       dotted version vectors, sibling sets, the client's context (pure)
  storage      durable key -> sibling set (SQLite WAL, group commit) and an in-memory one
  transport    internode frames (length-prefixed msgpack over persistent TCP)
  replica      this node's copy: coordinated writes and merges from peers
  coordinator  quorum GET/PUT/DELETE over an injected `call`
  http_api     the client and admin HTTP API (docs/node-api.md)
  server       wiring of clock, random source, storage, transport; the peer view
  env          clocks and random sources that are handed in
"""
