"""Stack configuration: bad input is refused with the key and the fix, before any resource."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from infra import embedded_server
from infra.embedded_server import STATE_DIR_ENV_VAR
from infra.settings import (
    ADOPT_EXISTING_ENV_VAR,
    NAMESPACE,
    PLAIN_KEYS,
    PROJECT_DIR_ENV_VAR,
    SECRET_KEYS,
    ConfigError,
    embedded_major_mismatch,
    parse_settings,
)
from migrations.shared.heads import MIGRATIONS_COPY_ENV_VAR
from model.names import DatabaseKey
from ops.paths import REPO_ROOT

VALID = {
    "host": "db.internal",
    "adminUser": "admin",
    "adminPassword": "<secret: set>",
    "mainDatabase": "headhunter_db",
    "logsDatabase": "headhunter_logs",
    "rolePrefix": "headhunter",
}


def parse(**changes: str | None) -> object:
    raw = {**VALID, **changes}
    return parse_settings("staging", {key: value for key, value in raw.items() if value is not None})


def test_a_valid_stack_parses_into_typed_settings() -> None:
    settings = parse(
        connectionLimits=json.dumps({"app": 20}), readOnlyRoles=json.dumps([{"name": "bi_reader", "database": "main"}])
    )
    assert settings.database_names[DatabaseKey.LOGS] == "headhunter_logs"  # type: ignore[attr-defined]
    assert settings.server.port == 5432 and settings.server.sslmode == "require"  # type: ignore[attr-defined]
    assert settings.connection_limits == {"app": 20}  # type: ignore[attr-defined]
    assert settings.protect_databases  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": None}, "Pulumi.staging.yaml: headhunter-db:host is missing: set it with `pulumi config set"),
        ({"adminPassword": None}, "`pulumi config set --secret headhunter-db:adminPassword"),
        ({"mainDatabase": "a" * 64}, "is 64 bytes long and PostgreSQL would truncate it to 63"),
        (
            {"logsDatabase": "headhunter logs"},
            "headhunter-db:logsDatabase is 'headhunter logs', and it would need quoting",
        ),
        ({"logsDatabase": 'logs"db'}, "it would need quoting"),
        ({"logsDatabase": "headhunter_db"}, "the same as mainDatabase"),
        ({"rolePrefix": "p" * 50}, "makes the role name"),
        ({"sslmode": "on"}, "headhunter-db:sslmode is 'on', an unknown value: use one of disable, allow"),
        ({"port": "five"}, "headhunter-db:port is 'five', not a whole number"),
        (
            {"production": "true", "allowDatabaseDeletion": "true"},
            "allowDatabaseDeletion is true on a stack marked production",
        ),
        (
            {"readOnlyRoles": json.dumps([{"name": "headhunter_app", "database": "main"}])},
            "names the role 'headhunter_app' twice",
        ),
        ({"readOnlyRoles": json.dumps([{"name": "bi", "database": "analytics"}])}, "use main or logs"),
        ({"connectionLimits": json.dumps({"nobody": 3})}, "names the unknown role 'nobody'"),
        ({"readOnlyRoles": json.dumps([{"name": "app", "database": "logs"}])}, "names the role 'app' twice"),
        (
            {"readOnlyRoles": json.dumps([{"name": "headhunter_logs_readers", "database": "main"}])},
            "names the role 'headhunter_logs_readers' twice",  # the logs database's readers group
        ),
        (
            {"readOnlyRoles": json.dumps([{"name": "pg_monitor", "database": "logs"}])},
            "readOnlyRoles names the role 'pg_monitor', which makes 'pg_monitor', 'pg_monitor_a', 'pg_monitor_b': "
            "PostgreSQL reserves names starting with pg_",
        ),
        (
            {"readOnlyRoles": json.dumps([{"name": "pg", "database": "main"}])},
            "names the role 'pg', which makes 'pg_a', 'pg_b': PostgreSQL reserves names starting with pg_",
        ),
        ({"rolePrefix": "pg"}, "rolePrefix makes the role name 'pg_main_owner', and PostgreSQL reserves names"),
        ({"minServerVersion": "14"}, "headhunter-db:minServerVersion is 14: give a number at least 15"),
        ({"connectionLimits": "{not json"}, "is not valid structured config"),
        ({"legacyRoles": json.dumps({"headhunter": "delete"})}, "gives headhunter 'delete': use one of keep, nologin"),
        ({"legacyRoles": json.dumps({"headhunter_app": "drop"})}, "names 'headhunter_app', the admin or a role of"),
        ({"legacyRoles": json.dumps({"admin": "nologin"})}, "names 'admin', the admin or a role of this stack"),
        ({"legacyRoles": json.dumps(["headhunter"])}, "legacyRoles is not a map"),
        ({"logRetention": json.dumps({"system_logs": "0d"})}, "logRetention gives system_logs 0 days: give 1d to"),
        ({"logRetention": json.dumps({"system_logs": "-3d"})}, "gives system_logs '-3d', not a number of days"),
        ({"logRetention": json.dumps({"system_logs": "30"})}, "gives system_logs '30', not a number of days"),
        ({"logRetention": json.dumps({"system_logs": "99999d"})}, "gives system_logs 99999 days: give 1d to 3660d"),
        ({"logRetention": json.dumps({"user_invitations": "30d"})}, "names 'user_invitations', not a log table"),
        ({"logRetention": json.dumps(["30d"])}, "logRetention is not a map"),
        (
            {"logRetention": json.dumps({"system_logs": "7d"}), "logPremake": "14d"},
            "keeps system_logs 7 days, less than the 14-day premake window (logPremake): keep it at least 14d",
        ),
        ({"logPremake": "0d"}, "headhunter-db:logPremake gives the premake window 0 days: give 1d to 366d"),
        ({"logPremake": "2w"}, "logPremake gives the premake window '2w', not a number of days: write it as <n>d"),
        ({"logPremake": "400d"}, "gives the premake window 400 days: give 1d to 366d"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(**changes)
    assert message in str(refused.value)


def test_log_retention_defaults_per_table_and_takes_the_stack_value() -> None:
    default = parse().log_lifecycle  # type: ignore[attr-defined]
    assert (default.retention_days, default.premake_days) == ({"system_logs": 30, "llm_logs": 400}, 14)
    changed = parse(logRetention=json.dumps({"llm_logs": "90d"}), logPremake="3d").log_lifecycle  # type: ignore[attr-defined]
    assert (changed.retention_days, changed.premake_days) == ({"system_logs": 30, "llm_logs": 90}, 3)


def test_an_embedded_stack_must_not_also_name_a_host() -> None:
    with pytest.raises(ConfigError, match="host is set while embeddedServer is true"):
        parse(embeddedServer="true")


@pytest.mark.parametrize("port", ["70000", "6543"])
def test_an_embedded_stack_must_not_set_a_port_it_would_ignore(port: str) -> None:
    with pytest.raises(ConfigError, match=f"port is {port} while embeddedServer is true: remove it"):
        parse(embeddedServer="true", host=None, adminPassword=None, port=port)


def test_an_embedded_stack_takes_the_port_default_the_engine_passes_and_uses_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV_VAR, str(tmp_path))  # as scripts/localpg start leaves it there
    embedded_server.folder(tmp_path).mkdir()
    embedded_server.write(embedded_server.EmbeddedServer("127.0.0.1", 28600, "postgres", tmp_path))
    embedded_server.password_file(tmp_path).write_text("unused")
    settings = parse(embeddedServer="true", host=None, adminPassword=None, port="5432")
    assert settings.server.port == 28600  # type: ignore[attr-defined]


def test_the_embedded_servers_major_is_a_supported_one_and_a_deploy_needs_the_one_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV_VAR, str(tmp_path))
    embedded_server.folder(tmp_path).mkdir()
    embedded_server.write(embedded_server.EmbeddedServer("127.0.0.1", 28600, "postgres", tmp_path, major=16))
    embedded_server.password_file(tmp_path).write_text("unused")
    embedded = {"embeddedServer": "true", "host": None, "adminPassword": None}
    with pytest.raises(ConfigError, match=re.escape("embeddedServerVersion is '14': give one of the supported")):
        parse(**embedded, embeddedServerVersion="14")
    other = parse(**embedded, embeddedServerVersion="17")  # a destroy or a verify still reads the stack
    mismatch = embedded_major_mismatch(other)  # type: ignore[arg-type]
    assert mismatch is not None and "is 17, and this checkout's embedded server runs PostgreSQL 16" in mismatch
    assert embedded_major_mismatch(parse(**embedded, embeddedServerVersion="16")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "accepted"), [("14", False), ("15", True), ("18", True), ("19", False), ("x", False)]
)
def test_the_embedded_servers_major_is_refused_on_both_sides_of_the_supported_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, accepted: bool
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV_VAR, str(tmp_path))
    embedded_server.folder(tmp_path).mkdir()
    embedded_server.write(embedded_server.EmbeddedServer("127.0.0.1", 28600, "postgres", tmp_path, major=18))
    embedded_server.password_file(tmp_path).write_text("unused")
    embedded = {"embeddedServer": "true", "host": None, "adminPassword": None, "embeddedServerVersion": version}
    if accepted:
        assert parse(**embedded).server.embedded_major == int(version)  # type: ignore[attr-defined]
    else:
        with pytest.raises(ConfigError, match=re.escape(f"embeddedServerVersion is '{version}': give one of the")):
            parse(**embedded)


def test_a_stack_on_its_own_server_names_no_embedded_major() -> None:
    with pytest.raises(ConfigError, match="embeddedServerVersion is set while embeddedServer is false"):
        parse(embeddedServerVersion="17")


def test_pulumi_yaml_declares_exactly_the_keys_the_program_reads() -> None:
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {f"{NAMESPACE}:{key}" for key in (*PLAIN_KEYS, *SECRET_KEYS)}
    assert all(entry.get("description") for entry in declared.values())
    assert declared[f"{NAMESPACE}:adminPassword"].get("secret") is True


def test_the_engine_requires_exactly_the_keys_the_program_requires() -> None:
    """A key without a default in Pulumi.yaml is one the engine refuses to run without."""
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    engine_required = {key.removeprefix(f"{NAMESPACE}:") for key, entry in declared.items() if "default" not in entry}
    program_required = set()
    for key in PLAIN_KEYS + SECRET_KEYS:
        try:
            parse(**{key: None})
        except ConfigError as refused:
            if f"{NAMESPACE}:{key} is missing" in str(refused):
                program_required.add(key)
    # host and adminPassword are required only for a server that is not the embedded one.
    assert engine_required == program_required - {"host", "adminPassword"}


def test_unset_keys_take_the_defaults_that_pulumi_yaml_declares() -> None:
    settings = parse()
    assert settings.server.port == 5432 and settings.server.admin_is_superuser  # type: ignore[attr-defined]
    assert settings.server.min_version == "15" and not settings.production  # type: ignore[attr-defined]
    assert settings.connection_limits == {} and settings.read_only_roles == ()  # type: ignore[attr-defined]


def test_an_unknown_key_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="headhunter-db:hots is not a key this program reads"):
        parse(hots="db.internal")


def test_a_password_rotation_is_read_per_role() -> None:
    settings = parse(passwordRotations=json.dumps({"logs_writer": 2}))
    assert settings.password_rotations == {"logs_writer": 2}  # type: ignore[attr-defined]


def tls_files(folder: Path) -> dict[str, str]:
    for name in ("ca.pem", "client.crt", "client.key"):
        (folder / name).write_text("-----BEGIN CERTIFICATE-----\n")
    (folder / "client.key").chmod(0o600)
    return {"sslRootCert": "ca.pem", "sslCert": "client.crt", "sslKey": str(folder / "client.key")}


def test_tls_files_are_read_from_the_project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADHUNTER_PROJECT_DIR", str(tmp_path))
    settings = parse(sslmode="verify-full", **tls_files(tmp_path))
    assert settings.server.tls.libpq_parameters() == {  # type: ignore[attr-defined]
        "sslrootcert": str(tmp_path / "ca.pem"),
        "sslcert": str(tmp_path / "client.crt"),
        "sslkey": str(tmp_path / "client.key"),
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sslRootCert": None}, "headhunter-db:sslRootCert is not set, and sslmode verify-full checks"),
        ({"sslRootCert": "missing.pem"}, "missing.pem, which is not a file: put the PEM file there"),
        ({"sslKey": None}, "headhunter-db:sslKey is not set, but its partner is"),
        ({"sslCert": None}, "headhunter-db:sslCert is not set, but its partner is"),
    ],
)
def test_bad_tls_settings_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, str | None], message: str
) -> None:
    monkeypatch.setenv("HEADHUNTER_PROJECT_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(sslmode="verify-full", **{**tls_files(tmp_path), **changes})


def test_a_client_key_others_can_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADHUNTER_PROJECT_DIR", str(tmp_path))
    files = tls_files(tmp_path)
    (tmp_path / "client.key").chmod(0o644)
    with pytest.raises(ConfigError, match=r"can be read by others: run `chmod 600 .*client.key`"):
        parse(sslmode="verify-full", **files)


def test_a_name_of_exactly_63_bytes_is_accepted() -> None:
    """63 bytes is PostgreSQL's limit (NAMEDATALEN - 1): the longest name that is kept whole."""
    settings = parse(mainDatabase="a" * 63)
    assert settings.database_names[DatabaseKey.MAIN] == "a" * 63  # type: ignore[attr-defined]


