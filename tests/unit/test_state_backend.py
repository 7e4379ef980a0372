"""The state backend's URL as the scripts read and print it (ops/deploy/state_backend.py)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
from pulumi import automation as auto

from ops.commands import state_backend as state_backend_command
from ops.deploy import driver, state_backend
from ops.deploy.state_backend import StateBackend, hide_passwords, turn_key
from ops.errors import ExitCode, UserError
from ops.paths import REPO_ROOT

SECRET = "Zq7-hunter2"  # a made-up password, looked for in what the scripts print
# The ways a password reaches a backend URL: in the user information (with a raw @ in it too, which
# libpq and Go read up to the last @), and as libpq's `password` parameter.
PASSWORD_URLS = {
    "user information": f"postgres://state:{SECRET}@127.0.0.1:1/state?sslmode=disable",
    "a raw @ in the password": f"postgresql://state:{SECRET}@x@127.0.0.1:1/state?sslmode=disable",
    "password parameter": f"postgres://state@127.0.0.1:1/state?sslmode=disable&password={SECRET}",
}


def test_a_password_in_a_backend_url_is_never_printed() -> None:
    engine_said = 'unable to open state database "postgres://state:s3cret@db:5432/state?sslmode=require": refused'
    assert hide_passwords(engine_said) == (
        'unable to open state database "postgres://state:****@db:5432/state?sslmode=require": refused'
    )
    assert hide_passwords("postgresql://u:p%40ss@h/d and file:///tmp/x") == "postgresql://u:****@h/d and file:///tmp/x"
    assert hide_passwords("postgres://state@db/state") == "postgres://state@db/state", "no password, nothing hidden"
    assert StateBackend("postgres://state:s3cret@db/state").shown == "postgres://state:****@db/state"


def test_libpq_gets_the_url_without_the_backends_own_table_parameter() -> None:
    backend = StateBackend("postgres://state@db:5432/state?sslmode=verify-full&table=team_state&sslrootcert=ca.pem")
    assert backend.is_postgres and not backend.is_file
    assert backend.table == "team_state"
    assert backend.conninfo() == "postgresql://state@db:5432/state?sslmode=verify-full&sslrootcert=ca.pem"
    assert StateBackend("postgres://state@db/state").table == "pulumi_state"
    assert StateBackend("file:///work/.state/pulumi").is_file


def test_each_stack_has_a_turn_of_its_own_that_fits_an_int4() -> None:
    keys = {turn_key(stack) for stack in ("dev", "staging", "prod", "review-1234")}
    assert len(keys) == 4 and all(-(2**31) <= key < 2**31 for key in keys)


def lock_url(url: str) -> str:
    """The engine's name of a stack's lock: the backend URL with the lock's key joined to its path."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + "/.pulumi/locks/organization/headhunter-db/prod/1f2e.json"))


def engine_failure(stderr: str, kind: type[auto.CommandError] = auto.CommandError) -> auto.CommandError:
    return kind(auto.CommandResult(stdout="", stderr=stderr, code=255))


def translated(failure: auto.CommandError) -> str:
    return str(driver.translate(failure, "prod"))


def raised(action: Callable[[], object]) -> str:
    with pytest.raises(UserError) as refused:
        action()
    return str(refused.value)


# Every way a message of the scripts names the backend URL or repeats the engine's words, given a URL.
MESSAGES: dict[str, Callable[[str], str]] = {
    "the engine's stack-locked error": lambda url: translated(
        engine_failure(
            "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
            f"delete the lock file with `pulumi cancel`.\n  {lock_url(url)}: created by ci@runner-7 (pid 4242) at "
            "2026-12-07T20:00:00Z",
            auto.ConcurrentUpdateError,
        )
    ),
    "a backend the engine cannot open": lambda url: translated(
        engine_failure(f'error: unable to open state database "{url}": failed to ping PostgreSQL')
    ),
    "PostgreSQL went away": lambda url: translated(
        engine_failure(f"error: pq: the database system is shutting down (state database {url})")
    ),
    "a config error": lambda url: translated(engine_failure(f"error: validating stack config: {url} is no key")),
    "a policy pack that did not start": lambda url: translated(engine_failure(f"error: policy pack not started {url}")),
    "a failed migration": lambda url: translated(engine_failure(f"error: MigrationFailedError beside {url}")),
    "an unreachable backend": lambda url: raised(lambda: state_backend.connect(StateBackend(url))),
    "a URL without ://": lambda url: raised(lambda: state_backend.check(StateBackend(url.replace("://", "//", 1)))),
    "state-backend with a URL without ://": lambda url: raised(lambda: backend_from(url.replace("://", "//", 1))),
    "state-backend with a URL naming no database": lambda url: raised(
        lambda: backend_from(urlunsplit(urlsplit(url)._replace(path="")))
    ),
    "the engine's own output": lambda url: printed(f"error: unable to open state database {url}\n"),
}


def backend_from(url: str) -> StateBackend:
    os.environ["PULUMI_BACKEND_URL"] = url  # restored by the test's monkeypatch
    return state_backend_command.backend_from_environment()


def printed(line: str) -> str:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        driver.printer()(line)
    return out.getvalue()


@pytest.mark.parametrize("form", PASSWORD_URLS)
@pytest.mark.parametrize("path", MESSAGES)
def test_no_message_prints_the_password_of_a_backend_url(path: str, form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "")
    message = MESSAGES[path](PASSWORD_URLS[form])
    assert SECRET not in message, message
    assert "postgres" in message and "****" in message, f"the message names the backend, its password hidden: {message}"


@pytest.mark.parametrize(
    "url",
    ["postgres//state:Zq7-hunter2@db:5432/state", "postgres:/state@db/state", "", "postgresql://state@db:5432/state"],
)
def test_a_backend_url_the_engine_cannot_read_stops_the_deploy_before_the_engine(url: str) -> None:
    """Pulumi would read it as Pulumi Cloud's address and ask for a PULUMI_ACCESS_TOKEN."""
    deploy = subprocess.run(
        [sys.executable, "-m", "ops.commands.deploy", "dev"],
        cwd=REPO_ROOT,
        env={**os.environ, "PULUMI_BACKEND_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = deploy.stdout + deploy.stderr
    assert deploy.returncode == ExitCode.BAD_INPUT, said
    assert "PULUMI_BACKEND_URL is " in said and "postgres://ROLE@HOST:PORT/DATABASE" in said, said
    assert "PULUMI_ACCESS_TOKEN" not in said and SECRET not in said, said
