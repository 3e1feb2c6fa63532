"""memcached and Redis servers on 127.0.0.1 for the shared session cache tests.

Each server runs in the foreground as a child of the test process, on a port picked
at start, and keeps no data on disk. Use them as context managers, so that the server
stops even when the test fails:

    with Memcached(workdir) as cache:
        spec = cache.socache_spec  # "memcache:127.0.0.1:PORT" for ScalekitSessionCache
"""

import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

import scalekit_harness as harness

MEMCACHED = "/usr/bin/memcached"
REDIS_SERVER = "/usr/bin/redis-server"

STARTUP_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 2
# Maximum number of starts, each on a newly picked port, when another process takes
# the port first.
BIND_ATTEMPTS = 3


class CacheServer:
    """A memcached or redis-server process, started by start() and ended by stop().

    Subclasses set name, socache_module (module name, file in /usr/lib/apache2/modules)
    and socache_scheme, and implement command(), probe() and item_count().
    """

    name = None
    socache_module = None
    socache_scheme = None

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.port = None
        self.process = None
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def socache_spec(self):
        """The ScalekitSessionCache value that names this server."""
        return f"{self.socache_scheme}:127.0.0.1:{self.port}"

    def start(self):
        for attempt in range(BIND_ATTEMPTS):
            self.port = harness.free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            if self._wait_until_ready():
                return
            exited = self.process.poll() is not None
            self.stop()
            if not exited or attempt == BIND_ATTEMPTS - 1:
                break
        raise RuntimeError(
            f"{self.name} did not respond on 127.0.0.1:{self.port} within "
            f"{STARTUP_TIMEOUT_SECONDS} s; its output:\n{self.output()}"
        )

    def _wait_until_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if self.probe():
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        """Stop the server with SIGTERM, or SIGKILL after STOP_TIMEOUT_SECONDS."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def output(self):
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def send_command(self, line):
        """Send one text protocol command and return the first reply line."""
        with socket.create_connection(
            ("127.0.0.1", self.port), timeout=PROBE_TIMEOUT_SECONDS
        ) as connection:
            connection.sendall(line.encode("ascii") + b"\r\n")
            reply = b""
            while b"\r\n" not in reply:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.decode("ascii", errors="replace").split("\r\n", 1)[0]

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()


class Memcached(CacheServer):
    """Debian's memcached, TCP on 127.0.0.1 only and UDP off."""

    name = "memcached"
    socache_module = ("socache_memcache_module", "mod_socache_memcache.so")
    socache_scheme = "memcache"

    def command(self):
        command = [
            MEMCACHED,
            "-l",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "0",
            "-m",
            "16",
        ]
        # memcached refuses to run as root unless -u names the user to switch to.
        if os.geteuid() == 0:
            command += ["-u", memcached_user()]
        return command

    def probe(self):
        return self.send_command("version").startswith("VERSION ")

    def item_count(self):
        """Return curr_items from the stats command."""
        with socket.create_connection(
            ("127.0.0.1", self.port), timeout=PROBE_TIMEOUT_SECONDS
        ) as connection:
            connection.sendall(b"stats\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
        for line in reply.decode("ascii", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[:2] == ["STAT", "curr_items"]:
                return int(parts[2])
        raise RuntimeError(f"memcached stats has no curr_items: {reply!r}")


def memcached_user():
    """Return Debian's memcache account, or nobody where the package did not add it."""
    try:
        return pwd.getpwnam("memcache").pw_name
    except KeyError:
        return "nobody"


class Redis(CacheServer):
    """Debian's redis-server on 127.0.0.1 only, without RDB snapshots or an AOF."""

    name = "redis"
    socache_module = ("socache_redis_module", "mod_socache_redis.so")
    socache_scheme = "redis"

    def command(self):
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]

    def probe(self):
        return self.send_command("PING") == "+PONG"

    def item_count(self):
        """Return the number of keys (DBSIZE)."""
        reply = self.send_command("DBSIZE")
        if not reply.startswith(":"):
            raise RuntimeError(f"redis DBSIZE returned {reply!r}")
        return int(reply[1:])
