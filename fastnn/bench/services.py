"""Throwaway servers for the tests and benchmarks of a distributed search: a PostgreSQL cluster,
a Dask cluster of separate processes (``dask scheduler``, ``dask worker``), and hosts of their own
(Linux network namespaces joined by a bridge) to run them on.

- ``PostgresServer(folder)``: ``initdb`` and ``pg_ctl`` in ``folder`` (as a user other than root,
  which PostgreSQL requires), listening on one address only (127.0.0.1 by default) with a
  password; ``url`` is its SQLAlchemy URL. ``postgres_binaries()`` finds the programs (on PATH or
  in Debian's /usr/lib/postgresql/VERSION/bin), or None.
- ``DaskCluster(workers)``: a scheduler and ``workers`` worker processes (each under its nanny,
  one thread), on 127.0.0.1 or on ``Hosts``; ``worker_pids()`` are the processes that run tasks,
  ``kill_worker(pid)`` kills one with SIGKILL.
- ``Hosts(n)``: ``n`` network namespaces, each with its own loopback and one veth link to a
  bridge on this machine (a private network 10.231.0.0/24 that reaches nothing else); ``command``
  wraps a command to run on host i under its own host name. Needs root (``CAP_NET_ADMIN``);
  ``Hosts.unavailable()`` says why not, or None.

Every server is bound to one address (loopback, or the bridge's private address), each is
stopped on ``close`` (also at exit), and nothing is left behind.
"""
import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

__all__ = ["DaskCluster", "Hosts", "PostgresServer", "ServiceError", "free_port",
           "postgres_binaries"]


class ServiceError(RuntimeError):
    """A throwaway server that could not be started."""


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on at ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout, process=None):
    """Until something accepts connections at (host, port); ServiceError after ``timeout``
    seconds or once ``process`` (a Popen) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{process.args[0]} ended with status {process.returncode} "
                               f"before listening on {host}:{port}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ServiceError(f"nothing listens on {host}:{port} after {timeout} s")


def postgres_binaries():
    """The folder holding initdb, pg_ctl and postgres (the newest of Debian's versions when they
    are not on PATH), or None."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(on_path))
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                     key=lambda f: int(f.split("/")[-2]) if f.split("/")[-2].isdigit() else 0)
    for folder in reversed(folders):
        if all(os.access(os.path.join(folder, p), os.X_OK) for p in ("initdb", "pg_ctl")):
            return folder
    return None


