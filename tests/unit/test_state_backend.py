"""The state backend's URL as the scripts read and print it (ops/deploy/state_backend.py)."""

from __future__ import annotations

from ops.deploy.state_backend import StateBackend, hide_passwords, turn_key


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
