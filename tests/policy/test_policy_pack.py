"""The policy pack (policy/) on the project's program, with the real engine: `pulumi preview --policy-pack policy`.

Each changed program (fixtures/policy_programs.py: infra/ with one line changed, as a teammate's
change would) fails the preview with the message of the one rule it breaks. A preview deploys
nothing by nature; the server shows it too: no database or role of the stack's names afterwards.
The unchanged program passes every rule, on a dev-like stack and on a production one: previewed,
deployed with the pack, and previewed again once every value is known.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.policy_programs import EDITS, PASSWORD_KEY, POLICY_PACK, edited_program
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, project_stack, set_config
from infra import embedded_server
from ops.errors import ExitCode
from ops.paths import STATE_DIR
from policy.policies import POLICIES

pytestmark = [pytest.mark.engine, pytest.mark.provider]

PRODUCTION = {"production": True, "allowDatabaseDeletion": False}
# What the rule's message says of the changed program (the stack's names are policy_*).
MESSAGES = {
    "runtime roles connect to the other database": "gives CONNECT on the database policy_db to policy_logs_writer, a "
    "role of the logs database policy_logs (the runtime role for the log worker: appends rows, reads nothing back)",
    "the logs writer reads new log tables": "gives policy_logs_writer (the runtime role for the log worker: appends "
    "rows, reads nothing back) INSERT, SELECT on every table policy_logs_owner creates in policy_logs; the model "
    "gives it INSERT there, so SELECT is too much",
    "PUBLIC connects to both databases": "Nothing in the stack takes back what PostgreSQL gives PUBLIC on the "
    "database policy_logs",
    "the databases are not protected": "the database policy_db of the production stack policy is declared without "
    "protect,",
    "the databases are not retained on delete": "the owner role policy_logs_owner of the production stack policy is "
    "declared without retain_on_delete,",
    "the admin password comes from the stack file": f"Pulumi.policy.yaml: {PASSWORD_KEY} holds a password in plain "
    f"text, readable by anyone who reads the stack file. Fix: set it again, encrypted, with `pulumi config set "
    f"--secret '{PASSWORD_KEY}' --stack policy`",
}


@pytest.fixture
def new_stack(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "policy", "policy")
    cleanup(project, server)  # a run that was killed before its own cleanup
    assert project.pulumi("stack", "init").returncode == 0
    yield project
    cleanup(project, server)


def with_config(project: ProjectStack, **config: object) -> ProjectStack:
    """The same project with `config` set in its stack file."""
    set_config(project, **config)
    return project


def preview(project: ProjectStack, *args: str) -> subprocess.CompletedProcess[str]:
    return project.pulumi("preview", "--policy-pack", str(POLICY_PACK), *args)


def violated(output: str) -> set[str]:
    """The policies the engine reports as violated, by name."""
    names = "|".join(re.escape(policy.name) for policy in POLICIES)
    return set(re.findall(rf"\[mandatory\]\s+({names})\b", output))


def admin_password() -> str:
    return embedded_server.read(STATE_DIR).password


@pytest.mark.parametrize("change", list(EDITS))
def test_a_change_that_breaks_a_rule_fails_the_preview_with_its_message_and_deploys_nothing(
    change: str, new_stack: ProjectStack, tmp_path: Path, server: Server
) -> None:
    edit = EDITS[change]
    project = with_config(new_stack, **(PRODUCTION if "production" in edit.rule else {}))
    changed = edited_program(project, tmp_path, edit)
    if edit.rule == "no-plain-text-password":
        # As a teammate could: `--plaintext` passes the CLI's own check (an entropy guess) without a question.
        stored = changed.pulumi("config", "set", "--plaintext", PASSWORD_KEY, stdin=admin_password())
        assert stored.returncode == 0, stored.stderr
    result = preview(changed)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert violated(output) == {edit.rule}, output[-4000:]
    assert MESSAGES[change] in " ".join(output.split()), output[-4000:]
    assert leftover_objects(changed, server) == []


def test_the_same_password_encrypted_passes_every_rule(new_stack: ProjectStack, tmp_path: Path, server: Server) -> None:
    changed = edited_program(new_stack, tmp_path, EDITS["the admin password comes from the stack file"])
    stored = changed.pulumi("config", "set", "--secret", PASSWORD_KEY, stdin=admin_password())
    assert stored.returncode == 0, stored.stderr
    result = preview(changed)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert violated(result.stdout + result.stderr) == set()


@pytest.mark.parametrize("config", [{}, PRODUCTION], ids=["dev-like", "production"])
def test_the_unchanged_program_passes_every_rule_before_and_after_it_deploys(
    config: dict[str, object], new_stack: ProjectStack
) -> None:
    project = with_config(new_stack, **config)
    result = preview(project)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "headhunter-db-model" in result.stdout and violated(result.stdout + result.stderr) == set()
    deployed = project.pulumi("up", "--yes", "--policy-pack", str(POLICY_PACK))
    assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-4000:]
    # Every value known now (the grants on the existing tables, the logins' verifiers): still nothing to report.
    again = preview(project, "--expect-no-changes")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert violated(again.stdout + again.stderr) == set()


@pytest.mark.fault(
    what="a change to the program that breaks a rule of the policy pack (runtime roles keep CONNECT on the other "
    "database), deployed with `scripts/deploy`",
    recovery="none needed: the preview stops with the rule's message and nothing is deployed; undo the change",
)
def test_scripts_deploy_stops_at_the_preview_of_a_change_that_breaks_a_rule(
    new_stack: ProjectStack, tmp_path: Path, server: Server, fault_seen: SeenFunction
) -> None:
    changed = edited_program(new_stack, tmp_path, EDITS["runtime roles connect to the other database"])
    deployed = changed.script("ops.commands.deploy", changed.stack)
    output = deployed.stdout + deployed.stderr
    assert deployed.returncode == ExitCode.POLICY_VIOLATED, output[-4000:]  # its own code, read from the events
    assert violated(output) == {"no-cross-database-grant"}, output[-4000:]
    fault_seen("scripts/deploy", deployed.returncode, deployed.stderr, "breaks no-cross-database-grant")
    assert "deploy: up of stack" not in deployed.stdout
    assert leftover_objects(changed, server) == []


@pytest.mark.fault(
    what="a policy pack that does not load (pulumi-policy broken in the virtualenv)",
    recovery="run scripts/bootstrap (or fix the error named); nothing was deployed",
)
def test_a_policy_pack_that_does_not_load_stops_the_deploy_before_anything_changes(
    new_stack: ProjectStack, tmp_path: Path, server: Server, fault_seen: SeenFunction
) -> None:
    shadow = tmp_path / "broken-site"
    shadow.mkdir()
    (shadow / "pulumi_policy.py").write_text('raise ImportError("pulumi_policy is broken in this virtualenv")\n')
    broken = dataclasses.replace(new_stack, env={**new_stack.env, "PYTHONPATH": str(shadow)})
    deployed = broken.script("ops.commands.deploy", broken.stack)
    assert deployed.returncode == ExitCode.TOOLCHAIN, (deployed.stdout + deployed.stderr)[-4000:]
    assert "pulumi_policy is broken in this virtualenv" in deployed.stderr
    fault_seen("scripts/deploy", deployed.returncode, deployed.stderr, "does not load")
    assert leftover_objects(broken, server) == []
