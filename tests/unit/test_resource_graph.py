"""The resource graph under Pulumi mocks: every role, grant and default privilege, and nothing more.

The expected sets are written out here by hand, not derived from the model: a privilege
added to the model (or to the program) by mistake fails these tests.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from fixtures.acl_order import unordered_acl_changes

RECORDED: list[pulumi.runtime.MockResourceArgs] = []
TABLES_AT_HEAD = {"main": ["user_invitations"], "logs": ["llm_logs", "system_logs"]}
STACK_CONFIG = {
    "headhunter-db:host": "db.internal",
    "headhunter-db:port": "5432",
    "headhunter-db:sslmode": "require",
    "headhunter-db:adminUser": "admin",
    "headhunter-db:adminPassword": "mock-admin-password",
    "headhunter-db:mainDatabase": "hh_db",
    "headhunter-db:logsDatabase": "hh_logs",
    "headhunter-db:rolePrefix": "hh",
    "headhunter-db:allowDatabaseDeletion": "true",
    "headhunter-db:readOnlyRoles": json.dumps([{"name": "hh_analyst", "database": "logs"}]),
}


class RecordingMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        RECORDED.append(args)
        outputs = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic:Resource":
            outputs.update(result="generated", scram_verifier="SCRAM-SHA-256$mock", revision="head", applied=[])
            # What a migration run reports from the catalog once its tree is at head.
            outputs["tables"] = TABLES_AT_HEAD.get(str(args.inputs.get("tree")), [])
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class DependencyMonitor(MockMonitor):
    """The mock engine, keeping what the real one keeps in the state: each resource's direct dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.dependencies: dict[str, list[str]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the engine's RPC name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # untyped in pulumi
        self.dependencies[response.urn] = list(request.dependencies)
        return response

    def state(self) -> list[dict[str, Any]]:
        """The resources in the shape of `pulumi stack export`'s: urn, type, inputs, dependencies."""
        return [
            {
                "urn": urn,
                "type": urn.split("::")[2].split("$")[-1],  # a child's type follows its parents' types
                "inputs": registered.state,
                "dependencies": self.dependencies.get(urn, []),
            }
            for urn, registered in self.resources.items()
        ]


MONITOR: list[DependencyMonitor] = []
"""The monitor of the last declared() stack."""


def declared(
    config: dict[str, str], secret_keys: tuple[str, ...] = ("headhunter-db:adminPassword",)
) -> list[pulumi.runtime.MockResourceArgs]:
    """Every resource the program declares for a stack with `config`."""
    RECORDED.clear()
    mocks = RecordingMocks()
    MONITOR[:] = [DependencyMonitor(mocks)]
    pulumi.runtime.set_mocks(mocks, project="headhunter-db", stack="unit", preview=False, monitor=MONITOR[0])
    pulumi.runtime.set_all_config(config, list(secret_keys))
    from infra.program import define_stack

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def declare() -> None:
        define_stack()

    declare()
    recorded = list(RECORDED)
    RECORDED.clear()
    return recorded


@pytest.fixture(scope="module")
def graph() -> list[pulumi.runtime.MockResourceArgs]:
    return declared(STACK_CONFIG)


def of_type(graph: list[pulumi.runtime.MockResourceArgs], typ: str) -> list[dict[str, Any]]:
    return [resource.inputs for resource in graph if resource.typ == typ]


def test_roles_and_their_attributes(graph: list[pulumi.runtime.MockResourceArgs]) -> None:
    roles = {
        r["name"]: (r.get("login", False), tuple(r.get("roles", ())))
        for r in of_type(graph, "postgresql:index/role:Role")
    }
    assert roles == {
        "hh_main_owner": (False, ()),
        "hh_logs_owner": (False, ()),
        "hh_main_migrator": (True, ("hh_main_owner",)),
        "hh_logs_migrator": (True, ("hh_logs_owner",)),
        # A runtime role never logs in: its two members do, holding nothing of their own.
        "hh_app": (False, ()),
        "hh_app_a": (True, ("hh_app",)),
        "hh_app_b": (True, ("hh_app",)),
        "hh_logs_writer": (False, ()),
        "hh_logs_writer_a": (True, ("hh_logs_writer",)),
        "hh_logs_writer_b": (True, ("hh_logs_writer",)),
        "hh_logs_reader": (False, ()),
        "hh_logs_reader_a": (True, ("hh_logs_reader",)),
        "hh_logs_reader_b": (True, ("hh_logs_reader",)),
        # The read-only role holds nothing itself either: it is a member of its database's readers group.
        "hh_analyst": (False, ("hh_logs_readers",)),
        "hh_analyst_a": (True, ("hh_analyst",)),
        "hh_analyst_b": (True, ("hh_analyst",)),
        "hh_logs_readers": (False, ()),
    }
    for role in of_type(graph, "postgresql:index/role:Role"):
        for attribute in ("superuser", "createDatabase", "createRole", "replication", "bypassRowLevelSecurity"):
            assert not role.get(attribute), (role["name"], attribute)


