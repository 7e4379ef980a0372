"""scripts/localpg: a throwaway cluster in its own state folder, driven as a user would."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ops.paths import REPO_ROOT


def localpg(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HEADHUNTER_STATE_DIR=str(state_dir))
    return subprocess.run(
        [sys.executable, "-m", "ops.commands.localpg", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    localpg(state, "reset")


def exports(output: str) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in output.splitlines())
    return {key: value.strip("'") for key, value in pairs}


def test_start_env_status_stop(state_dir: Path) -> None:
    os.chmod(state_dir.parent, 0o755)  # the server account must reach the cluster's folder
    assert localpg(state_dir, "status").returncode == 3
    started = localpg(state_dir, "start")
    assert started.returncode == 0, started.stderr
    assert localpg(state_dir, "status").returncode == 0

    env_output = localpg(state_dir, "env").stdout
    values = exports(env_output)
    assert values["PGHOST"] == "127.0.0.1" and values["PGUSER"] == "postgres"
    with psycopg.connect(
        host=values["PGHOST"],
        port=values["PGPORT"],
        user=values["PGUSER"],
        password=values["PGPASSWORD"],
        dbname=values["PGDATABASE"],
    ) as connection:
        server_major = int(connection.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
        method = connection.execute("SHOW password_encryption").fetchone()
        assert method == ("scram-sha-256",)
        assert connection.execute(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'"
        ).fetchone() == (True,)

        durability = connection.execute(
            "SELECT current_setting('fsync'), current_setting('synchronous_commit'), "
            "current_setting('full_page_writes')"
        ).fetchone()
        assert durability == ("on", "on", "on")  # a commit the deploy recorded survives a crash

    # The same exports put pg_dump of the server's own major first on PATH: an older one refuses the server.
    path_export = next(line for line in env_output.splitlines() if line.startswith("export PATH="))
    clients = shlex.split(path_export.removeprefix("export PATH="))[0].split(os.pathsep)[0]
    dump_version = subprocess.run([f"{clients}/pg_dump", "--version"], capture_output=True, text=True, check=True)
    assert dump_version.stdout.split()[-1].split(".")[0] == str(server_major)

    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert values["PGPASSWORD"] not in processes

    # Sessions the server ends itself leave its side of each connection in TIME_WAIT on the port.
    for _ in range(3):
        lingering = psycopg.connect(
            host=values["PGHOST"], port=values["PGPORT"], user="postgres", password=values["PGPASSWORD"]
        )
        with psycopg.connect(
            host=values["PGHOST"], port=values["PGPORT"], user="postgres", password=values["PGPASSWORD"]
        ) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (lingering.info.backend_pid,))
        lingering.close()
    assert localpg(state_dir, "stop").returncode == 0
    assert localpg(state_dir, "start").returncode == 0  # a restart keeps the address the stack exported
    assert exports(localpg(state_dir, "env").stdout)["PGPORT"] == values["PGPORT"]
    assert localpg(state_dir, "stop").returncode == 0
    stopped = localpg(state_dir, "status")
    assert stopped.returncode == 3 and "scripts/localpg start" in stopped.stdout

    cluster = (state_dir / "localpg" / "cluster").resolve()
    assert localpg(state_dir, "reset").returncode == 0
    assert not cluster.exists() and not (state_dir / "localpg").exists()


def test_a_wrong_password_is_refused_over_tcp(state_dir: Path) -> None:
    os.chmod(state_dir.parent, 0o755)
    assert localpg(state_dir, "start").returncode == 0
    values = exports(localpg(state_dir, "env").stdout)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=values["PGHOST"], port=values["PGPORT"], user="postgres", password="wrong", dbname="postgres"
        )


def test_env_before_start_says_how_to_fix_it(state_dir: Path) -> None:
    result = localpg(state_dir, "env")
    assert result.returncode == 2
    assert "has not been created yet: run `scripts/localpg start`" in result.stderr


@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_a_login_that_is_no_admin_cannot_reach_the_servers_own_databases(state_dir: Path, database: str) -> None:
    os.chmod(state_dir.parent, 0o755)
    assert localpg(state_dir, "start").returncode == 0
    values = exports(localpg(state_dir, "env").stdout)
    admin = make_conninfo(host=values["PGHOST"], port=values["PGPORT"], user="postgres", password=values["PGPASSWORD"])
    with psycopg.connect(admin, dbname="postgres", autocommit=True) as connection:
        connection.execute("CREATE ROLE some_login LOGIN PASSWORD 'some-password'")
    with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "{database}"'):
        psycopg.connect(admin, user="some_login", password="some-password", dbname=database)
    with psycopg.connect(admin, dbname=database) as connection:  # the admin keeps them
        assert connection.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')").fetchone() == (
            True,
        )
