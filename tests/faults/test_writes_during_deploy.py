"""Rows the logs writer appends while a deploy migrates the logs database are all there afterwards."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from fixtures.cluster import ProvisionedDatabases, scalar
from fixtures.programs import migration_steps_program, open_engine_stack
from migrations import runner
from migrations.shared.tree import LOGS
from model.names import DatabaseKey

pytestmark = pytest.mark.engine


class Writer(threading.Thread):
    """Appends numbered rows as the logs writer until stopped; remembers every acknowledged number."""

    def __init__(self, provisioned: ProvisionedDatabases) -> None:
        super().__init__(daemon=True)
        self.provisioned = provisioned
        self.acknowledged: list[int] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        role = self.provisioned.names.of("logs_writer")
        try:
            with self.provisioned.connect_as(role, DatabaseKey.LOGS) as connection:
                number = 0
                while not self.stopping.is_set():
                    number += 1
                    connection.execute(
                        "INSERT INTO system_logs (level, component, message, metadata) "
                        "VALUES ('INFO', 'writer', 'during deploy', jsonb_build_object('n', %s::int))",
                        (number,),
                    )
                    self.acknowledged.append(number)
        except psycopg.Error as error:
            self.error = error


def test_every_acknowledged_row_survives_the_deploy(provisioned: ProvisionedDatabases, engine_workspace: Path) -> None:
    logs_target = runner.Target(LOGS, provisioned.migrator_url(DatabaseKey.LOGS))
    runner.upgrade(logs_target, "logs_0002")  # the tables exist and take writes; the index revision is pending
    writer = Writer(provisioned)
    writer.start()
    try:
        stack = open_engine_stack(engine_workspace, migration_steps_program(provisioned))
        stack.up(color="never")
    finally:
        writer.stopping.set()
        writer.join(timeout=30)

    assert writer.error is None, writer.error
    assert runner.current_revision(logs_target) == runner.head_revision(LOGS)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        stored = logs.execute("SELECT (metadata->>'n')::int FROM system_logs WHERE component = 'writer'").fetchall()
        assert sorted(row[0] for row in stored) == writer.acknowledged
        assert scalar(logs, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert len(writer.acknowledged) > 100  # the writer really wrote throughout
