"""Child processes with log files, process-group teardown and bounded waits.

Each component runs in its own session (process group) so teardown also reaches anything it forked, and
(on Linux) with a parent-death signal so a SIGKILLed test runner does not leave an apiserver behind.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


class SandboxTimeout(TimeoutError):
    """A bounded wait expired; the message includes the relevant component's log tail."""


interrupted = threading.Event()
"""Set by the CLI's SIGINT/SIGTERM handler, which also raises KeyboardInterrupt.

The exception alone is not enough: when the signal lands while Python runs a callback whose exceptions it
ignores (the logging module's at-fork handler inside ``subprocess.Popen``, a finalizer), the interrupt is
printed as "Exception ignored" and lost, and startup would carry on. Every polling loop here and each
sandbox phase calls :func:`raise_if_interrupted`, so a lost interrupt is honoured at the next poll."""


def raise_if_interrupted() -> None:
    """Re-raise an interrupt that an ignoring callback swallowed (see :data:`interrupted`)."""
    if interrupted.is_set():
        raise KeyboardInterrupt


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LISTEN_PORTS_WIDTH = 16000
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def listen_port_range(path: Path = EPHEMERAL_RANGE_FILE) -> range | None:
    """Ports below the kernel's ephemeral range, where no outgoing connection takes a local port.

    A port handed out by ``bind(0)`` lies inside the ephemeral range, so between the moment we close the probe
    socket and the moment a component binds it, any outgoing connection (kubectl, the apiserver's own client to
    kine, another test) may be given it: CI saw kube-apiserver fail with "address already in use" that way.
    ``None`` when the range cannot be read or leaves no room below it."""
    try:
        low = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    start = max(1024, low - _LISTEN_PORTS_WIDTH)
    return range(start, low) if low - start >= 1000 else None


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1", *, candidates: Sequence[int] | None = None) -> int:
    """A port to listen on that is free now and that no outgoing connection will be given meanwhile.

    Chosen at random below the ephemeral range (see :func:`listen_port_range`), never the same twice in one
    process, and checked by binding it. Falls back to an ephemeral ``bind(0)`` port where that range is not
    available, or when ``candidates`` (default: that range) is empty or exhausted."""
    if candidates is None:
        candidates = listen_port_range() or ()
    if candidates:
        for _ in range(200):  # bounded: a handful of tries suffices unless the range is nearly full
            port = random.choice(candidates)
            with _handed_out_lock:
                if port in _handed_out:
                    continue
                if _bindable(host, port):
                    _handed_out.add(port)
                    return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    """True once something listens on host:port; before that the OSError (e.g. connection refused)
    propagates, so `wait_until` can quote it on timeout."""
    with socket.create_connection((host, port), timeout=1):
        return True


def tail(path: Path, lines: int = 40) -> str:
    """Last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group `pgid` that are not zombies (Linux /proc; [] elsewhere)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


@functools.cache
def _die_with_parent() -> Callable[[], None]:
    """A preexec_fn that SIGKILLs the child when the thread that spawned it dies.

    prctl is looked up here, in the parent, so the forked child only makes the one system call (a library
    search in the child would spawn ldconfig between fork and exec).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


