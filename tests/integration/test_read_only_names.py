"""A read-only role named like a role of the server that the stack does not own is refused before the engine.

Most cases call the preflight's check (ops/deploy/foreign_roles.py) on the real embedded server,
with roles made by hand; one runs `scripts/deploy` on a stack whose read-only role is named like the
server's admin, and finds the server and the stack's state as they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from fixtures.cluster import Server
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, project_stack
from infra.settings import Settings, parse_settings
from ops.deploy.foreign_roles import ROLE_TYPE, foreign_role_problems
from ops.errors import ExitCode
from tests.unit.test_settings import VALID

HAND_MADE = ("fr_bi", "fr_tool_b")
"""Roles an application or a person made on the server, not the stack."""


@pytest.fixture
def hand_made_roles(server: Server) -> Iterator[None]:
    with server.connect() as admin:
        for role in HAND_MADE:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    yield
    with server.connect() as admin:
        for role in HAND_MADE:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def settings(*read_only: str) -> Settings:
    roles = [{"name": name, "database": "logs"} for name in read_only]
    return parse_settings("staging", {**VALID, "readOnlyRoles": json.dumps(roles)}, environ={})


def no_state() -> Mapping[str, Any]:
    raise AssertionError("the state was read, though the outputs account for every name the server has")


def problems(server: Server, config: Settings, outputs: Mapping[str, Any], state: Any = no_state) -> list[str]:
    with server.connect() as admin:
        return foreign_role_problems(config, admin, outputs, state)


@pytest.mark.parametrize(
    ("read_only", "taken"),
    [("fr_bi", "role fr_bi,"), ("fr_tool", "role fr_tool_b,")],
    ids=["the role itself", "one of its logins"],
)
def test_a_role_of_the_server_the_stack_did_not_create_is_refused_by_name(
    server: Server, hand_made_roles: None, read_only: str, taken: str
) -> None:
    [problem] = problems(server, settings("fr_analyst", read_only), {}, lambda: {})
    assert f"headhunter-db:readOnlyRoles names '{read_only}', and the server already has the {taken}" in problem
    assert "which stack staging did not create" in problem and problem.endswith("Nothing was changed.")


def test_the_servers_admin_is_refused(server: Server) -> None:
    [problem] = problems(server, settings(server.connection.user), {}, lambda: {})
    assert f"names '{server.connection.user}', and the server already has the role {server.connection.user}," in problem


def test_names_the_server_does_not_have_pass_without_reading_the_state(server: Server) -> None:
    assert problems(server, settings("fr_nobody_has_this"), {}) == []


def test_a_role_the_last_deploy_made_is_the_stacks_own(server: Server, hand_made_roles: None) -> None:
    outputs = {"runtime_roles": {"app": "headhunter_app", "fr_bi": "fr_bi", "fr_tool": "fr_tool"}}
    assert problems(server, settings("fr_bi", "fr_tool"), outputs) == []


@pytest.mark.parametrize("where", ["resources", "pending_operations"])
def test_a_role_a_killed_deploy_made_is_the_stacks_own_by_its_state(
    server: Server, hand_made_roles: None, where: str
) -> None:
    role = {"type": ROLE_TYPE, "inputs": {"name": "fr_bi"}}
    state = {where: [role if where == "resources" else {"type": "creating", "resource": role}]}
    assert problems(server, settings("fr_bi"), {}, lambda: state) == []
    other = {where: [{**role, "type": "postgresql:index/grant:Grant"}]}
    assert len(problems(server, settings("fr_bi"), {}, lambda: other)) == 1


@pytest.fixture
def named_like_the_admin(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    readers = [{"name": server.connection.user, "database": "logs"}]
    project = project_stack(tmp_path, "foreign", "foreign", readOnlyRoles=readers)
    cleanup(project, server)
    created = project.pulumi("stack", "init")
    assert created.returncode == 0, created.stderr
    yield project
    cleanup(project, server)


@pytest.mark.engine
def test_a_deploy_with_a_read_only_role_named_like_the_admin_changes_nothing(
    server: Server, named_like_the_admin: ProjectStack
) -> None:
    project = named_like_the_admin
    state_before = project.pulumi("stack", "export").stdout
    refused = project.script("ops.commands.deploy", project.stack)
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert f"readOnlyRoles names '{server.connection.user}', and the server already has the role" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert leftover_objects(project, server) == []  # no readers group, no database, no role of the stack
    assert project.pulumi("stack", "export").stdout == state_before