def _server_user():
    """(uid, gid) to run PostgreSQL as: this process's, or when root (which PostgreSQL refuses)
    the "postgres" user's, else "nobody"'s."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise ServiceError("PostgreSQL does not run as root, and there is no 'postgres' or 'nobody' "
                       "user to run it as")


class PostgresServer:
    """A PostgreSQL cluster in ``folder`` (created; removed on ``close``), listening on
    ``host``:``port`` only, with one database and one password-protected user."""

    def __init__(self, folder, host="127.0.0.1", port=None, database="fastnn", user="fastnn",
                 password=None):
        self.binaries = postgres_binaries()
        if self.binaries is None:
            raise ServiceError("PostgreSQL is not installed (no initdb): apt-get install "
                               "postgresql")
        self.folder, self.host, self.port = os.path.abspath(folder), host, port or free_port(host)
        self.database, self.user = database, user
        self.password = password or secrets.token_hex(8)
        self._uid, self._gid = _server_user()
        self._started = False
        os.makedirs(self.folder, exist_ok=True)
        os.chmod(self.folder, 0o755)
        # a root-owned temporary folder above must let the server's user through to its folder
        parent = os.path.dirname(self.folder)
        while os.geteuid() == 0 and parent != "/" and not os.stat(parent).st_mode & 0o001:
            os.chmod(parent, os.stat(parent).st_mode | 0o111)
            parent = os.path.dirname(parent)
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "server.log")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    @property
    def url(self):
        """The SQLAlchemy URL (driver left to SQLAlchemy: psycopg 3 with SQLAlchemy 2.1)."""
        return (f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/"
                f"{self.database}")

    def _run(self, *argv, timeout=120, env=None):
        result = subprocess.run([os.path.join(self.binaries, argv[0]), *argv[1:]],
                                user=self._uid, group=self._gid, cwd=self.folder, env=env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ServiceError(f"{argv[0]} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def _start(self):
        password_file = os.path.join(self.folder, "password")
        with open(password_file, "w") as f:
            f.write(self.password)
        os.chown(self.folder, self._uid, self._gid)
        os.chown(password_file, self._uid, self._gid)
        self._run("initdb", "-D", self.data, "-U", self.user, f"--pwfile={password_file}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        os.remove(password_file)
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:  # the listening subnet
            f.write("host all all samenet scram-sha-256\n")
        options = (f"-c listen_addresses={self.host} -p {self.port} -k {self.folder} "
                   f"-c fsync=off -c max_connections=200")
        self._started = True
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                  "-o", options)
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", self.user,
                  self.database, env={**os.environ, "PGPASSWORD": self.password})

    def restart(self):
        """Stop the server (fast: every connection is ended) and start it again."""
        self._run("pg_ctl", "restart", "-D", self.data, "-l", self.log, "-m", "fast", "-w", "-t",
                  "60")

    def close(self):
        """Stop the server (fast shutdown: connections are ended) and remove its folder."""
        if self._started:
            self._started = False
            try:
                self._run("pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", timeout=60)
            except (ServiceError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w")
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


#: The bridge's network: the bridge (this machine) is .1, host i is .(i + 2).
NETWORK = "10.231.0"


class Hosts:
    """``n`` hosts (network namespaces fnnNAME-i), each reaching this machine at
    ``NETWORK.1`` (``gateway``) through a bridge, and nothing else."""

    def __init__(self, n, name=None):
        self.name = name or f"f{os.getpid() % 100000}"
        self.gateway = f"{NETWORK}.1"
        self.bridge = f"{self.name}br"
        self.namespaces = [f"{self.name}n{i}" for i in range(n)]
        self.addresses = [f"{NETWORK}.{i + 2}" for i in range(n)]
        self._made = []
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    @staticmethod
    def unavailable():
        """Why hosts cannot be made here (not root, no ``ip``, namespaces refused), or None."""
        if not sys.platform.startswith("linux"):
            return "network namespaces are Linux's"
        if os.geteuid() != 0:
            return "making network namespaces needs root"
        if shutil.which("ip") is None or shutil.which("unshare") is None:
            return "needs ip (iproute2) and unshare (util-linux)"
        probe = f"fnnprobe{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            return f"ip netns add was refused: {made.stderr.strip()}"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return None

    def _ip(self, *argv, namespace=None):
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        result = subprocess.run([*prefix, "ip", *argv], capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"ip {' '.join(argv)}: {result.stderr.strip()}")

    def _make(self):
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", self.bridge))
        self._ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for i, (namespace, address) in enumerate(zip(self.namespaces, self.addresses)):
            subprocess.run(["ip", "netns", "add", namespace], check=True, capture_output=True)
            self._made.append(("netns", namespace))
            outside, inside = f"{self.name}v{i}", f"{self.name}i{i}"
            self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._made.append(("link", outside))
            self._ip("link", "set", inside, "netns", namespace)
            self._ip("link", "set", outside, "master", self.bridge)
            self._ip("link", "set", outside, "up")
            self._ip("link", "set", "lo", "up", namespace=namespace)
            self._ip("addr", "add", f"{address}/24", "dev", inside, namespace=namespace)
            self._ip("link", "set", inside, "up", namespace=namespace)

    def command(self, i, argv):
        """``argv`` to run on host ``i``: in its namespace, with host name ``NAME-hostI``."""
        return ["ip", "netns", "exec", self.namespaces[i], "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$@"', f"{self.name}-host{i}", *argv]

    def close(self):
        """Remove the namespaces, links and bridge (processes still in a namespace keep it
        until they end: stop them first)."""
        for kind, name in reversed(self._made):
            if kind == "link":
                subprocess.run(["ip", "link", "del", name], capture_output=True)
            else:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self._made = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class DaskCluster:
    """``dask scheduler`` on ``host`` and ``workers`` ``dask worker`` processes (``threads``
    threads each, under a nanny that restarts a killed worker), on this machine's loopback or,
    with ``hosts``, one worker per host of a ``Hosts`` (the scheduler then listens on its
    gateway). ``address`` is the scheduler's; ``env``: extra environment of the workers."""

    def __init__(self, workers=2, hosts=None, host="127.0.0.1", env=None, threads=1, timeout=60):
        if hosts is not None:
            host = hosts.gateway
            if workers > len(hosts.namespaces):
                raise ValueError(f"DaskCluster: {workers} workers for {len(hosts.namespaces)} "
                                 "hosts")
        self.host, self.port = host, free_port(host)
        self.address = f"tcp://{host}:{self.port}"
        self.hosts, self.processes = hosts, []
        self._env = {**os.environ, **(env or {}), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        dask = os.path.join(os.path.dirname(sys.executable), "dask")
        try:
            self.scheduler = self._spawn([dask, "scheduler", "--host", host, "--port",
                                          str(self.port), "--no-dashboard", "--no-show"])
            wait_for_port(host, self.port, timeout, self.scheduler)
            for i in range(workers):
                argv = [dask, "worker", self.address, "--nthreads", str(threads), "--nworkers", "1",
                        "--no-dashboard", "--memory-limit", "0", "--name", f"worker-{i}"]
                if hosts is not None:
                    argv = hosts.command(i, [*argv, "--host", hosts.addresses[i]])
                else:
                    argv += ["--host", host]
                self._spawn(argv)
            if workers:
                self.wait_for_workers(workers, timeout)
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    def _spawn(self, argv):
        process = subprocess.Popen(argv, env=self._env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def client(self, **kwargs):
        from distributed import Client

        return Client(self.address, **kwargs)

    def wait_for_workers(self, n, timeout=60):
        with self.client(timeout=timeout) as client:
            client.wait_for_workers(n, timeout=timeout)

    def worker_pids(self):
        """{worker address: pid of the process that runs its tasks}."""
        with self.client(timeout=30) as client:
            return client.run(os.getpid)

    def kill_worker(self, pid):
        """SIGKILL the worker process ``pid`` (in the middle of whatever it runs)."""
        os.kill(pid, signal.SIGKILL)

    def close(self):
        """Stop every process (their sessions: the nannies' workers too)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
