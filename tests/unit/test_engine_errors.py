"""How an engine failure becomes one line and an exit code (ops/deploy/driver.translate, ops/deploy/engine_events).

The exit code is read from the engine's structured events, recorded here from real runs of the pinned
CLI on the project's program (`pulumi preview|up --event-log FILE` on throwaway stacks, the server's
own; tests/unit/data/engine_events, kept to the events the classifier reads: diagnostics, policy
events, failed operations, the summary and the PostgreSQL provider's inputs). The engine's message
text decides nothing: the same text with no events is the engine's own failure.
"""

from __future__ import annotations

import ast
import json
import socket
from pathlib import Path

import pytest
from pulumi import automation as auto

from ops.deploy import driver, engine_events
from ops.deploy.engine_events import ServerAddress
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

RECORDED = Path(__file__).parent / "data" / "engine_events"


def recorded(name: str) -> list[auto.EngineEvent]:
    lines = (RECORDED / name).read_text().splitlines()
    return [auto.EngineEvent.from_json(json.loads(line)) for line in lines if line.strip()]


def failure(stderr: str) -> auto.CommandError:
    return auto.CommandError(auto.CommandResult(stdout="", stderr=stderr, code=255))


def nothing_answers(_address: ServerAddress) -> bool:
    return False


@pytest.mark.parametrize(
    ("log", "code"),
    [
        ("policy_violation.jsonl", ExitCode.POLICY_VIOLATED),
        ("gate_refused.jsonl", ExitCode.MIGRATION_REFUSED),
        ("revision_not_in_tree.jsonl", ExitCode.BAD_INPUT),
        ("revision_unreadable.jsonl", ExitCode.SERVER_UNREACHABLE),
        ("migration_failed.jsonl", ExitCode.MIGRATION_FAILED),
        ("server_unreachable_provider.jsonl", ExitCode.SERVER_UNREACHABLE),
        ("program_failed.jsonl", ExitCode.DEPLOY_FAILED),
    ],
)
def test_a_recorded_failure_gets_the_exit_code_of_its_cause(log: str, code: ExitCode) -> None:
    reported = engine_events.read(recorded(log))
    assert engine_events.exit_code(reported, nothing_answers) == code


def test_a_broken_rule_is_named_with_its_policy_and_resource() -> None:
    reported = engine_events.read(recorded("policy_violation.jsonl"))
    assert {violation.policy for violation in reported.violations} == {"no-cross-database-grant"}
    assert "urn:pulumi:evpolicy::headhunter-db::headhunter:db:RuntimeRole$postgresql:index/grant:Grant::" + (
        "evpolicy_app-logs-database-revoke"
    ) in {violation.resource_urn for violation in reported.violations}
    error = driver.translate(failure("error: preview failed"), "evpolicy", recorded("policy_violation.jsonl"))
    assert error.exit_code == ExitCode.POLICY_VIOLATED and "breaks no-cross-database-grant" in str(error)


def test_the_gate_s_report_is_the_step_s_message_without_the_marker() -> None:
    error = driver.translate(failure("error: preview failed"), "evdep", recorded("gate_refused.jsonl"))
    assert error.exit_code == ExitCode.MIGRATION_REFUSED
    assert "main_9001: index-not-concurrent" in str(error) and "[headhunter:" not in str(error)


def test_a_failed_postgresql_resource_exits_5_only_when_its_server_does_not_answer() -> None:
    reported = engine_events.read(recorded("server_unreachable_provider.jsonl"))
    assert len(reported.provider_servers) == 1 and reported.provider_servers[0].host == "127.0.0.1"
    assert engine_events.exit_code(reported, lambda _address: True) == ExitCode.DEPLOY_FAILED


def test_the_probe_tells_a_port_where_nothing_listens() -> None:
    with socket.socket() as bound:  # a port of ours that takes no connection: nothing answers there
        bound.bind(("127.0.0.1", 0))
        assert not engine_events.server_answers(ServerAddress("127.0.0.1", bound.getsockname()[1]))


# Every text the driver once matched to choose a code, and our own markers: in the text alone, none decides.
ENGINE_TEXTS = (
    "error: sdk-v2/provider2.go:571: error granting role x to postgres: EOF: provider=postgresql@3.18.0",
    "error: pq: the database system is shutting down",
    "error: dial tcp 127.0.0.1:1: connect: connection refused",
    "[mandatory]  no-cross-database-grant  v0.1.0",
    "error: incorrect passphrase",
    "error: validating stack config: missing configuration value",
    "policy pack not started",
    "Exception calling application: [headhunter:migration-refused] the migration gate refused a pending revision",
    "[headhunter:revision-not-in-tree] does not hold: the database was migrated from a newer checkout",
    "[headhunter:revision-unreadable] migration step cannot read the revision of database",
    "MigrationFailedError: [headhunter:migration-failed] the main tree failed on database 'x'",
)


@pytest.mark.parametrize("text", ENGINE_TEXTS)
def test_the_engine_s_text_alone_decides_no_exit_code(text: str) -> None:
    assert driver.translate(failure(text), "dev").exit_code == ExitCode.DEPLOY_FAILED


def test_a_lock_held_by_another_deploy_is_known_by_the_api_s_error_type() -> None:
    locked = auto.ConcurrentUpdateError(
        auto.CommandResult(
            stdout="", stderr="error: [409] Conflict: Another update is currently in progress.", code=255
        )
    )
    assert driver.translate(locked, "dev").exit_code == ExitCode.STACK_LOCKED


def exit_codes_chosen_outside_events(path: Path) -> list[str]:
    """Each `ExitCode.X` a module of ops/ names inside a test on a string (`in`, `.find`, `re`) of the
    engine's error, i.e. a code decided by message matching; the lock holder's parsing only names the holder."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = ast.unparse(node.test)
        reads_text = any(
            sign in test for sign in (" in text", "in str(error)", "in message", ".search(", ".match(", "findall(")
        )
        body = "\n".join(ast.unparse(statement) for statement in node.body)
        if reads_text and "ExitCode." in body:
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: if {test}")
    return found


def test_no_exit_code_of_the_engine_s_failures_is_chosen_by_matching_its_message_text() -> None:
    modules = sorted((REPO_ROOT / "ops").rglob("*.py"))
    assert [finding for module in modules for finding in exit_codes_chosen_outside_events(module)] == []
