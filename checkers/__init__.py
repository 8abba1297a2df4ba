"""Pure analyses of histories. Imports nothing from harness/ or node/.

History in, verdict out:

- `history`: the Op/Call types, `read_history` (history.jsonl or Jepsen EDN), `pair`, and
  `read_jsonl_rows`, the one reader of the run's JSON Lines files (bad lines: docs/history.md).
- `faults`: `fault_intervals`, when each fault was on (for the checkers and the report).
- `verdict`: `Verdict(verdict, summary, evidence)` and `combine` (the overall rule).
- `linearizability` + `models`: the Wing-Gong/Lowe/Porcupine search, per key, with a budget;
  models register, cas-register, kv, set, siblings-register.
- `sets` (lost writes, set-full style), `read_your_writes`, `convergence`, `phantoms`, `perf`.
- `registry`: checker names, the defaults per workload, `run_checkers`.
- `generate`: linearizable-by-construction histories for tests and benchmarks.
"""
