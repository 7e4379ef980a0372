"""Fresh provisionings and destroys in a row, with the extra roles that multiply the grants: none may fail.

Every ACL change of one catalog row waits for the one before it (infra/acl_chain.py): two at once
rewrite the same row (the owner's pg_default_acl row holds every runtime role's default privileges;
a table's pg_class row holds every role's grant on it; the database's pg_database row every CONNECT)
and fail with "tuple concurrently updated" (pulumi-postgresql#126). The engine runs everything else
in parallel, changes to different rows included, so a missing edge, or two rows that do collide
after all, show up here as an intermittent failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, project_stack

# 20 cycles of up and destroy wait on purpose: each takes about a minute on a loaded machine.
pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow, pytest.mark.timeout(2400)]
CYCLES = 20
READERS = [{"name": f"stress_reader_{n}", "database": database} for n, database in enumerate(["logs", "main", "logs"])]


@pytest.fixture
def stress(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "stress", "stress", readOnlyRoles=READERS)
    cleanup(project, server)
    created = project.pulumi("stack", "init")
    assert created.returncode == 0, created.stderr
    yield project
    cleanup(project, server)


@pytest.mark.fault(
    what="fresh provisioning then destroy, again and again, with 3 extra read-only roles: grants of one database "
    'racing on one catalog row ("tuple concurrently updated")',
    recovery="none needed: every ACL change of one catalog row waits for the one before it",
)
def test_fresh_provisioning_and_destroy_never_collide(
    server: Server, stress: ProjectStack, fault_seen: SeenFunction
) -> None:
    failures = []
    for cycle in range(CYCLES):
        up = stress.pulumi("up", "--yes", "--skip-preview")
        destroy = stress.pulumi("destroy", "--yes", "--skip-preview")
        for step, result in (("up", up), ("destroy", destroy)):
            if result.returncode != 0:
                failures.append(f"cycle {cycle} {step}: {(result.stdout + result.stderr)[-1500:]}")
        assert leftover_objects(stress, server) == [] or failures, f"cycle {cycle} left objects behind"
    assert not failures, "\n\n".join(failures)
    fault_seen(f"{CYCLES} cycles of pulumi up and pulumi destroy", f"0 for all {2 * CYCLES}")