class ManagedProcess:
    """A long-running component: stdout+stderr go to `log_path`; stop() kills its whole process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = None if env is None else dict(env)  # kept so the same process can be started again
        self.cwd = cwd
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"# {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent() if die_with_parent and sys.platform == "linux" else None,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def describe_failure(self, lines: int = 40) -> str:
        """Status plus log tail, for error messages."""
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return f"{self.name} ({state}; log {self.log_path}), last lines:\n{self.log_tail(lines)}"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after `grace` seconds, reap."""
        if self.popen.returncode is not None and not live_group_members(self.popen.pid):
            return
        self._kill_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        self._kill_group(signal.SIGKILL)
        self.popen.wait()
        # SIGKILL delivery to grandchildren is asynchronous; wait (bounded) until the group is really gone.
        deadline = time.monotonic() + 5
        while live_group_members(self.popen.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _kill_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def _group_gone(self) -> bool:
        return self.popen.poll() is not None and not live_group_members(self.popen.pid)


def stop_all(processes: Sequence[ManagedProcess], grace: float = 5.0) -> None:
    """Stop several processes at once: SIGTERM every group, SIGKILL what is left after ``grace``.

    One shared deadline, so stopping N components takes about ``grace`` seconds, not N times that
    (what keeps an interrupted sandbox's teardown short).
    """
    live = [p for p in processes if not p._group_gone()]
    for proc in live:
        proc._kill_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.popen.poll() is None for p in live):
        time.sleep(0.05)
    for proc in live:
        proc._kill_group(signal.SIGKILL)
    for proc in live:
        proc.popen.wait()
    deadline = time.monotonic() + 5  # SIGKILL reaches grandchildren asynchronously
    while any(live_group_members(p.popen.pid) for p in live) and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    watch: Sequence[ManagedProcess] = (),
) -> T:
    """Poll `check` until it returns something truthy; fail fast if a watched process exits.

    Exceptions from `check` count as "not yet" (the last one is reported on timeout).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        raise_if_interrupted()
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not ready yet; keep the reason for the timeout message
            last_error = exc
        dead = [p for p in watch if not p.alive()]
        if dead:
            raise SandboxTimeout(
                f"while waiting for {what}: " + "\n".join(p.describe_failure() for p in dead)
            )
        if time.monotonic() >= deadline:
            detail = f"\nlast error: {last_error!r}" if last_error else ""
            logs = "".join(f"\n\n{p.describe_failure()}" for p in watch)
            raise SandboxTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}{logs}")
        time.sleep(interval)


class CommandFailed(RuntimeError):
    """A command run by :func:`run_with_progress` exited non-zero or overran its time limit."""

    def __init__(self, message: str, *, returncode: int | None, output_tail: list[str]) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output_tail = output_tail


def _shorten(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_with_progress(
    args: Sequence[str],
    *,
    label: str,
    report: Callable[[str], None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
    heartbeat: float = 20.0,
    noteworthy: Callable[[str], bool] = lambda line: False,
    tail_lines: int = 60,
) -> list[str]:
    """Run a long command (a compiler, pip), reporting progress instead of leaving the terminal silent.

    Every ``heartbeat`` seconds ``report`` gets a line with the elapsed time and the latest output,
    even while the command prints nothing (a large download); lines for which ``noteworthy`` is true
    are reported at once. The command runs in its own session so an interrupt or the ``timeout`` stops
    it *and* its children. Returns the output's last ``tail_lines`` lines; raises :class:`CommandFailed`
    carrying them on a non-zero exit or a timeout.
    """
    start = time.monotonic()
    tail_buf: collections.deque[str] = collections.deque(maxlen=tail_lines)
    lines: queue.Queue[str | None] = queue.Queue()
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    stdout = proc.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, name=f"{label}-output", daemon=True)
    reader.start()
    count = 0
    last_report = start
    try:
        while True:
            raise_if_interrupted()
            now = time.monotonic()
            if now - start > timeout:
                raise CommandFailed(
                    f"{label} did not finish within {timeout:.0f}s: {' '.join(args)}\n" + "\n".join(tail_buf),
                    returncode=None,
                    output_tail=list(tail_buf),
                )
            try:
                line = lines.get(timeout=min(1.0, heartbeat))
            except queue.Empty:
                line = ""
            else:
                if line is None:
                    break
                count += 1
                tail_buf.append(line)
                if noteworthy(line):
                    report(f"{label}: {_shorten(line.strip())}")
                    last_report = time.monotonic()
            now = time.monotonic()
            if now - last_report >= heartbeat:
                last_report = now
                latest = _shorten(tail_buf[-1].strip()) if tail_buf else "no output yet"
                report(f"{label}: {now - start:.0f}s elapsed, {count} lines of output (latest: {latest})")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
        stdout.close()
    if code != 0:
        raise CommandFailed(
            f"{label} failed (exit {code}): {' '.join(args)}\n" + "\n".join(tail_buf),
            returncode=code,
            output_tail=list(tail_buf),
        )
    return list(tail_buf)


def processes_with_env(name: str, value: str) -> list[int]:
    """Live PIDs (other than this one) whose environment has ``name=value``: how the sandbox's own
    processes are found (each carries ``RERANK_SANDBOX_ID``), e.g. to prove none outlived it."""
    needle = f"\0{name}={value}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in b"\0" + (entry / "environ").read_bytes() + b"\0":
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found
