"""The deploy program's process loads only what it uses: every `pulumi up` pays for each import."""

from __future__ import annotations

import subprocess
import sys

from ops.paths import REPO_ROOT

# Loaded where they are used: a migration run and a new password, in the engine's dynamic-provider process.
NOT_IN_THE_PROGRAM = ("alembic", "sqlalchemy", "psycopg")


def test_the_program_imports_no_migration_or_driver_library() -> None:
    probe = "import sys, infra.program; print(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert [name for name in NOT_IN_THE_PROGRAM if name in loaded.stdout.split()] == []
