"""A private RabbitMQ node for a test or a tool: started, stopped, restarted with its data
kept, and always cleaned up. It never touches the shared node (rabbit@localhost on 5672).

The node has its own name (``kyoto-<hex>@localhost``), its own AMQP, TLS, management and
Erlang distribution ports (free ones), its own data (mnesia) and log directories under a
work directory, and its own configuration file: the system configuration pins port 5672,
so ``RABBITMQ_CONFIG_FILE`` points at ours, and ``RABBITMQ_CONF_ENV_FILE`` at an empty
file so that the system's ``rabbitmq-env.conf`` (which names the shared node) is not
read. ``HOME`` is the work directory, so the node and the ``rabbitmqctl`` calls made for
it share a cookie of their own. The node registers with the machine's epmd like any
other node (starting it if none runs).

    with RabbitNode() as node:           # started; stopped and deleted at the end
        connection = await aio_pika.connect(node.url)
        node.restart()                   # graceful; node.restart(hard=True) kills -9
        await node.admin.import_definitions(document)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from shared.messaging.provisioning import RabbitmqCtl
from shared.testing.infra import free_port, process_alive, wait_for_port

#: Where the packaged scripts that run as the calling user live (``/usr/sbin`` holds
#: wrappers that switch to the rabbitmq user, who could not read our work directory).
PACKAGED_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
SHARED_NODE_PORT = 5672


def rabbitmq_script(name: str) -> str:
    """The path of ``rabbitmq-server`` or ``rabbitmqctl``: ``RABBITMQ_SCRIPTS`` (a
    directory) if set, the packaged scripts, else the command on ``PATH``."""
    for directory in (os.environ.get("RABBITMQ_SCRIPTS"), str(PACKAGED_SCRIPTS)):
        if directory and (Path(directory) / name).exists():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install RabbitMQ or set RABBITMQ_SCRIPTS")
    return found


def _distribution_port() -> int:
    # rabbitmqctl takes its own port at distribution port + 10000..10010: keep it valid
    while True:
        port = free_port()
        if port < 55000:
            return port


@dataclass(frozen=True)
class NodeTls:
    """A TLS listener: the node's certificate authority, certificate and key (PEM), and
    whether it asks for a client certificate (``verify_peer``) and refuses a client
    without one (``require_client_certificate``)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    verify_peer: bool = True
    require_client_certificate: bool = False


