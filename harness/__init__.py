"""The Jepsen-style test harness: CLI, runner, workloads, platforms, reports."""
