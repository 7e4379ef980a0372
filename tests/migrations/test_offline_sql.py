"""The reviewer's script (`scripts/migrate STACK TREE upgrade --sql`) runs again after any stop, with psql as a
DBA runs it: twice in a row, and after a run cut after any statement, it completes and leaves the schema an
online upgrade leaves.

Each tree's script runs on a scratch database next to the tree's own: a copy of the provisioned database
(same owner, default privileges and grants), emptied between runs by dropping what the script made. The
online upgrade of the tree's own database is the reference; both are read with pg_dump --schema-only.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import pytest
from pglast.parser import split
from psycopg import sql

from fixtures.cluster import ProvisionedDatabases, scalar
from migrations import runner
from migrations.shared import partition_conversion
from migrations.shared.tree import LOGS, MAIN, Tree
from model.names import DatabaseKey
from ops.localpg.embedded import dump_client_bin_dir

TREES = [pytest.param(MAIN, id="main"), pytest.param(LOGS, id="logs")]
# pg_dump 18 writes a random key into \restrict and \unrestrict lines; they say nothing of the schema.
_RESTRICT = re.compile(r"^\\(un)?restrict .*$", re.M)


class NoonToday:
    """partition_conversion's clock, fixed for the test: the script and the online reference make the same
    partitions even if the test runs over midnight (UTC)."""

    fromisoformat = staticmethod(datetime.fromisoformat)

    @staticmethod
    def now(tz: tzinfo | None = None) -> datetime:
        return datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0).astimezone(tz)


@dataclass(frozen=True)
class Scratch:
    """A database beside the tree's own, where the tree's migrator runs the script with psql."""

    provisioned: ProvisionedDatabases
    tree: Tree
    name: str

    @property
    def own(self) -> str:
        return self.provisioned.databases[DatabaseKey(self.tree.key)]

    def psql(self, script: str) -> subprocess.CompletedProcess[str]:
        """The script run as a DBA runs it: psql -v ON_ERROR_STOP=1, as the tree's migrator."""
        migrator = self.provisioned.names.migrator(DatabaseKey(self.tree.key))
        login = {"PGUSER": migrator, "PGPASSWORD": self.provisioned.passwords[migrator], "PGDATABASE": self.name}
        command = [str(dump_client_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        return subprocess.run(
            command, input=script, text=True, capture_output=True, env=self._environment(login), timeout=120
        )

    def schema(self, database: str) -> str:
        """pg_dump --schema-only of a database, as the administrator, and the tree's version."""
        dumped = subprocess.run(
            [str(dump_client_bin_dir() / "pg_dump"), "--schema-only", "--no-comments", database],
            text=True,
            capture_output=True,
            env=self._environment({}),
            timeout=120,
            check=True,
        )
        with self.provisioned.server.connect(database) as connection:
            version = scalar(connection, f"SELECT string_agg(version_num, ',') FROM {self.tree.version_table}")
        return f"{_RESTRICT.sub('', dumped.stdout)}\n-- version: {version}"

    def empty(self) -> None:
        """Drop what a run made (tables take their partitions, indexes, keys and identities with them)."""
        with self.provisioned.server.connect(self.name) as connection:
            tables = connection.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind IN ('r', 'p') AND NOT relispartition"
            ).fetchall()
            for (table,) in tables:
                connection.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier("public", table)))
            left = connection.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")
            assert left.fetchall() == [], "the scratch database was not emptied"

    def _environment(self, login: dict[str, str]) -> dict[str, str]:
        server = self.provisioned.server.connection
        admin = {"PGUSER": server.user, "PGPASSWORD": server.password}
        quiet = {"PGOPTIONS": "-c client_min_messages=warning"}  # the skipped steps' NOTICEs would hide an error
        return {**os.environ, "PGHOST": server.host, "PGPORT": str(server.port), **quiet, **admin, **login}


@pytest.fixture
def noon_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_conversion, "datetime", NoonToday)


@pytest.fixture
def scratch(provisioned: ProvisionedDatabases, request: pytest.FixtureRequest, noon_today: None) -> Iterator[Scratch]:
    """A copy of the tree's database as provisioned, with the same database-level grants."""
    tree: Tree = request.param
    own = provisioned.databases[DatabaseKey(tree.key)]
    scratch = Scratch(provisioned, tree, f"{own}_scratch")
    with provisioned.server.connect() as admin:
        name, template = sql.Identifier(scratch.name), sql.Identifier(own)
        owner = sql.Identifier(provisioned.names.owner(DatabaseKey(tree.key)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(name, template, owner))
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        grants = admin.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type "
            "FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s AND a.grantee <> d.datdba",
            (own,),
        ).fetchall()
        for grantee, privilege in grants:
            role = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
            admin.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(sql.SQL(privilege), name, role))
    try:
        yield scratch
    finally:
        with provisioned.server.connect() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.name)))


def offline_script(scratch: Scratch) -> str:
    """The script as scripts/migrate prints it, rendered without a database name: it runs in the scratch copy."""
    url = scratch.provisioned.migrator_url(DatabaseKey(scratch.tree.key))
    return runner.upgrade_sql(runner.Target(scratch.tree, url))


def online_schema(scratch: Scratch) -> str:
    """What an online upgrade of the tree's own database leaves: the reference."""
    runner.upgrade(scratch.provisioned.migration_target(DatabaseKey(scratch.tree.key)))
    return scratch.schema(scratch.own)


def statements(script: str) -> list[str]:
    """The script's statements as PostgreSQL splits them (dollar quotes and all), each with its semicolon."""
    return [script[part] + ";" for part in split(script, with_parser=True, only_slices=True)]


def cuts(parts: list[str]) -> list[int]:
    """Every statement boundary k (run the first k statements) that leaves a database of its own. The others
    leave the database of the cut before them: a cut inside BEGIN ... COMMIT is rolled back, and SET and RESET
    change only the session, which the cut ends."""
    found, open_transaction = [], False
    for k, statement in enumerate(parts, start=1):
        keyword = statement.strip().split(None, 1)[0].rstrip(";").upper()
        open_transaction = keyword == "BEGIN" or (open_transaction and keyword not in ("COMMIT", "ROLLBACK"))
        if not open_transaction and keyword not in ("SET", "RESET"):
            found.append(k)
    return found


@pytest.mark.parametrize("scratch", TREES, indirect=True)
def test_the_script_runs_twice_in_a_row_and_leaves_what_an_online_upgrade_leaves(scratch: Scratch) -> None:
    script = offline_script(scratch)
    first, second = scratch.psql(script), scratch.psql(script)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert scratch.schema(scratch.name) == online_schema(scratch)


@pytest.mark.timeout(300)  # a cut per statement boundary, each two psql runs and a pg_dump: about a minute for logs
@pytest.mark.parametrize("scratch", TREES, indirect=True)
def test_a_script_cut_after_any_statement_completes_when_run_again(scratch: Scratch) -> None:
    script = offline_script(scratch)
    expected = online_schema(scratch)
    parts = statements(script)
    for k in cuts(parts):
        scratch.empty()
        cut = scratch.psql("\n".join(parts[:k]))
        assert cut.returncode == 0, f"the first {k} statements failed: {cut.stderr}"
        again = scratch.psql(script)
        assert again.returncode == 0, f"cut after statement {k} ({parts[k - 1][:200]!r}), run again: {again.stderr}"
        assert scratch.schema(scratch.name) == expected, f"cut after statement {k} ({parts[k - 1][:200]!r})"
