"""Real services for the tests: found on PATH, started on 127.0.0.1, always stopped.

Locally a missing binary skips the test that needs it; in CI (``CI=true``) it fails, so a
green CI run means the real service was exercised.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """The path of ``name``; skip the test (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/install-services.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    """Block until something accepts connections on ``host:port``, or raise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def stop_process(process: subprocess.Popen[Any], *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` is still there after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisServer:
    """A throw-away redis-server on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="buttress-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        # No persistence: every start is an empty server, as after a crash with no disk.
        options = {"bind": "127.0.0.1", "port": str(self.port), "save": "", "appendonly": "no"}
        argv = [self.binary, "--dir", str(self._dir)]
        for key, value in options.items():
            argv += [f"--{key}", value]
        self._process = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        stop_process(self._process)
        self._process = None

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a valid free port too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisCluster:
    """A throw-away Redis Cluster of ``masters`` redis-servers on 127.0.0.1, no replicas.

    Each node runs with ``--cluster-enabled yes`` on a free port; ``redis-cli --cluster
    create`` assigns the slots; every wait is bounded and every node is stopped on exit.
    """

    def __init__(self, binary: str, cli: str, masters: int = 3) -> None:
        self.binary = binary
        self.cli = cli
        self.ports = [_cluster_port() for _ in range(masters)]
        self._dir = Path(tempfile.mkdtemp(prefix="buttress-redis-cluster-"))
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    def _cli(self, *argv: str, timeout: float = 30.0) -> str:
        done = subprocess.run(
            [self.cli, *argv], capture_output=True, text=True, timeout=timeout, check=True
        )
        return done.stdout

    def start(self) -> None:
        for port in self.ports:
            node = self._dir / str(port)
            node.mkdir()
            argv = [self.binary, "--dir", str(node), "--bind", "127.0.0.1", "--port", str(port)]
            argv += ["--save", "", "--appendonly", "no", "--cluster-enabled", "yes"]
            argv += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"]
            self._processes.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in self.ports:
            wait_for_port(port)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        self._cli("--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes")
        deadline = time.monotonic() + 30
        while True:
            info = self._cli("-p", str(self.ports[0]), "cluster", "info", timeout=5)
            if "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Redis Cluster on {nodes} never became ok: {info}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self._processes:
            stop_process(process)
        self._processes = []

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class RedisSentinel:
    """A Redis Sentinel on 127.0.0.1 watching ``server`` as the master ``name``.

    It is redis-server in sentinel mode (``--sentinel``), as the redis-sentinel binary is.
    """

    def __init__(self, binary: str, server: RedisServer, name: str = "main") -> None:
        self.binary = binary
        self.server = server
        self.name = name
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="buttress-redis-sentinel-"))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisSentinel:
        config = self._dir / "sentinel.conf"
        config.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self._dir}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.server.port} 1\n"
        )
        self._process = subprocess.Popen(
            [self.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)
