"""Random histories of writes, reads and crashed nodes against the real node code in one process:
no acknowledged write is lost unless a later write's context covered it, and nothing covered
survives a full read."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from test_node_inprocess import make_cluster

from node import clocks

NODES = ["n1", "n2", "n3", "n4"]
KEYS = ["a", "b"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(NODES), st.sampled_from(KEYS),
                  st.sampled_from(["none", "latest", "stale"]), st.integers(1, 3)),
        st.tuples(st.just("read"), st.sampled_from(NODES), st.sampled_from(KEYS),
                  st.integers(1, 3)),
        st.tuples(st.just("crash"), st.sampled_from(NODES)),
        st.tuples(st.just("recover"), st.sampled_from(NODES)),
    ),
    max_size=30,
)


def covers(ctx: dict, dot: str) -> bool:
    actor, counter = dot.rsplit(":", 1)
    return ctx.get(actor, (0, 0))[0] >= int(counter)


@settings(max_examples=120, deadline=None)
@given(ops)
def test_acknowledged_writes_survive_unless_superseded(history: list[tuple]) -> None:
    async def main() -> None:
        nodes, net, clock = make_cluster(size=4)
        # per key: [(dot, value, acknowledged)], and the contexts of writes that were stored
        writes: dict[str, list[tuple[str, str, bool]]] = {k: [] for k in KEYS}
        stored_contexts: dict[str, list[dict]] = {k: [] for k in KEYS}
        reads: dict[str, list[dict]] = {k: [{}] for k in KEYS}
        serial = 0
        for op in history:
            clock.advance(0.001)
            if op[0] == "crash":
                if len(net.down) < 3:
                    net.down.add(op[1])
                continue
            if op[0] == "recover":
                net.down.discard(op[1])
                continue
            node = op[1]
            if node in net.down:
                continue
            co = nodes[node].coordinator
            if op[0] == "read":
                status, body = await co.get(op[2], op[3], 0, 0.2)
                if status in (200, 404):
                    reads[op[2]].append(clocks.decode_context(body["context"]))
                continue
            _, _, key, which, w = op
            ctx = {} if which == "none" else reads[key][-1 if which == "latest" else 0]
            serial += 1
            value = f'"w{serial}"'
            status, body = await co.put(key, value, ctx, False, w, 0, 0.2)
            if status == 200 or body.get("written", 0) > 0:
                writes[key].append((body["version"], value, status == 200))
                stored_contexts[key].append(ctx)

        net.down.clear()
        for key in KEYS:
            status, body = await nodes["n1"].coordinator.get(key, 3, 0, 0.5)
            assert status in (200, 404)
            present = set(body["values"])
            for dot, value, acked in writes[key]:
                covered = any(covers(c, dot) for c in stored_contexts[key])
                if acked and not covered:
                    assert value in present, f"lost acknowledged write {dot} {value}"
                if covered:
                    assert value not in present, f"superseded write {dot} came back"

    asyncio.run(asyncio.wait_for(main(), 30))
