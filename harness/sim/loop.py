"""An asyncio event loop on virtual time, and the gate that stops a node's callbacks.

Time is a number the loop owns: when no callback is ready, the loop does not sleep until the next
timer, it jumps there. So a run takes as long as its computation, whatever the machine's load,
and with one thread and seeded random sources the order of every callback is a function of the
seed.

Each simulated node runs in a `contextvars.Context` holding its `NodeGate`; every callback the
loop schedules in that context (task steps, timers, future callbacks) first asks the gate: a
running node runs it, a paused node keeps it until resume (SIGSTOP), a dead node drops it (kill
-9: its tasks never run again).

The loop is asyncio's `SelectorEventLoop` with its scheduling core replaced, for speed (a
simulated run is nothing but callbacks): a ready callback is a plain list
`[callback, args, context, gate]` instead of a `Handle` (so `call_soon` returns nothing one can
cancel; nothing in a simulation does), a timer a list `[when, sequence, callback, args,
context, gate]` (a `_Timer`, with asyncio's `cancel()` and `when()`) in a heap, in (when,
sequence) order, and one `_run_once` runs turns until the loop stops or `POLL_EVERY` turns have
passed. A turn is as asyncio's: the callbacks ready at its start, in order, then the timers due
by then, in time order (equal times in the order they were set).

`drive` runs a node's coroutine without a Task: its first step at once (when the node runs),
each later step as the callback of the future it waits on, through the node's gate. The
simulator uses it where it starts a node's work itself (a delivered message's handler, a client
request), which saves the Task, its first step and its done callbacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import heapq
import inspect
import itertools
import selectors
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from node.transport import PeerError

_Task = asyncio.Task
_copy_context = contextvars.copy_context
_heappush = heapq.heappush
RUNNING, PAUSED, DEAD = "running", "paused", "dead"
POLL_EVERY = 512  # turns between polls of the real file descriptors
PRUNE_AT = 128  # timers in the heap above which `_run_once` looks for cancelled ones to drop
NODE: contextvars.ContextVar[NodeGate | None] = contextvars.ContextVar("sim_node", default=None)


class SimDeadlock(RuntimeError):
    """Nothing is scheduled and nothing can wake the loop: the simulation cannot go on."""


class NodeGate:
    """One incarnation of one node: whether its callbacks may run now."""

    __slots__ = ("name", "state", "parked", "context")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = RUNNING
        self.parked: list[list] = []  # held while paused, in order
        self.context = contextvars.Context()
        self.context.run(NODE.set, self)

    def kill(self) -> None:
        self.state = DEAD
        parked, self.parked = self.parked, []
        for entry in parked:
            discard(entry[0])

    def new_context(self) -> contextvars.Context:
        """A context of this node for one new task (a Context cannot be entered twice)."""
        return self.context.copy()


def _cancelled(*_args: Any) -> None:
    """What a cancelled callback runs: nothing."""


class _Timer(list):
    """A timer in the heap: [when, sequence, callback, args, context, gate]; lists compare
    element by element, and (when, sequence) is unique."""

    __slots__ = ()

    def cancel(self) -> None:
        self[2], self[3] = _cancelled, ()

    def cancelled(self) -> bool:
        return self[2] is _cancelled

    def when(self) -> float:
        return self[0]


def discard(callback: Callable[..., Any]) -> None:
    """A dropped callback that was a task's first step: close its coroutine, which will never
    run (else it warns, when collected, that it was never awaited)."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
    elif isinstance(owner, _Driver):
        coro = owner.coro
    else:
        return
    if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()


def _run_handle(handle: asyncio.Handle) -> None:
    """A Handle asyncio made itself (a reader of the self-pipe, a signal handler)."""
    if not handle._cancelled:
        handle._run()