def test_login_roles_get_a_scram_verifier_never_a_plain_password(graph: list[pulumi.runtime.MockResourceArgs]) -> None:
    for role in of_type(graph, "postgresql:index/role:Role"):
        if role.get("login"):
            password = role["password"]
            assert isinstance(password, dict), "the verifier must stay a secret"
            assert password["value"].startswith("SCRAM-SHA-256$"), role["name"]


def test_databases_belong_to_their_owner_roles(graph: list[pulumi.runtime.MockResourceArgs]) -> None:
    databases = {d["name"]: d["owner"] for d in of_type(graph, "postgresql:index/database:Database")}
    assert databases == {"hh_db": "hh_main_owner", "hh_logs": "hh_logs_owner"}


def test_grants_are_exactly_these(graph: list[pulumi.runtime.MockResourceArgs]) -> None:
    grants = {
        (g["role"], g["database"], g["objectType"], g.get("schema"), tuple(g["privileges"]))
        for g in of_type(graph, "postgresql:index/grant:Grant")
        if g["objectType"] != "table"
    }
    assert grants == {
        ("public", "hh_db", "database", None, ()),
        ("public", "hh_logs", "database", None, ()),
        ("public", "hh_db", "schema", "public", ()),
        ("public", "hh_logs", "schema", "public", ()),
        ("hh_app", "hh_db", "database", None, ("CONNECT",)),
        ("hh_app", "hh_db", "schema", "public", ("USAGE",)),
        ("hh_logs_writer", "hh_logs", "database", None, ("CONNECT",)),
        ("hh_logs_writer", "hh_logs", "schema", "public", ("USAGE",)),
        ("hh_logs_reader", "hh_logs", "database", None, ("CONNECT",)),
        ("hh_logs_reader", "hh_logs", "schema", "public", ("USAGE",)),
        ("hh_logs_readers", "hh_logs", "database", None, ("CONNECT",)),
        ("hh_logs_readers", "hh_logs", "schema", "public", ("USAGE",)),
        # Nothing on the other database, held explicitly so that a refresh sees a grant made by hand.
        ("hh_app", "hh_logs", "database", None, ()),
        ("hh_logs_writer", "hh_db", "database", None, ()),
        ("hh_logs_reader", "hh_db", "database", None, ()),
        ("hh_logs_readers", "hh_db", "database", None, ()),
    }


def test_existing_tables_are_granted_explicitly_after_the_migrations(
    graph: list[pulumi.runtime.MockResourceArgs],
) -> None:
    """Default privileges reach only later tables: a role added to a running stack needs these."""
    table_grants = {
        (g["role"], g["database"], tuple(g["objects"]), tuple(g["privileges"]))
        for g in of_type(graph, "postgresql:index/grant:Grant")
        if g["objectType"] == "table"
    }
    assert table_grants == {
        ("hh_app", "hh_db", ("user_invitations",), ("DELETE", "INSERT", "SELECT", "UPDATE")),
        ("hh_logs_writer", "hh_logs", ("llm_logs", "system_logs"), ("INSERT",)),
        ("hh_logs_reader", "hh_logs", ("llm_logs", "system_logs"), ("SELECT",)),
        ("hh_logs_readers", "hh_logs", ("llm_logs", "system_logs"), ("SELECT",)),
    }


def test_default_privileges_are_exactly_these(graph: list[pulumi.runtime.MockResourceArgs]) -> None:
    defaults = {
        (d["role"], d["owner"], d["database"], d["schema"], d["objectType"], tuple(d["privileges"]))
        for d in of_type(graph, "postgresql:index/defaultPrivileges:DefaultPrivileges")
    }
    assert defaults == {
        ("hh_app", "hh_main_owner", "hh_db", "public", "table", ("DELETE", "INSERT", "SELECT", "UPDATE")),
        ("hh_logs_writer", "hh_logs_owner", "hh_logs", "public", "table", ("INSERT",)),
        ("hh_logs_reader", "hh_logs_owner", "hh_logs", "public", "table", ("SELECT",)),
        ("hh_logs_readers", "hh_logs_owner", "hh_logs", "public", "table", ("SELECT",)),
    }


def test_each_tree_runs_on_its_own_database_as_its_own_migrator(
    graph: list[pulumi.runtime.MockResourceArgs],
) -> None:
    runs = {
        (r["tree"], r["database"], r["user"]) for r in of_type(graph, "pulumi-python:dynamic:Resource") if "tree" in r
    }
    assert runs == {("main", "hh_db", "hh_main_migrator"), ("logs", "hh_logs", "hh_logs_migrator")}


