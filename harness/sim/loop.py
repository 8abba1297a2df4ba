"""An asyncio event loop on virtual time, and the gate that stops a node's callbacks.

Time is a number the loop owns: when no callback is ready, the loop does not sleep until the next
timer, it jumps there. So a run takes as long as its computation, whatever the machine's load,
and with one thread and seeded random sources the order of every callback is a function of the
seed.

Each simulated node runs in a `contextvars.Context` holding its `NodeGate`; every callback the
loop schedules in that context (task steps, timers, future callbacks) first asks the gate: a
running node runs it, a paused node keeps it until resume (SIGSTOP), a dead node drops it (kill
-9: its tasks never run again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import selectors
from collections.abc import Callable
from typing import Any

RUNNING, PAUSED, DEAD = "running", "paused", "dead"
NODE: contextvars.ContextVar[NodeGate | None] = contextvars.ContextVar("sim_node", default=None)


class SimDeadlock(RuntimeError):
    """Nothing is scheduled and nothing can wake the loop: the simulation cannot go on."""


class NodeGate:
    """One incarnation of one node: whether its callbacks may run now."""

    __slots__ = ("name", "state", "parked", "context")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = RUNNING
        self.parked: list[tuple[Callable[..., Any], tuple, contextvars.Context]] = []
        self.context = contextvars.Context()
        self.context.run(NODE.set, self)

    def run(self, ctx: contextvars.Context, callback: Callable[..., Any], args: tuple) -> None:
        state = self.state
        if state is RUNNING:
            callback(*args)
        elif state is PAUSED:
            self.parked.append((callback, args, ctx))
        # DEAD: dropped, as a killed process's work is

    def new_context(self) -> contextvars.Context:
        """A context of this node for one new task (a Context cannot be entered twice)."""
        return self.context.copy()


class _VirtualSelector(selectors.DefaultSelector):
    """Polls the real file descriptors (the loop's self-pipe, signals) without blocking, and
    advances the loop's clock by the timeout instead of waiting it out."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # nothing ready and no timer: only a signal could wake us; wait a little, really
            events = super().select(1.0)
            if not events:
                raise SimDeadlock("the simulation has nothing scheduled and nothing to wait for")
            return events
        assert self.loop is not None
        self.loop.advance(timeout)
        return events


class SyncExecutor(concurrent.futures.ThreadPoolExecutor):
    """`run_in_executor` / `asyncio.to_thread` run the function at once, on the loop's thread:
    no thread may decide when a simulated step happens."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # handed to the awaiting coroutine, as a thread would
            fut.set_exception(e)
        return fut


class VirtualLoop(asyncio.SelectorEventLoop):
    """The event loop of a simulation: `time()` is virtual and starts at 0."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        self._vtime = 0.0
        super().__init__(selector)
        selector.loop = self
        self.set_default_executor(SyncExecutor())
        self.set_exception_handler(_quiet_dead_tasks)

    def time(self) -> float:
        return self._vtime

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._vtime += seconds

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        if context is None:
            context = contextvars.copy_context()
        gate = context.get(NODE)
        if gate is None:
            return super().call_soon(callback, *args, context=context)
        return super().call_soon(gate.run, context, callback, args, context=context)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if context is None:
            context = contextvars.copy_context()
        gate = context.get(NODE)
        if gate is None:
            return super().call_at(when, callback, *args, context=context)
        return super().call_at(when, gate.run, context, callback, args, context=context)

    def resume(self, gate: NodeGate) -> None:
        """Let a paused node run again: its kept callbacks first, in their order."""
        gate.state = RUNNING
        parked, gate.parked = gate.parked, []
        for callback, args, ctx in parked:
            super().call_soon(gate.run, ctx, callback, args, context=ctx)


def _quiet_dead_tasks(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A killed node's tasks are dropped unfinished by design; anything else is reported."""
    task = context.get("task")
    if task is not None and context.get("message", "").startswith("Task was destroyed"):
        return
    loop.default_exception_handler(context)