class _VirtualSelector(selectors.DefaultSelector):
    """Polls the real file descriptors (the loop's self-pipe, signals) without blocking."""

    def select(self, timeout: float | None = None) -> list:
        events = super().select(0)
        if events or timeout == 0:
            return events
        # nothing ready and no timer: only a signal could wake us; wait a little, really
        events = super().select(1.0)
        if not events:
            raise SimDeadlock("the simulation has nothing scheduled and nothing to wait for")
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
        self._vtime = 0.0
        self._next = itertools.count(1).__next__  # timers' sequence numbers
        super().__init__(_VirtualSelector())
        self._ready: deque[list] = deque()  # type: ignore[assignment]
        self._append = self._ready.append
        self._scheduled: list[list] = []  # type: ignore[assignment]
        self._root = contextvars.Context()  # for asyncio's own handles
        self.set_default_executor(SyncExecutor())
        self.set_exception_handler(_quiet_dead_tasks)

    def time(self) -> float:
        return self._vtime

    # -- scheduling: asyncio's API, on the lists above --

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> list:  # type: ignore[override]
        """As asyncio's, but what it returns cannot be cancelled (a plain list is the cheapest
        entry, and nothing in a simulation cancels a call_soon)."""
        if context is None:
            context = _copy_context()
        entry = [callback, args, context, context.get(NODE)]
        self._append(entry)
        return entry

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> _Timer:  # type: ignore[override]
        if context is None:
            context = _copy_context()
        timer = _Timer((when, self._next(), callback, args, context, context.get(NODE)))
        _heappush(self._scheduled, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: contextvars.Context | None = None) -> _Timer:  # type: ignore[override]
        if context is None:
            context = _copy_context()
        timer = _Timer((self._vtime + delay, self._next(), callback, args, context,
                        context.get(NODE)))
        _heappush(self._scheduled, timer)
        return timer

    def at(self, when: float, callback: Callable[..., Any], args: tuple,
           context: contextvars.Context) -> None:
        """A timer that is never cancelled, in a context of no node (the network's)."""
        _heappush(self._scheduled, [when, self._next(), callback, args, context, None])

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task:
        # asyncio's, less its checks for a closed loop and debug mode
        return _Task(coro, loop=self, name=name, context=context)

    def _call_soon(self, callback: Callable[..., Any], args: tuple,
                   context: contextvars.Context | None) -> list:  # type: ignore[override]
        return self.call_soon(callback, *args, context=context)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any,
                             context: contextvars.Context | None = None
                             ) -> list:  # type: ignore[override]
        # no other thread runs (SyncExecutor): `asyncio.to_thread`'s answer comes this way
        return self.call_soon(callback, *args, context=context)

    def _add_callback(self, handle: asyncio.Handle) -> None:
        if not handle._cancelled:
            self._append([_run_handle, (handle,), self._root, None])

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        return None

    def get_debug(self) -> bool:
        return False

    # -- running --

    def _run_once(self) -> None:
        """Up to POLL_EVERY turns (fewer if the loop is stopped), then one poll of the real
        file descriptors. When nothing is ready, the clock jumps to the next live timer."""
        ready, sched = self._ready, self._scheduled
        heappop = heapq.heappop
        if len(sched) > PRUNE_AT:
            self._prune(sched)
        for _ in range(POLL_EVERY):
            if not ready:
                while sched and sched[0][2] is _cancelled:
                    heappop(sched)
                if not sched:
                    break
                if sched[0][0] > self._vtime:
                    self._vtime = sched[0][0]
            for _ in range(len(ready)):
                entry = ready.popleft()
                callback, args, context, gate = entry
                if gate is not None and gate.state is not RUNNING:
                    self._gated(gate, entry)
                    continue
                try:
                    context.run(callback, *args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_failed(callback, exc)
            now = self._vtime
            # the same call as for ready entries, written out again: this is the simulator's
            # innermost loop, and a method call per callback would cost more than it reads
            while sched and sched[0][0] <= now:
                timer = heappop(sched)
                _, _, callback, args, context, gate = timer
                if callback is _cancelled:
                    continue
                if gate is not None and gate.state is not RUNNING:
                    self._gated(gate, [callback, args, context, gate])
                    continue
                try:
                    context.run(callback, *args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_failed(callback, exc)
            if self._stopping:
                return
        self._process_events(self._selector.select(0 if (ready or sched) else None))

    @staticmethod
    def _prune(sched: list[list]) -> None:
        """Drop the cancelled timers from the heap when they are most of it. Most timers are
        cancelled (a request's timeout, a quorum wait's alarm) long before they are due: kept,
        they made the heap about ten times its live size, and each cost a pop at its time.
        (when, sequence) orders the heap, so what runs, and in which order, does not change."""
        live = [t for t in sched if t[2] is not _cancelled]
        if len(live) * 2 < len(sched):
            sched[:] = live
            heapq.heapify(sched)

    @staticmethod
    def _gated(gate: NodeGate, entry: list) -> None:
        if gate.state is PAUSED:
            gate.parked.append(entry)
        else:  # DEAD: dropped, as a killed process's work is
            discard(entry[0])

    def _callback_failed(self, callback: Callable[..., Any], exc: BaseException) -> None:
        self.call_exception_handler({
            "message": f"Exception in callback {callback!r}",
            "exception": exc,
        })

    def resume(self, gate: NodeGate) -> None:
        """Let a paused node run again: its held callbacks first, in their order."""
        gate.state = RUNNING
        parked, gate.parked = gate.parked, []
        self._ready.extend(parked)


class _Driver:
    """One coroutine of a node, run without a Task (see `drive`)."""

    __slots__ = ("coro", "context", "done")

    def __init__(self, coro: Coroutine[Any, Any, Any], context: contextvars.Context,
                 done: Callable[[Any, BaseException | None], None]) -> None:
        self.coro = coro
        self.context = context
        self.done = done

    def step(self, _fut: Any = None) -> None:
        try:
            yielded = self.coro.send(None)
        except StopIteration as e:
            self.done(e.value, None)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:
            self.done(None, e)
            return
        if getattr(yielded, "_asyncio_future_blocking", None):
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(self.step, context=self.context)
        elif yielded is None:  # a bare yield (asyncio.sleep(0)): step again soon
            asyncio.get_running_loop().call_soon(self.step, context=self.context)
        else:
            self.coro.close()
            self.done(None, RuntimeError(f"a simulated coroutine yielded {yielded!r}"))


def drive(coro: Coroutine[Any, Any, Any], gate: NodeGate,
          done: Callable[[Any, BaseException | None], None]) -> None:
    """Run a node's coroutine as a task would, without the Task: its steps run in a new context
    of `gate`'s node, the first one now if the node runs (else held or dropped by the gate, as
    a task's first step), the later ones when the future it waits on is done. `done(result,
    None)` or `done(None, exception)` is called when it ends (in the node's context). Nothing
    can cancel it; nothing may ask for `asyncio.current_task()` inside it."""
    context = gate.context.copy()
    driver = _Driver(coro, context, done)
    if gate.state is RUNNING:
        context.run(driver.step)
    else:
        asyncio.get_running_loop().call_soon(driver.step, context=context)


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