class RabbitNode:
    """One private RabbitMQ node (see the module docstring).

    ``extra_config`` lines are added to its ``rabbitmq.conf``. ``url`` is the plain AMQP
    URL as guest (the node's administrator, loopback only; absent when the node boots
    with definitions that do not define it),
    ``tls_url`` the TLS one, ``management_url`` the management API's (with
    ``management=True``), ``admin`` a ``RabbitmqCtl`` for this node. Start and restart
    wait until the node has finished booting (``timeout`` real seconds).
    """

    def __init__(self, workdir: Path | None = None, *, tls: NodeTls | None = None,
                 management: bool = False, extra_config: Sequence[str] = (),
                 timeout: float = 90.0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="rabbit-node-")) if workdir is None \
            else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = f"kyoto-{uuid.uuid4().hex[:10]}@localhost"
        self.port = free_port()
        self.dist_port = _distribution_port()
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.management_port = free_port() if management else None
        self.timeout = timeout
        self.extra_config = tuple(extra_config)
        self.process: subprocess.Popen[bytes] | None = None
        if SHARED_NODE_PORT in (self.port, self.tls_port):  # free_port never gives it
            raise RuntimeError("a private node must not listen on the shared node's port")
        self._write_configuration()
        self.admin = RabbitmqCtl((rabbitmq_script("rabbitmqctl"),), node=self.name,
                                 env=self._environment())
        self._registered = False

    # configuration

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("this node has no TLS listener")
        return f"amqps://guest:guest@localhost:{self.tls_port}/"

    @property
    def management_url(self) -> str:
        if self.management_port is None:
            raise RuntimeError("this node runs without the management plugin")
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "log" / "console.log"

    def _write_configuration(self) -> None:
        lines = [f"listeners.tcp.1 = 127.0.0.1:{self.port}",
                 "log.console = false",
                 "log.file.level = info"]
        if self.tls is not None:
            lines += [f"listeners.ssl.1 = 127.0.0.1:{self.tls_port}",
                      f"ssl_options.cacertfile = {self.tls.ca_file}",
                      f"ssl_options.certfile = {self.tls.cert_file}",
                      f"ssl_options.keyfile = {self.tls.key_file}",
                      "ssl_options.verify = "
                      + ("verify_peer" if self.tls.verify_peer else "verify_none"),
                      "ssl_options.fail_if_no_peer_cert = "
                      + str(self.tls.require_client_certificate).lower()]
        if self.management_port is not None:
            lines += ["management.tcp.ip = 127.0.0.1",
                      f"management.tcp.port = {self.management_port}"]
        lines += self.extra_config
        (self.workdir / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        plugins = "rabbitmq_management" if self.management_port is not None else ""
        (self.workdir / "enabled_plugins").write_text(f"[{plugins}].\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")
        (self.workdir / "log").mkdir(exist_ok=True)

    def _environment(self) -> dict[str, str]:
        return {
            "HOME": str(self.workdir),
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_PID_FILE": str(self.workdir / "node.pid"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    # life cycle

    def start(self) -> None:
        """Start the node (keeping the data of an earlier run) and wait until it has
        booted; raises ``RuntimeError`` with the end of its log when it does not."""
        if self.running:
            return
        if not self._registered:
            atexit.register(self.close)
            self._registered = True
        inherited = {key: value for key, value in os.environ.items()
                     if not key.startswith(("RABBITMQ_", "ERL_"))}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [rabbitmq_script("rabbitmq-server")],
                env={**inherited, **self._environment()}, cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self._await_startup()
        except Exception as exc:
            self.kill()
            raise RuntimeError(f"RabbitMQ node {self.name} did not start: {exc}; "
                               f"log {self.log_path}:\n{self._log_tail()}") from exc

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the node gracefully (its launcher turns SIGTERM into a clean shutdown);
        killed after ``timeout`` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._wait_node_gone()
        self.process = None

    def kill(self) -> None:
        """Kill the node with SIGKILL: what it had not written to disk is lost."""
        beam = self._node_pid()
        if beam is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
        self._wait_node_gone()
        self.process = None

    def restart(self, hard: bool = False) -> None:
        """Stop (``hard``: kill -9) and start again on the same ports and data."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node and delete its work directory (if this node made it)."""
        try:
            self.stop()
        finally:
            if self._registered:
                atexit.unregister(self.close)
                self._registered = False
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # helpers

    def _ctl(self, *args: str) -> str:
        completed = subprocess.run(
            [rabbitmq_script("rabbitmqctl"), "-n", self.name, "-q", *args],
            env={**os.environ, **self._environment()}, capture_output=True,
            timeout=self.timeout + 10, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: "
                               f"{(completed.stdout + completed.stderr).decode()[-2000:]}")
        return completed.stdout.decode()

    def _await_startup(self) -> None:
        """Wait for the AMQP port, then until ``rabbitmqctl await_startup`` answers (it
        fails at once while the node is not yet registered with epmd)."""
        deadline = time.monotonic() + self.timeout
        wait_for_port(self.port, self.timeout, self.process)
        while True:
            try:
                self._ctl("await_startup", "--timeout", str(int(self.timeout)))
                return
            except RuntimeError:
                if time.monotonic() > deadline or not self.running:
                    raise
                time.sleep(0.2)

    def _node_pid(self) -> int | None:
        try:
            return int((self.workdir / "node.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _wait_node_gone(self) -> None:
        """Wait until the Erlang VM has exited and its ports are free again."""
        beam = self._node_pid()
        deadline = time.monotonic() + self.timeout
        while beam is not None and time.monotonic() < deadline and process_alive(beam):
            time.sleep(0.05)
        if beam is not None and process_alive(beam):
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, signal.SIGKILL)
        with contextlib.suppress(OSError):
            (self.workdir / "node.pid").unlink()
        # the kernel may still complete connections to a dying node's listening sockets
        for port in (self.port, self.tls_port, self.management_port, self.dist_port):
            while port is not None and time.monotonic() < deadline and _accepts(port):
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
