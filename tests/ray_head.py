"""A Ray head on 127.0.0.1 with two CPU workers, started and stopped by the test that needs it.

`ray start --head --block` in its own session: stopping it (SIGTERM, then SIGKILL of its process group) takes
down every Ray process it started. Every port is chosen free on 127.0.0.1 (none of Ray's fixed defaults), and
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray bind its services to the loopback address only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    def __init__(self, cpus: int = 2):
        self.cpus = cpus
        self.temp = Path(tempfile.mkdtemp(prefix="tlray-", dir="/tmp"))  # short: Ray's socket paths are limited
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.proc: subprocess.Popen | None = None
        self.log = self.temp / "head.log"

    def start(self, timeout: float = 240, attempts: int = 3) -> "RayHead":
        """Start the head; Ray gives its raylet a fixed 30 s to register, which a busy machine can miss, so a
        failed start is tried again (up to ``attempts`` times) before giving up with Ray's own message."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except RuntimeError:
                self.stop(keep_temp=True)
                if attempt == attempts:
                    raise

    def _start_once(self, timeout: float) -> "RayHead":
        ray = Path(sys.executable).with_name("ray")
        ports = {"--port": free_port(), "--ray-client-server-port": free_port(), "--dashboard-port": self.dashboard_port,
                 "--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
                 "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port()}
        cmd = [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
               "--num-gpus", "0", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
               "--disable-usage-stats", "--temp-dir", str(self.temp)]
        for flag, port in ports.items():
            cmd += [flag, str(port)]
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`ray start` exited with {self.proc.returncode}: {self.reason()}")
            if "Ray runtime started" in self.tail(None):  # the node registered: not only the dashboard is up
                try:
                    urllib.request.urlopen(self.address + "/api/version", timeout=2).read()
                    return self
                except OSError:
                    pass
            time.sleep(1)
        raise RuntimeError(f"The Ray head did not start within {timeout:.0f} s: {self.tail()}")

    def reason(self) -> str:
        """Ray's own message (the last line of its log that is not a traceback's), e.g. its raylet time-out."""
        lines = [ln.strip() for ln in self.tail(None).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.split(":")[0].endswith(("Exception", "Error"))]
        return (errors or lines or ["(no output)"])[-1]

    def tail(self, chars: int | None = 1500) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:] if chars else text

    def stop(self, keep_temp: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the head drains and stops the processes it started
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # anything of its session still alive
            except ProcessLookupError:
                pass
        self.proc = None
        if not keep_temp:
            shutil.rmtree(self.temp, ignore_errors=True)