def test_the_provider_is_told_whether_the_admin_is_a_superuser(graph: list[pulumi.runtime.MockResourceArgs]) -> None:
    (provider,) = of_type(graph, "pulumi:providers:postgresql")
    assert provider["host"] == "db.internal" and provider["sslmode"] == "require"
    assert json.loads(provider["superuser"]) is True
    assert provider["password"]["value"] == "mock-admin-password"  # the stack's secret, not the embedded one's

    assert of_type(graph, "postgresql:index/grantRole:GrantRole") == []


def test_a_managed_servers_admin_becomes_a_member_of_each_owner_role() -> None:
    """Only the owner (or a member) can revoke PUBLIC's CONNECT and TEMPORARY on its database."""
    managed = declared({**STACK_CONFIG, "headhunter-db:adminIsSuperuser": "false"})
    (provider,) = of_type(managed, "pulumi:providers:postgresql")
    assert json.loads(provider["superuser"]) is False
    memberships = {(r["role"], r["grantRole"]) for r in of_type(managed, "postgresql:index/grantRole:GrantRole")}
    assert memberships == {("admin", "hh_main_owner"), ("admin", "hh_logs_owner")}


def test_a_mistake_in_the_stack_config_is_a_message_not_a_crash() -> None:
    """pulumi.RunError: the engine prints the message alone, as it would any bad input."""
    with pytest.raises(pulumi.RunError, match="headhunter-db:hostname is not a key this program reads"):
        declared({**STACK_CONFIG, "headhunter-db:hostname": "db.internal"})


def test_config_of_other_namespaces_is_left_alone() -> None:
    """A stack file may hold other programs' keys (aws:region, a team's own namespace): not ours to refuse."""
    others = {"aws:region": "eu-west-1", "zeta-team:owner": "platform"}
    assert len(declared({**STACK_CONFIG, **others})) == len(declared(STACK_CONFIG))


def test_an_admin_password_in_plain_text_is_refused_under_plain_pulumi() -> None:
    with pytest.raises(pulumi.RunError, match="headhunter-db:adminPassword is stored in plain text"):
        declared(STACK_CONFIG, secret_keys=())


@pytest.mark.parametrize(
    ("rotation", "generations"),
    [(1, {"a": "1", "b": "0"}), (2, {"a": "1", "b": "2"}), (3, {"a": "3", "b": "2"}), (4, {"a": "3", "b": "4"})],
)
def test_a_rotation_renews_one_login_of_the_role_and_keeps_the_other(
    rotation: int, generations: dict[str, str]
) -> None:
    config = {**STACK_CONFIG, "headhunter-db:passwordRotations": json.dumps({"app": rotation})}
    graph = declared(config)
    passwords = {
        r.name.removeprefix("hh_app-").removesuffix("-password"): r.inputs["rotation"]
        for r in graph
        if r.name in ("hh_app-a-password", "hh_app-b-password")
    }
    assert passwords == generations  # a password changes only when its generation does
    writer = {
        r.name: r.inputs["rotation"]
        for r in graph
        if r.name.startswith("hh_logs_writer-") and r.name.endswith("-password")
    }
    assert writer == {"hh_logs_writer-a-password": "1", "hh_logs_writer-b-password": "0"}  # other roles: untouched


def test_every_role_has_a_retirement_that_clears_it_and_its_logins_in_both_databases(
    graph: list[pulumi.runtime.MockResourceArgs],
) -> None:
    retirements = {r.name: r.inputs for r in graph if r.name.endswith("-retirement")}
    assert {name: inputs["roles"] for name, inputs in retirements.items()} == {
        "hh_app-retirement": ["hh_app", "hh_app_a", "hh_app_b"],
        "hh_logs_writer-retirement": ["hh_logs_writer", "hh_logs_writer_a", "hh_logs_writer_b"],
        "hh_logs_reader-retirement": ["hh_logs_reader", "hh_logs_reader_a", "hh_logs_reader_b"],
        "hh_logs_readers-retirement": ["hh_logs_readers"],
        "hh_analyst-retirement": ["hh_analyst", "hh_analyst_a", "hh_analyst_b"],
    }
    for inputs in retirements.values():
        assert inputs["databases"] == [
            {"name": "hh_db", "owner": "hh_main_owner"},
            {"name": "hh_logs", "owner": "hh_logs_owner"},
        ]
        assert (inputs["user"], inputs["database"], inputs["grace_seconds"]) == ("admin", "postgres", 30)


def test_every_change_of_one_catalog_row_waits_directly_for_the_others() -> None:
    """What the state check of tests/integration/test_dev_stack.py demands of a deployed stack, seen here
    without the engine: the log maintenance step (whose delete revokes grants on the log tables) and each
    retirement (whose DROP OWNED rewrites the same rows) ordered by a direct edge, as every grant is."""
    declared(STACK_CONFIG)
    state = MONITOR[0].state()
    assert unordered_acl_changes(state) == []
    maintenance = next(r["urn"] for r in state if r["urn"].endswith("::logs-partitions"))
    retirements = [r for r in state if r["urn"].endswith("-retirement")]
    assert len(retirements) == 5 and all(maintenance in r["dependencies"] for r in retirements)
