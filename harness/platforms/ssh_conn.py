"""SSH connections to the hosts of a hosts file (asyncssh), one per host, kept open for a run.

The platform's methods are synchronous and called from worker threads, so the connections live
on an event loop of their own, in a daemon thread; `Fleet.call` runs one coroutine there and
waits, bounded. Host keys are checked against a known-hosts file, or accepted as presented and
recorded (`--insecure-accept-host-keys`), or pinned to keys recorded earlier (cleanup after an
accepting run). Only public-key authentication is tried: no password prompt can hang a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.platforms.base import PlatformError
from harness.platforms.ssh_hosts import Host

T = TypeVar("T")
CMD_TIMEOUT_S = 30.0


@dataclass
class Trust:
    """How host keys are checked: a known-hosts file, pinned keys (OpenSSH public key text per
    host name), or accept whatever is presented (and record it)."""

    known_hosts: str | None = None
    pinned: dict[str, str] = field(default_factory=dict)
    accept: bool = False

    def describe(self) -> str:
        if self.accept:
            return "accepted as presented (--insecure-accept-host-keys), fingerprints recorded"
        if self.pinned:
            return "pinned to the keys recorded when the run started"
        return f"checked against {self.known_hosts}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def message(self) -> str:
        return f"exit {self.code}: {(self.err or self.out).strip()[-400:]}"


def _asyncssh() -> Any:
    try:
        import asyncssh
    except ImportError:
        raise PlatformError("the ssh platform needs asyncssh: pip install asyncssh (it is a "
                            "dependency of this project; reinstall it)") from None
    return asyncssh


class Fleet:
    """Open connections to some hosts, on a private event loop."""

    def __init__(self, hosts: Sequence[Host], trust: Trust, connect_timeout: float = 10.0):
        self.hosts = {h.name: h for h in hosts}
        self.trust = trust
        self.connect_timeout = connect_timeout
        self.conns: dict[str, Any] = {}
        self._shells: dict[str, Any] = {}  # host name -> its standing `sh` (see arun)
        self._locks: dict[str, asyncio.Lock] = {}
        self.fingerprints: dict[str, str] = {}  # host name -> SHA256 fingerprint of its key
        self.public_keys: dict[str, str] = {}  # host name -> its key, OpenSSH text
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ssh-fleet",
                                       daemon=True)
        self.thread.start()

    # -- the loop -----------------------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CMD_TIMEOUT_S) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise PlatformError(f"an SSH operation took longer than {timeout:.0f} s") from None

    def close(self) -> None:
        """Close every connection and stop the loop; idempotent."""
        if self.loop.is_closed():
            return

        async def close_all() -> None:
            for shell in self._shells.values():
                shell.close()
            for conn in self.conns.values():
                conn.close()
            await asyncio.gather(*(c.wait_closed() for c in self.conns.values()),
                                 return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(close_all(), timeout=10)
        self.conns.clear()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()

    # -- connecting ---------------------------------------------------------------------------

    def connect_all(self) -> None:
        """Connect to every host at once; if any fails, close them all and raise one error that
        names each host that failed and why (so nothing is done on the others)."""
        async def all_() -> list[str | None]:
            return await asyncio.gather(*(self._connect(h) for h in self.hosts.values()))

        errors = [e for e in self.call(all_(), timeout=self.connect_timeout + 15) if e]
        if errors:
            self.close()
            raise PlatformError("cannot use the hosts (nothing was done on any of them):\n  "
                                + "\n  ".join(errors))

    def connect_some(self) -> list[str]:
        """Connect to every host that answers (cleanup); one message per host that did not."""
        async def all_() -> list[str | None]:
            return await asyncio.gather(*(self._connect(h) for h in self.hosts.values()))

        return [e for e in self.call(all_(), timeout=self.connect_timeout + 15) if e]

    async def _connect(self, host: Host) -> str | None:
        asyncssh = _asyncssh()
        kwargs: dict[str, Any] = {
            "port": host.port, "username": host.user, "config": None,
            "connect_timeout": self.connect_timeout, "keepalive_interval": 10,
            "password_auth": False, "kbdint_auth": False, "gss_auth": False,
            "known_hosts": self._known_hosts_arg(host),
        }
        if host.agent:
            kwargs["client_keys"] = ()  # the agent's keys (SSH_AUTH_SOCK)
        else:
            kwargs.update(client_keys=[host.key], agent_path=None)
        try:
            conn = await asyncssh.connect(host.address, **kwargs)
        except asyncssh.HostKeyNotVerifiable as e:
            return f"host {host.where}: {self._key_problem(host, e)}"
        except asyncssh.PermissionDenied:
            how = "the agent's keys" if host.agent else f"the key {host.key}"
            return (f"host {host.where} refused {how} (permission denied): is its public "
                    "key in the user's authorized_keys there?")
        except (asyncssh.KeyImportError, OSError) as e:
            if isinstance(e, FileNotFoundError) and not host.agent:
                return f"host {host.where}: the key file {host.key} does not exist"
            if isinstance(e, asyncssh.KeyImportError):
                return f"host {host.where}: the key {host.key} cannot be read: {e}"
            return f"host {host.where} cannot be reached: {e.strerror or e}"
        except TimeoutError:
            return (f"host {host.where} cannot be reached: no answer within "
                    f"{self.connect_timeout:g} s (down, or a firewall drops SSH)")
        except asyncssh.Error as e:
            return f"host {host.where}: SSH failed: {e.reason or e}"
        key = conn.get_server_host_key()
        if key is not None:
            self.fingerprints[host.name] = key.get_fingerprint()
            self.public_keys[host.name] = key.export_public_key().decode().strip()
        self.conns[host.name] = conn
        return None

    def _known_hosts_arg(self, host: Host) -> Any:
        asyncssh = _asyncssh()
        if self.trust.accept:
            return None  # asyncssh: no check; the key is recorded after connecting
        if self.trust.pinned:
            text = self.trust.pinned.get(host.name)
            keys = [asyncssh.import_public_key(text)] if text else []
            return (keys, [], [])
        return self.trust.known_hosts

    def _key_problem(self, host: Host, e: Exception) -> str:
        if self.trust.pinned:
            return ("its host key is not the one recorded when the run started (a changed "
                    "key: the host was reinstalled, or this is not the same machine)")
        path = self.trust.known_hosts
        try:
            known = _asyncssh().read_known_hosts(path).match(host.address, host.address,
                                                             host.port)
        except (OSError, ValueError):
            known = None
        if known is not None and not any(known[:2]):
            entry = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
            return (f"{path} has no key for it; add one (ssh-keyscan -p {host.port} "
                    f"{host.address} >> {path}, after checking the fingerprint) or pass "
                    "--insecure-accept-host-keys" + ("" if entry == host.address
                                                     else f" (the entry is {entry})"))
        return (f"its host key does not match the one in {path} (the key changed: the host "
                f"was reinstalled, or someone is in between); {getattr(e, 'reason', e)}")

    # -- doing things -------------------------------------------------------------------------

    def run(self, host: str, script: str, timeout: float = CMD_TIMEOUT_S) -> Result:
        """`sh -c script` on the host, as the SSH user; never raises for a non-zero exit."""
        return self.call(self.arun(host, script, timeout), timeout=timeout + 5)

    async def arun(self, host: str, script: str, timeout: float = CMD_TIMEOUT_S) -> Result:
        """`sh -c script` through the host's standing shell (stdout and stderr together).

        A new SSH channel per command costs sshd a session (0.3-0.5 s on a loaded machine,
        measured); one `sh` kept open per host answers in about a millisecond, so crashes,
        pauses, clock changes and liveness checks stay fast. Commands to one host take turns;
        one that overruns its timeout takes the shell with it (a fresh one is opened next)."""
        if self.hosts.get(host) is None or host not in self.conns:
            raise PlatformError(f"host {self.hosts[host].where if host in self.hosts else host} "
                                "is not connected")
        asyncssh = _asyncssh()
        lock = self._locks.setdefault(host, asyncio.Lock())
        lines: list[str] = []
        async with lock:
            try:
                shell = self._shells.get(host)
                if shell is None or shell.is_closing():
                    shell = await asyncio.wait_for(self.conns[host].create_process(
                        "sh", stderr=asyncssh.STDOUT), timeout)
                    self._shells[host] = shell
                mark = f"@@DJH-END-{secrets.token_hex(6)}"
                shell.stdin.write(f"sh -c {shlex.quote(script)} </dev/null 2>&1; "
                                  f"printf '\\n{mark} %s\\n' $?\n")
                code = await asyncio.wait_for(self._read_until(shell, mark, lines), timeout)
            except TimeoutError:
                self._drop_shell(host)
                return Result(124, "".join(lines), f"timed out after {timeout:.0f} s")
            except (asyncssh.Error, OSError, BrokenPipeError, EOFError) as e:
                self._drop_shell(host)
                raise PlatformError(f"host {self.hosts[host].where}: SSH failed: {e}") from None
        return Result(code, "".join(lines).rstrip("\n"), "")

    @staticmethod
    async def _read_until(shell: Any, mark: str, lines: list[str]) -> int:
        while True:
            line = await shell.stdout.readline()
            if not line:
                raise EOFError("the host's shell ended")
            if line.startswith(mark):
                return int(line.split()[1])
            lines.append(line)

    def _drop_shell(self, host: str) -> None:
        shell = self._shells.pop(host, None)
        if shell is not None:
            shell.close()

    def run_all(self, scripts: dict[str, str], timeout: float = CMD_TIMEOUT_S) -> dict[str, Result]:
        """Each host's script, all at once; host name -> its result (or the SSH failure)."""
        async def one(host: str, script: str) -> Result:
            try:
                return await self.arun(host, script, timeout)
            except PlatformError as e:
                return Result(255, "", str(e))

        async def all_() -> list[Result]:
            return await asyncio.gather(*(one(h, s) for h, s in scripts.items()))

        return dict(zip(scripts, self.call(all_(), timeout=timeout + 10), strict=True))

    def put_file(self, host: str, local: Path, remote: str,
                 timeout: float = CMD_TIMEOUT_S) -> None:
        """Copy one local file to the host (sftp); its remote folder must exist."""
        async def go() -> None:
            async with self.conns[host].start_sftp_client() as sftp:
                await sftp.put(str(local), remote)

        self._sftp(host, go(), timeout, "copying a file to")

    def get_file(self, host: str, remote: str, local: Path,
                 timeout: float = CMD_TIMEOUT_S) -> None:
        """Copy one remote file here (sftp)."""
        async def go() -> None:
            async with self.conns[host].start_sftp_client() as sftp:
                await sftp.get(remote, str(local))

        self._sftp(host, go(), timeout, "copying a file from")

    def _sftp(self, host: str, coro: Coroutine[Any, Any, None], timeout: float,
              what: str) -> None:
        asyncssh = _asyncssh()
        if host not in self.conns:
            coro.close()
            raise PlatformError(f"host {self.hosts[host].where} is not connected")
        try:
            self.call(coro, timeout)
        except (asyncssh.Error, OSError) as e:
            raise PlatformError(f"{what} host {self.hosts[host].where} failed: {e}") from None