def test_a_port_above_65535_is_refused() -> None:
    with pytest.raises(ConfigError, match="headhunter-db:port is 70000: give a number at least 1 and at most 65535"):
        parse(port="70000")


def test_a_negative_statement_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="statementTimeoutsMs"):
        parse(statementTimeoutsMs=json.dumps({"app": -1}))


def test_a_role_the_maps_do_not_name_has_no_limit_no_timeout_and_its_first_password() -> None:
    login = parse().login("app")  # type: ignore[attr-defined]
    assert (login.connection_limit, login.statement_timeout_ms, login.password_rotation) == (-1, 0, 1)


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({"port": "65535"}, True),
        ({"connectionLimits": json.dumps({"app": -1})}, True),
        ({"connectionLimits": json.dumps({"app": -2})}, False),
        ({"connectionLimits": json.dumps({"app": True})}, False),
        ({"statementTimeoutsMs": json.dumps({"app": 0})}, True),
        ({"passwordRotations": json.dumps({"app": 1})}, True),
        ({"passwordRotations": json.dumps({"app": 0})}, False),
        ({"mainDatabase": "zeta_db", "logsDatabase": "alpha_logs"}, True),
        ({"mainDatabase": "".join(["same", "_db"]), "logsDatabase": "same_db"}, False),
        ({"readOnlyRoles": json.dumps([{"name": "bi", "database": "main", "extra": 1}])}, False),
        ({"readOnlyRoles": json.dumps([{"name": "bi"}])}, False),
        ({"sslmode": ""}, True),  # an empty value means "not set": Pulumi.yaml's default applies
        ({"legacyRoles": json.dumps({"headhunter": "nologin", "old_worker": "drop", "x": "keep"})}, True),
        ({"readOnlyRoles": json.dumps([{"name": "pgbouncer_stats", "database": "main"}])}, True),  # pg, not pg_
        ({"readOnlyRoles": json.dumps([{"name": "bi_pg_reader", "database": "main"}])}, True),
        ({"rolePrefix": "pgx"}, True),
    ],
)
def test_each_bound_is_where_the_docs_put_it(changes: dict[str, str], accepted: bool) -> None:
    if accepted:
        parse(**changes)
    else:
        with pytest.raises(ConfigError):
            parse(**changes)


