"""Real service processes for end-to-end tests: started with their own environment, logs kept in files, waited on
until healthy, and stopped or killed on purpose."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tend_common.grpc_server import wait_until_serving


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """One service process. Its standard output and error go to `log_path`, so tests can read what it logged."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self._command = list(command)
        self._env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self._command, env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_grpc(self, port: int, timeout: float = 30.0) -> ServiceProcess:
        self._wait(lambda: wait_until_serving(f"127.0.0.1:{port}", timeout=2.0), timeout)
        return self

    def wait_http(self, port: int, path: str = "/healthz", timeout: float = 30.0) -> ServiceProcess:
        def check() -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2.0) as response:
                if response.status != 200:
                    raise RuntimeError(response.status)

        self._wait(check, timeout)
        return self

    def _wait(self, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.read_log()[-4000:]}")
            try:
                check()  # type: ignore[operator]
                return
            except Exception as exc:
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s ({last!r}):\n{self.read_log()[-4000:]}")

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM to the process group, as an orchestrator would, then SIGKILL if it does not exit in time."""
        if self._process is None or self._process.poll() is not None:
            return None if self._process is None else self._process.returncode
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, with no chance to finish anything."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)
