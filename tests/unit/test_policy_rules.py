"""The policy pack's rules without the engine: each on a resource that breaks it and on one that keeps it.

The resources are written as the engine shows them to a policy (type, inputs, protect, parent);
tests/policy/ runs the same rules through `pulumi preview --policy-pack policy` on the real program.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy import policy as sdk

from infra.settings import NAMESPACE
from policy import rules, secret_config_keys
from policy.holdings import DATABASE, DEFAULT_PRIVILEGES, GRANT, GRANT_ROLE, ROLE
from policy.observed import UNKNOWN, Observed
from policy.policies import POLICIES
from policy.stack_facts import FactsError, StackFacts, stack_facts
from tests.unit.test_resource_graph import STACK_CONFIG, declared

CONFIG = {
    f"{NAMESPACE}:rolePrefix": "hh",
    f"{NAMESPACE}:mainDatabase": "hh_db",
    f"{NAMESPACE}:logsDatabase": "hh_logs",
    f"{NAMESPACE}:readOnlyRoles": json.dumps([{"name": "hh_analyst", "database": "logs"}]),
    f"{NAMESPACE}:adminUser": "postgres",
}
ENCRYPTED = frozenset({f"{NAMESPACE}:adminPassword"})


def facts(config: dict[str, str] | None = None, secret_keys: frozenset[str] | None = ENCRYPTED) -> StackFacts:
    return stack_facts("unit", {**CONFIG, **(config or {})}, secret_keys)


def resource(typ: str, props: dict[str, object], name: str = "changed") -> Observed:
    return Observed(typ, name, f"urn:pulumi:unit::headhunter-db::{typ}::{name}", props)


def grant(role: str, database: str, object_type: str, privileges: list[str], **extra: object) -> Observed:
    return resource(
        GRANT, {"role": role, "database": database, "objectType": object_type, "privileges": privileges, **extra}
    )


def test_a_runtime_role_given_connect_on_the_other_database_is_refused() -> None:
    [message] = rules.no_cross_database_grant(grant("hh_logs_writer", "hh_db", "database", ["CONNECT"]), facts())
    assert "CONNECT on the database hh_db to hh_logs_writer" in message
    assert "a role of the logs database hh_logs (the runtime role for the log worker" in message
    assert "Fix: remove it" in message


def test_the_revoke_of_the_other_database_passes() -> None:
    assert rules.no_cross_database_grant(grant("hh_logs_writer", "hh_db", "database", []), facts()) == []


@pytest.mark.parametrize(
    "changed",
    [
        resource(GRANT_ROLE, {"role": "hh_logs_writer_a", "grantRole": "hh_app"}),
        resource(ROLE, {"name": "hh_analyst", "roles": ["hh_app"]}),
        resource(
            DEFAULT_PRIVILEGES,
            {
                "role": "hh_app",
                "database": "hh_logs",
                "owner": "hh_logs_owner",
                "objectType": "table",
                "privileges": ["SELECT"],
            },
        ),
        resource(DATABASE, {"name": "hh_logs", "owner": "hh_main_owner"}),
    ],
    ids=["membership", "read-only role", "default privileges", "ownership"],
)
def test_every_way_to_reach_the_other_database_is_refused(changed: Observed) -> None:
    assert len(rules.no_cross_database_grant(changed, facts())) == 1


def test_the_logs_writer_given_select_is_refused_with_the_models_insert() -> None:
    changed = grant("hh_logs_writer", "hh_logs", "table", ["INSERT", "SELECT"], objects=UNKNOWN)
    [message] = rules.runtime_privileges_as_modelled(changed, facts())
    assert "gives it INSERT there, so SELECT is too much" in message


def test_all_privileges_are_all_of_them() -> None:
    [message] = rules.runtime_privileges_as_modelled(grant("hh_logs_writer", "hh_logs", "table", ["ALL"]), facts())
    assert "DELETE, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE is too much" in message


@pytest.mark.parametrize(
    "changed",
    [
        grant("hh_logs_writer", "hh_logs", "table", ["INSERT"]),
        grant("hh_app", "hh_db", "table", ["DELETE", "INSERT", "SELECT", "UPDATE"]),
        grant("hh_logs_readers", "hh_logs", "schema", ["USAGE"], schema="public"),
        resource(ROLE, {"name": "hh_logs_writer_b", "roles": ["hh_logs_writer"]}),
        resource(ROLE, {"name": "hh_analyst", "roles": ["hh_logs_readers"]}),
    ],
    ids=["writer", "app", "readers group", "login", "read-only role"],
)
def test_what_the_model_grants_passes(changed: Observed) -> None:
    assert rules.runtime_privileges_as_modelled(changed, facts()) == []


@pytest.mark.parametrize(
    "changed",
    [
        resource(GRANT_ROLE, {"role": "hh_logs_writer", "grantRole": "hh_logs_reader"}),
        resource(GRANT_ROLE, {"role": "hh_logs_writer", "grantRole": "pg_read_all_data"}),
        grant("hh_logs_writer_a", "hh_logs", "table", ["INSERT"]),
        grant("hh_analyst", "hh_logs", "database", ["CONNECT"]),
        grant("hh_logs_writer", "hh_logs", "schema", ["CREATE", "USAGE"], schema="public"),
        resource(DATABASE, {"name": "hh_logs", "owner": "hh_logs_writer"}),
        resource(DATABASE, {"name": "hh_logs", "owner": "hh_logs_writer_b"}),
        resource(
            DEFAULT_PRIVILEGES,
            {
                "role": "hh_logs_writer",
                "database": "hh_logs",
                "owner": "hh_logs_owner",
                "objectType": "table",
                "privileges": ["INSERT", "SELECT"],
            },
        ),
        grant("hh_logs_readers", "hh_logs", "table", ["INSERT", "SELECT"]),
        resource(ROLE, {"name": "hh_analyst", "roles": ["hh_logs_writer"]}),
    ],
    ids=[
        "the reader's membership",
        "a role outside the model",
        "a login's own grant",
        "a reader's own",
        "DDL",
        "a runtime role owns its database",
        "a login owns its database",
        "default privileges",
        "the readers group writes",
        "a read-only role in the writer",
    ],
)
def test_anything_else_a_runtime_role_is_given_is_refused(changed: Observed) -> None:
    assert len(rules.runtime_privileges_as_modelled(changed, facts())) == 1


def test_a_runtime_role_owning_its_database_is_named_with_the_ownership() -> None:
    changed = resource(DATABASE, {"name": "hh_logs", "owner": "hh_logs_writer"})
    [message] = rules.runtime_privileges_as_modelled(changed, facts())
    assert "gives hh_logs_writer (the runtime role for the log worker" in message
    assert "the ownership of the database hh_logs" in message and "so ownership is too much" in message


def public_revokes() -> list[Observed]:
    """PUBLIC left nothing on each database and its public schema, as OwnedDatabase declares it."""
    return [
        revoke
        for database in ("hh_db", "hh_logs")
        for revoke in (
            grant("public", database, "database", []),
            grant("public", database, "schema", [], schema="public"),
        )
    ]


def test_the_programs_revokes_of_public_pass() -> None:
    assert rules.nothing_granted_to_public(public_revokes(), facts()) == []


def test_a_grant_to_public_is_refused() -> None:
    changed = grant("PUBLIC", "hh_logs", "database", ["CONNECT"])
    [violation] = rules.nothing_granted_to_public([*public_revokes(), changed], facts())
    assert violation.urn == changed.urn and "gives PUBLIC CONNECT on the database hh_logs" in violation.message


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        (0, "on the database hh_db"),
        (1, "on public of hh_db"),
        (2, "on the database hh_logs"),
        (3, "on public of hh_logs"),
    ],
)
def test_a_missing_revoke_leaves_public_what_postgresql_gave_it(missing: int, named: str) -> None:
    kept = [revoke for index, revoke in enumerate(public_revokes()) if index != missing]
    [violation] = rules.nothing_granted_to_public(kept, facts())
    assert violation.urn is None and f"takes back what PostgreSQL gives PUBLIC {named}:" in violation.message


@pytest.mark.parametrize(
    ("replaced", "revoke", "named"),
    [
        (2, grant("public", "hh_logs", "database", ["TEMPORARY"]), "on the database hh_logs"),
        (3, grant("public", "hh_logs", "schema", [], schema="audit"), "on public of hh_logs"),
        (2, grant("hh_app", "hh_logs", "database", []), "on the database hh_logs"),
        (2, grant("public", "hh_db", "database", []), "on the database hh_logs"),
        (2, grant("public", "hh_logs", "schema", []), "on the database hh_logs"),
    ],
    ids=["a privilege left", "another schema", "another role", "another database", "another object type"],
)
def test_a_revoke_that_misses_what_public_was_given_is_no_revoke(replaced: int, revoke: Observed, named: str) -> None:
    kept = [revoke if index == replaced else original for index, original in enumerate(public_revokes())]
    found = rules.nothing_granted_to_public(kept, facts())
    assert [v.message for v in found if f"takes back what PostgreSQL gives PUBLIC {named}:" in v.message], found


@pytest.mark.parametrize(
    "changed",
    [
        grant("PUBLIC", "hh_logs", "database", ["CONNECT"]),
        grant("public", "hh_db", "table", ["SELECT"]),
        resource(
            DEFAULT_PRIVILEGES,
            {
                "role": "public",
                "database": "hh_db",
                "owner": "hh_main_owner",
                "objectType": "table",
                "privileges": ["SELECT"],
            },
        ),
    ],
    ids=["database", "tables", "default privileges"],
)
def test_every_kind_of_grant_to_public_is_refused(changed: Observed) -> None:
    [violation] = rules.nothing_granted_to_public([*public_revokes(), changed], facts())
    assert violation.urn == changed.urn and "gives PUBLIC" in violation.message


def kept_database(protect: bool, retain: bool) -> list[Observed]:
    owned = resource("headhunter:db:OwnedDatabase", {"retain_on_delete": retain}, "main")
    database = Observed(DATABASE, "main-database", "urn:db", {"name": "hh_db"}, protect, owned)
    owner = Observed(ROLE, "main-owner", "urn:owner", {"name": "hh_main_owner"}, protect, owned)
    return [owned, database, owner]


@pytest.mark.parametrize(
    ("protect", "retain", "missing"), [(False, True, "protect"), (True, False, "retain_on_delete")]
)
def test_a_production_database_not_kept_is_refused(protect: bool, retain: bool, missing: str) -> None:
    found = rules.production_databases_kept(kept_database(protect, retain), facts({f"{NAMESPACE}:production": "true"}))
    assert [violation.urn for violation in found] == ["urn:db", "urn:owner"]
    assert f"declared without {missing}," in found[0].message


def test_kept_production_databases_and_any_other_stack_pass() -> None:
    production = facts({f"{NAMESPACE}:production": "true"})
    assert rules.production_databases_kept(kept_database(True, True), production) == []
    assert rules.production_databases_kept(kept_database(False, False), facts()) == []


def test_a_password_in_plain_text_config_is_refused_and_so_is_its_use() -> None:
    provider = resource("pulumi:providers:postgresql", {"password": "hunter2-plain"}, "reporting")
    found = rules.no_plain_text_password([provider], facts({"reporting:password": "hunter2-plain"}))
    assert [violation.urn for violation in found] == [None, provider.urn]
    assert "Pulumi.unit.yaml: reporting:password holds a password in plain text" in found[0].message
    assert "pulumi config set --secret 'reporting:password' --stack unit" in found[0].message
    assert "its password is the value of reporting:password" in found[1].message


@pytest.mark.parametrize(
    "key",
    [
        "reporting:password",
        "reporting:dbPassword",
        "reporting:db_passwd",
        "reporting:pwd",
        "reporting:passphrase",
        "reporting:PGPASSPHRASE",
        "reporting:secret",
        "reporting:clientSecret",
        "reporting:token",
        "reporting:apiToken",
        "reporting:credentials",
        "reporting:apiKey",
        "reporting:api_key",
        "reporting:API-KEY",
        "aws:secretKey",
        "aws:accessKey",
        "reporting:privateKey",
        "reporting:signingKey",
        "reporting:encryptionKey",
        "reporting:masterKey",
        "reporting:authKey",
    ],
)
def test_every_credential_like_key_in_plain_text_is_refused(key: str) -> None:
    [violation] = rules.no_plain_text_password([], facts({key: "hunter2-plain"}))
    assert f"Pulumi.unit.yaml: {key} holds a password in plain text" in violation.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (f"{NAMESPACE}:passwordRotations", '{"app": 2}'),
        (f"{NAMESPACE}:sslKey", "certs/cloudsql-client-key.pem"),
        (f"{NAMESPACE}:sslCert", "certs/client.crt"),
        (f"{NAMESPACE}:adminUser", "postgres"),
        ("reporting:tokenTtlSeconds", "3600"),
        ("reporting:keyspace", "logs"),
        ("reporting:url", "postgresql://reader@db.internal:5432/hh_logs?sslmode=require"),
    ],
    ids=["rotation numbers", "a client key's file", "a certificate's file", "a user", "a ttl", "a keyspace", "no pw"],
)
def test_plain_settings_that_hold_no_credential_pass(key: str, value: str) -> None:
    assert rules.no_plain_text_password([], facts({key: value})) == []


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"reporting:url": "postgresql://reader:hunter2@db.internal/hh_logs"}, "reporting:url"),
        ({"reporting:targets": json.dumps([{"dsn": "postgres://u:hunter2@h:5432/d"}])}, "reporting:targets[0].dsn"),
        ({"reporting:logins": json.dumps([{"user": "u", "token": "t0ken"}])}, "reporting:logins[0].token"),
        ({"reporting:login": json.dumps({"user": "u", "pin": {"password": 123456}})}, "reporting:login.pin.password"),
    ],
    ids=["a URL with a password", "a URL in a list", "a token in a list", "a number, nested"],
)
def test_a_credential_anywhere_in_plain_text_config_is_refused(config: dict[str, str], path: str) -> None:
    [violation] = rules.no_plain_text_password([], facts(config))
    assert f"Pulumi.unit.yaml: {path} holds a password in plain text" in violation.message


def test_the_same_password_encrypted_passes() -> None:
    provider = resource("pulumi:providers:postgresql", {"password": "hunter2-plain"}, "reporting")
    encrypted = facts({"reporting:password": "hunter2-plain"}, ENCRYPTED | {"reporting:password"})
    assert rules.no_plain_text_password([provider], encrypted) == []


def test_a_password_nested_in_structured_config_and_in_a_steps_login_is_found() -> None:
    step = resource("pulumi-python:dynamic:Resource", {"login": {"user": "m", "password": "s3cret"}}, "main-migration")
    found = rules.no_plain_text_password([step], facts({"reporting:login": json.dumps({"password": "s3cret"})}))
    assert "reporting:login.password holds a password" in found[0].message
    assert "its login.password is the value of reporting:login.password" in found[1].message
    assert "--path --secret 'reporting:login.password'" in found[1].message


def test_rotation_numbers_and_unknown_passwords_are_no_plain_passwords() -> None:
    role = resource(ROLE, {"password": UNKNOWN})
    assert rules.no_plain_text_password([role], facts({f"{NAMESPACE}:passwordRotations": '{"app": 2}'})) == []


def test_without_the_engines_secret_keys_the_rule_refuses_rather_than_guesses() -> None:
    [violation] = rules.no_plain_text_password([], facts(secret_keys=None))
    assert "did not tell the policy pack which config keys the stack keeps encrypted" in violation.message


def test_a_stack_config_without_the_names_is_named() -> None:
    with pytest.raises(FactsError, match=r"Pulumi.unit.yaml: headhunter-db:rolePrefix is not set"):
        stack_facts("unit", {})


def test_the_program_under_mocks_passes_every_rule_a_mock_can_show() -> None:
    """Mocks show each resource's inputs, not its options: every rule but the production one."""
    observed = [resource(args.typ, unwrap_secrets(args.inputs), args.name) for args in declared(STACK_CONFIG)]
    unit = stack_facts("unit", STACK_CONFIG, frozenset({f"{NAMESPACE}:adminPassword"}))
    assert [message for r in observed for message in rules.no_cross_database_grant(r, unit)] == []
    assert [message for r in observed for message in rules.runtime_privileges_as_modelled(r, unit)] == []
    assert rules.nothing_granted_to_public(observed, unit) == []
    assert rules.no_plain_text_password(observed, unit) == []
    # The same resources, the admin password stored in plain text: the provider's password is named.
    exposed = stack_facts("unit", STACK_CONFIG, frozenset())
    providers = {v.urn for v in rules.no_plain_text_password(observed, exposed) if v.urn is not None}
    assert any("pulumi:providers:postgresql" in urn for urn in providers), providers


def unwrap_secrets(value: Any) -> Any:
    """Inputs as a policy sees them: a secret's value, not the secret (pulumi-policy unwraps them)."""
    if isinstance(value, dict):
        if value.get(pulumi.runtime.rpc._special_sig_key) == pulumi.runtime.rpc._special_secret_sig:
            return unwrap_secrets(value["value"])
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


def test_every_policy_is_mandatory() -> None:
    assert len(POLICIES) == 5
    assert {policy.enforcement_level for policy in POLICIES} == {EnforcementLevel.MANDATORY}


def test_the_analyzer_keeps_the_secret_keys_the_engine_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "_PolicyAnalyzerServicer", sdk._PolicyAnalyzerServicer)  # put back afterwards
    monkeypatch.setattr(secret_config_keys, "_heard", [])
    secret_config_keys.keep()
    analyzer = sdk._PolicyAnalyzerServicer("pack", "0.0.1", POLICIES, EnforcementLevel.MANDATORY)
    request = proto.AnalyzerStackConfigureRequest(stack="unit", config_secret_keys=["headhunter-db:adminPassword"])
    analyzer.ConfigureStack(request, None)
    assert secret_config_keys.secret_keys() == frozenset({"headhunter-db:adminPassword"})
