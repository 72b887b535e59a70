"""A locally managed service process: PID file, log file, protocol-level health check.

Each service runs in its own session (process group) so that stopping it, or cleaning up
after a failed start, takes its children too and leaves no stray processes behind.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kowalski.config import Config

log = logging.getLogger("kowalski.services")


class ServiceError(Exception):
    """One clear line for the operator: what is wrong and how to fix it."""



def http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    """(status, first 4 KiB of the body) of a GET, for health checks; OSError when nothing answers."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(4096)
    finally:
        conn.close()

@dataclass
class Status:
    name: str
    managed: bool  # started by us (embedded) or external
    running: bool
    healthy: bool
    pid: int | None
    address: str
    detail: str = ""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0): reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


class Service:
    """Base class; subclasses define the command, ports and the health probe."""

    name: str = "service"
    start_timeout: float = 60.0
    stop_timeout: float = 30.0

    def __init__(self, config: Config):
        self.config = config
        self.var = config.var_dir
        self.pid_file = self.var / "run" / f"{self.name}.pid"
        self.log_file = self.var / "log" / f"{self.name}.log"

    # --- to override -------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """True when this service is ours to run; False when config points elsewhere."""
        return True

    @property
    def address(self) -> str:
        raise NotImplementedError

    def ports(self) -> list[tuple[str, int]]:
        return []

    def prepare(self) -> None:
        """One-time set-up before the first start (downloads, formatting)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        """A protocol-level probe: (ok, detail)."""
        raise NotImplementedError

    def failure_hint(self, log_tail: str) -> str:
        """The log's last error line (what an operator needs first) and where the rest is."""
        lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
        errors = [line for line in lines if any(w in line for w in ("Error", "ERROR", "error:", "Traceback"))]
        cause = (errors or lines or ["no output"])[-1][:300]
        return f"last error: {cause}; see {self.log_file}"

    def after_start(self) -> None:
        """Called by `kowalski up` once the service is healthy (started now or before)."""

    # --- generic lifecycle ---------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def status(self) -> Status:
        if not self.embedded:
            ok, detail = self.health()
            return Status(self.name, False, ok, ok, None, self.address, detail)
        pid = self.pid()
        ok, detail = self.health() if pid else (False, "not running")
        return Status(self.name, True, pid is not None, ok, pid, self.address, detail)

    def start(self, wait: bool = True) -> Status:
        if not self.embedded:
            ok, detail = self.health(timeout=5.0)
            if not ok:
                raise ServiceError(
                    f"{self.name}: external service at {self.address} is unreachable ({detail}); "
                    f"start it or fix its address in config"
                )
            return self.status()
        pid = self.pid()
        if pid:
            if wait:
                self._wait_healthy(pid)
            return self.status()
        self.pid_file.unlink(missing_ok=True)
        for host, port in self.ports():
            if port_in_use(host, port):
                raise ServiceError(
                    f"{self.name}: port {host}:{port} is already in use by another process; "
                    f"stop that process (e.g. `ss -ltnp | grep :{port}`) or change the port in config"
                )
        self.prepare()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log_file, "ab") as logf:
            logf.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            logf.flush()
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=str(self.config.root),
                    env=self.env(),
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise ServiceError(f"{self.name}: cannot run {cmd[0]!r}: {exc.strerror}") from exc
        self.pid_file.write_text(str(proc.pid))
        log.info("started %s pid=%s", self.name, proc.pid)
        if wait:
            self._wait_healthy(proc.pid)
        return self.status()

    def _wait_healthy(self, pid: int) -> None:
        t0 = time.monotonic()
        detail = ""
        while time.monotonic() - t0 < self.start_timeout:
            if not pid_alive(pid):
                self._cleanup(pid)
                tail = self.log_tail(15)
                raise ServiceError(f"{self.name}: exited during start; {self.failure_hint(tail)}")
            ok, detail = self.health(timeout=2.0)
            if ok:
                log.info("%s healthy after %.1f s", self.name, time.monotonic() - t0)
                return
            time.sleep(0.3)
        self._cleanup(pid)
        raise ServiceError(
            f"{self.name}: not healthy after {self.start_timeout:.0f} s ({detail}); stopped it; "
            f"{self.failure_hint(self.log_tail(15))}"
        )

    def _cleanup(self, pid: int) -> None:
        self._kill_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _kill_group(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> bool:
        """Stop the service (SIGTERM, then SIGKILL after stop_timeout). True if it was running."""
        if not self.embedded:
            return False
        pid = self.pid()
        if not pid:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._kill_group(pid, signal.SIGTERM)
        t0 = time.monotonic()
        while pid_alive(pid) and time.monotonic() - t0 < self.stop_timeout:
            time.sleep(0.2)
        # Kill what is left of the group (children too), even if the leader exited.
        self._kill_group(pid, signal.SIGKILL)
        t1 = time.monotonic()
        while pid_alive(pid) and time.monotonic() - t1 < 5:
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("stopped %s pid=%s in %.1f s", self.name, pid, time.monotonic() - t0)
        return True

    def log_tail(self, n: int = 50) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])
