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
import heapq
import inspect
import selectors
from collections.abc import Callable
from typing import Any

from node.transport import PeerError

RUNNING, PAUSED, DEAD = "running", "paused", "dead"
POLL_EVERY = 512  # turns between polls of the real file descriptors
NODE: contextvars.ContextVar[NodeGate | None] = contextvars.ContextVar("sim_node", default=None)


class SimDeadlock(RuntimeError):
    """Nothing is scheduled and nothing can wake the loop: the simulation cannot go on."""


class NodeGate:
    """One incarnation of one node: whether its callbacks may run now."""

    __slots__ = ("name", "state", "parked", "context")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = RUNNING
        self.parked: list[asyncio.Handle] = []  # held while paused, in order
        self.context = contextvars.Context()
        self.context.run(NODE.set, self)

    def kill(self) -> None:
        self.state = DEAD
        parked, self.parked = self.parked, []
        for handle in parked:
            discard(handle._callback)  # type: ignore[attr-defined]

    def new_context(self) -> contextvars.Context:
        """A context of this node for one new task (a Context cannot be entered twice)."""
        return self.context.copy()


class _Handle(asyncio.Handle):
    """asyncio's Handle without the debug-mode bookkeeping (the loop never runs in debug)."""

    __slots__ = ()

    def __init__(self, callback: Callable[..., Any], args: tuple, loop: asyncio.AbstractEventLoop,
                 context: contextvars.Context) -> None:
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._loop = loop
        self._source_traceback = None
        self._repr = None
        self._context = context


class _GatedHandle(_Handle):
    """A node's callback: run if the node runs, held while it is paused, dropped once dead."""

    __slots__ = ("_gate",)

    def _run(self) -> None:
        gate = self._gate
        if gate.state is RUNNING:
            asyncio.Handle._run(self)
        elif gate.state is PAUSED:
            gate.parked.append(self)
        else:  # DEAD: dropped, as a killed process's work is
            discard(self._callback)


class _Timer(asyncio.TimerHandle):
    __slots__ = ()

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple,
                 loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        _Handle.__init__(self, callback, args, loop, context)  # type: ignore[arg-type]
        self._when = when
        self._scheduled = False


class _GatedTimer(_Timer):
    __slots__ = ("_gate",)

    _run = _GatedHandle._run


def discard(callback: Callable[..., Any]) -> None:
    """A dropped callback that was a task's first step: close its coroutine, which will never
    run (else it warns, when collected, that it was never awaited)."""
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
            coro.close()


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
        self._turns = 0
        self._seq = 0
        super().__init__(selector)
        selector.loop = self
        self.set_default_executor(SyncExecutor())
        self.set_exception_handler(_quiet_dead_tasks)

    def time(self) -> float:
        return self._vtime

    def _run_once(self) -> None:
        """One turn, as `BaseEventLoop._run_once`, less what virtual time makes moot: no
        timeout to compute and no clock resolution (the clock jumps to the next timer), and
        the real file descriptors (self-pipe, signals) polled only now and then. Timers are
        kept as (when, sequence, handle): compared in C, and equal times in the order they
        were set."""
        sched, ready = self._scheduled, self._ready
        if (self._timer_cancelled_count > 100
                and self._timer_cancelled_count * 2 > len(sched)):
            live = []
            for entry in sched:
                if entry[2]._cancelled:
                    entry[2]._scheduled = False
                else:
                    live.append(entry)
            heapq.heapify(live)
            self._scheduled = sched = live
            self._timer_cancelled_count = 0
        else:
            while sched and sched[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                heapq.heappop(sched)[2]._scheduled = False
        self._turns += 1
        if self._turns >= POLL_EVERY or not (ready or sched):
            self._turns = 0
            self._process_events(self._selector.select(0 if (ready or sched) else None))
        if not ready and sched and sched[0][0] > self._vtime:
            self._vtime = sched[0][0]
        now = self._vtime
        while sched and sched[0][0] <= now:
            handle = heapq.heappop(sched)[2]
            handle._scheduled = False
            ready.append(handle)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

    # call_soon and call_at, as BaseEventLoop's (less its debug checks), with a node's
    # callbacks passed through its gate
    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        if context is None:
            context = contextvars.copy_context()
        gate = context.get(NODE)
        if gate is None:
            handle: asyncio.Handle = _Handle(callback, args, self, context)
        else:
            handle = _GatedHandle(callback, args, self, context)
            handle._gate = gate  # type: ignore[attr-defined]
        self._ready.append(handle)
        return handle

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if context is None:
            context = contextvars.copy_context()
        gate = context.get(NODE)
        if gate is None:
            timer: asyncio.TimerHandle = _Timer(when, callback, args, self, context)
        else:
            timer = _GatedTimer(when, callback, args, self, context)
            timer._gate = gate  # type: ignore[attr-defined]
        self._seq += 1
        heapq.heappush(self._scheduled, (when, self._seq, timer))
        timer._scheduled = True
        return timer

    def get_debug(self) -> bool:
        return False

    def resume(self, gate: NodeGate) -> None:
        """Let a paused node run again: its held callbacks first, in their order."""
        gate.state = RUNNING
        parked, gate.parked = gate.parked, []
        self._ready.extend(parked)


def _quiet_dead_tasks(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A killed node's tasks are dropped unfinished by design, and so is the answer (a
    PeerError) to a request it was waiting for; anything else is reported."""
    message = context.get("message", "")
    if message.startswith("Task was destroyed"):
        return
    if message.startswith("Future exception") and isinstance(context.get("exception"),
                                                              PeerError):
        return
    loop.default_exception_handler(context)
