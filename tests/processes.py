"""Web and worker processes for scale-out tests: real subprocesses on loopback."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
# With REDIS_URL set, this test run's keys and worker queue, apart from any other's.
REDIS_PREFIX = os.environ["CHAT_REDIS_PREFIX"]  # set by tests/environment.py
WORKER_CHANNEL = f"chat-generate-test{os.getpid()}"


def database_url() -> str:
    """The test database, as DATABASE_URL, so subprocesses share it with the test."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(redis_url: str, **extra) -> dict:
    """The settings a subprocess gets: this test run's database, Redis and namespaces."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CHAT_REDIS_PREFIX": REDIS_PREFIX,
        "CHAT_WORKER_CHANNEL": WORKER_CHANNEL,
        "CHAT_MODEL_CACHE_DIR": str(settings.CHAT_MODEL_CACHE_DIR),
        "CHAT_FAKE_MODEL": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({name: str(value) for name, value in extra.items()})
    return env


def _die_with_parent() -> None:
    """Linux: if the test run itself is killed, take its servers and workers along."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Process:
    """A subprocess with its output in a log file, stopped (or killed) on demand."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never said {text!r}:\n{self.output()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no goodbye, as when a machine dies."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server of the test's own on `port`, once it answers (no persistence)."""
    args = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start") from None
            time.sleep(0.05)
        finally:
            client.close()


def start_worker(env: dict, log_dir: Path, name: str = "worker") -> Process:
    worker = Process(name, [sys.executable, "manage.py", "generation_worker"], env, log_dir)
    worker.wait_for_output("generation worker ready")
    return worker


def start_web(env: dict, log_dir: Path, name: str, *uvicorn: str) -> tuple[Process, str]:
    web, url = launch_web(env, log_dir, name, *uvicorn)
    wait_for_web(web, url)
    return web, url


def launch_local_web(log_dir: Path, cache_dir: Path, model: str) -> tuple[Process, str]:
    """A fresh web process on the local model, in-process (no Redis), loading it as it starts."""
    env = environment(
        "",
        CHAT_LOCAL_PRELOAD="true",
        CHAT_LOCAL_ENABLED="true",
        CHAT_DEFAULT_MODEL=model,
        CHAT_MODEL_CACHE_DIR=cache_dir,
        CHAT_MAX_NEW_TOKENS=12,
        OPENAI_MODELS="",
    )
    return launch_web(env, log_dir, "web")


def launch_web(env: dict, log_dir: Path, name: str, *uvicorn: str) -> tuple[Process, str]:
    """A web server (uvicorn, with any more of its options) and its address, without waiting
    for it (or asking it anything)."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "chatsite.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", *uvicorn]  # fmt: skip
    return Process(name, args, env, log_dir), f"http://127.0.0.1:{port}"


def serving_process(response: httpx.Response, web: Process) -> int:
    """Which of a web server's processes (uvicorn --workers) holds the server's end of the
    connection `response` came on; the connection must still be open."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    server_end = f"socket:[{_server_end_inode(client_port, response.url.port)}]"
    for pid in process_tree(web.popen.pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it ended meanwhile
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == server_end:
                        return pid
                except OSError:
                    continue  # closed meanwhile
    raise AssertionError(f"no process of {web.name} holds the connection from port {client_port}")


def _server_end_inode(client_port: int, server_port: int) -> str:
    """The inode of the loopback socket on `server_port` connected to `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (server_port, client_port):
            return fields[9]
    raise AssertionError(f"no connection from port {client_port} to port {server_port}")


def process_tree(pid: int) -> list[int]:
    """The process `pid` and every process under it."""
    found, pending = [], [pid]
    while pending:
        found.append(current := pending.pop())
        pending += _children(current)
    return found


def _children(pid: int) -> list[int]:
    """The processes `pid`'s threads started; a thread or process that ends meanwhile has none."""
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                children += map(int, (task / "children").read_text().split())
    except (FileNotFoundError, ProcessLookupError):
        pass  # the process itself has ended
    return children


def wait_for_web(web: Process, url: str, timeout: float = 30) -> None:
    """Wait until the web process answers a page."""
    name = web.name
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/login/", timeout=1)
            return
        except httpx.TransportError:
            if web.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{web.output()}") from None
            time.sleep(0.1)