@pytest.mark.parametrize("host", [None, ""])
def test_a_missing_plain_key_is_set_without_secret(host: str | None) -> None:
    with pytest.raises(ConfigError, match=re.escape("`pulumi config set headhunter-db:host <value> --stack staging`")):
        parse(host=host)


def test_a_client_key_that_others_may_only_execute_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADHUNTER_PROJECT_DIR", str(tmp_path))
    files = tls_files(tmp_path)
    (tmp_path / "client.key").chmod(0o601)  # libpq refuses any group or world bit
    with pytest.raises(ConfigError, match="can be read by others"):
        parse(sslmode="verify-full", **files)


def test_an_embedded_stack_whose_server_never_started_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV_VAR, str(tmp_path))  # a state folder with no server in it
    with pytest.raises(ConfigError, match="this checkout's embedded PostgreSQL was never started: run scripts/up"):
        parse(embeddedServer="true", host=None, adminPassword=None)


@pytest.mark.parametrize(
    ("value", "keys"),
    [("", set()), ("logs", {DatabaseKey.LOGS}), ("main,logs", {DatabaseKey.MAIN, DatabaseKey.LOGS})],
)
def test_the_databases_to_import_come_from_the_one_environment_input(value: str, keys: set[DatabaseKey]) -> None:
    settings = parse_settings("staging", VALID, environ={ADOPT_EXISTING_ENV_VAR: value})
    assert settings.environment.adopt_existing == keys


