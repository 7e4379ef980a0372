"""The project's own program in a folder of a test's own: Pulumi.yaml, infra/ and a stack file.

The folder holds a copy of Pulumi.yaml and links to infra/ and .venv, so the engine runs the real
program through the language host, as `pulumi up` in the project folder does; the stack file and
the state backend are the test's. Names carry a prefix of the test's own, and `cleanup` removes
whatever the stack made, through `pulumi destroy` and, should that fail, by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from psycopg import sql

from fixtures.cluster import Server
from infra.settings import NAMESPACE
from ops import toolchain
from ops.paths import REPO_ROOT

COMMAND_TIMEOUT_S = 600
TEST_PASSPHRASE = "test-only"


@dataclass(frozen=True)
class ProjectStack:
    folder: Path
    stack: str
    prefix: str
    env: dict[str, str]

    @property
    def databases(self) -> tuple[str, str]:
        return f"{self.prefix}_db", f"{self.prefix}_logs"

    def script(self, module: str, *args: str) -> subprocess.CompletedProcess[str]:
        """One of the project's commands (ops.up, ops.deploy, ops.verify), on this stack."""
        command = [sys.executable, "-m", module, *args]
        return subprocess.run(
            command, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )

    def pulumi(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Plain `pulumi ARGS --stack STACK` in the project folder, with the environment the README gives."""
        command = [str(toolchain.cli_path()), *args, "--stack", self.stack, "--non-interactive", "--color", "never"]
        return subprocess.run(
            command,
            cwd=self.folder,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )


def start_up(project: ProjectStack, server: Server, until: str) -> subprocess.Popen[str]:
    """`scripts/up` of the stack in a session of its own, returned once the server shows `until` (a query).

    The deploy is left running at that moment, for a test to kill it or its server there.
    """
    deploy = subprocess.Popen(
        [sys.executable, "-m", "ops.commands.up", project.stack],
        cwd=REPO_ROOT,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    with server.connect() as admin:
        while not admin.execute(until).fetchone()[0]:  # type: ignore[index]
            assert deploy.poll() is None and time.monotonic() < deadline, f"the deploy never reached: {until}"
            time.sleep(0.02)
    return deploy


def project_folder(folder: Path, passphrase: str = TEST_PASSPHRASE) -> dict[str, str]:
    """Pulumi.yaml, links to infra/ and .venv, and a state backend of its own; returns the environment."""
    (folder / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    (folder / "infra").symlink_to(REPO_ROOT / "infra")
    (folder / ".venv").symlink_to(REPO_ROOT / ".venv")
    (folder / "state").mkdir()
    env = toolchain.pulumi_env(dict(os.environ))
    env.update(
        HEADHUNTER_PROJECT_DIR=str(folder),
        PULUMI_BACKEND_URL=f"file://{folder / 'state'}",
        PULUMI_CONFIG_PASSPHRASE=passphrase,
    )
    return env


def project_stack(folder: Path, stack: str, prefix: str, **config: object) -> ProjectStack:
    """The dev stack's settings under the names of `prefix`, with `config` on top."""
    env = project_folder(folder)
    stack_file = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())
    stack_file.pop("encryptionsalt", None)
    values = {"mainDatabase": f"{prefix}_db", "logsDatabase": f"{prefix}_logs", "rolePrefix": prefix, **config}
    stack_file["config"].update({f"{NAMESPACE}:{key}": value for key, value in values.items()})
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_file))
    return ProjectStack(folder, stack, prefix, env)


def cleanup(project: ProjectStack, server: Server) -> None:
    """Destroy the stack; whatever destroy could not remove is dropped by name, so a next run starts clean."""
    project.pulumi("state", "unprotect", "--all", "--yes")
    project.pulumi("destroy", "--yes", "--skip-preview")
    with server.connect() as admin:
        for database in project.databases:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        roles = admin.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (project.prefix + "_",)
        ).fetchall()
        for (role,) in roles:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def leftover_objects(project: ProjectStack, server: Server) -> list[str]:
    """The databases and roles of the stack's names that exist on the server."""
    with server.connect() as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)"
            " UNION ALL SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY 1",
            (list(project.databases), project.prefix + "_"),
        ).fetchall()
    return [name for (name,) in rows]