def test_an_environment_input_naming_no_database_of_the_stack_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="HEADHUNTER_ADOPT_EXISTING='main,both' names both"):
        parse_settings("staging", VALID, environ={ADOPT_EXISTING_ENV_VAR: "main,both"})


def test_every_environment_input_of_the_program_is_read_into_its_settings(tmp_path: Path) -> None:
    environ = {
        MIGRATIONS_COPY_ENV_VAR: str(tmp_path / "trees"),
        STATE_DIR_ENV_VAR: str(tmp_path / "state"),
        PROJECT_DIR_ENV_VAR: str(tmp_path / "project"),
    }
    environment = parse_settings("staging", VALID, environ=environ).environment
    assert environment.tree_location("logs") == tmp_path / "trees" / "logs"
    assert environment.state_dir == tmp_path / "state"
    assert environment.project_dir == tmp_path / "project"
    assert parse_settings("staging", VALID, environ={}).environment.tree_location("logs") is None


def test_the_program_reads_its_environment_only_through_settings() -> None:
    """A new environment input belongs in ProgramEnvironment, where the tests and the docs find it."""
    infra = Path(__file__).resolve().parents[2] / "infra"
    readers = sorted(path.name for path in infra.glob("*.py") if re.search(r"os\.environ|os\.getenv", path.read_text()))
    assert readers == ["settings.py"], readers
