"""scripts/adopt's move of misplaced rows, against the physical floor measured in the same run.

The floor: the same rows' columns sent by one binary COPY from the main database into a bare table
of the logs database, over the same kind of connections: the least any move between two databases
does. The move adds what makes it safe: a new id per row, the id map and the watermark in each
batch's transaction, the checksums before and after, and the final step under the lock.
"""

from __future__ import annotations

import secrets
import sys
import time
from dataclasses import dataclass

from psycopg import sql

from bench import fixture
from fixtures.cluster import Server
from fixtures.legacy import LegacyDatabases, build_legacy
from model.names import DatabaseKey
from ops.adoption.catalog import read_database
from ops.adoption.move import MoveSpec, move_table, spec_for
from ops.adoption.server_access import AdminAccess
from ops.localpg import embedded


@dataclass(frozen=True)
class MoveRun:
    rows: int
    move_s: float
    floor_s: float
    lock_held_s: float


def measure(server: Server, rows: int) -> MoveRun:
    """One run on a legacy deployment of its own with `rows` misplaced rows; dropped afterwards."""
    legacy = build_legacy(server, f"bench{secrets.token_hex(2)}", misplaced_rows=rows, logs_rows=1000)
    try:
        connection = server.connection
        admin = AdminAccess(connection.host, connection.port, connection.user, connection.password)
        spec = _spec(legacy, admin)
        floor_s = _floor(admin, spec)
        report = move_table(admin, spec, lambda _: None)
        return MoveRun(report.rows, report.seconds, floor_s, report.lock_held_s)
    finally:
        legacy.drop()


def _spec(legacy: LegacyDatabases, admin: AdminAccess) -> MoveSpec:
    main, logs = legacy.databases[DatabaseKey.MAIN], legacy.databases[DatabaseKey.LOGS]
    with admin.connect(main) as connection:
        return spec_for(read_database(connection).tables["system_logs"], main, logs)


def _floor(admin: AdminAccess, spec: MoveSpec) -> float:
    columns = sql.SQL(", ").join(sql.Identifier(column) for column in spec.columns)
    with admin.connect(spec.source_database) as source, admin.connect(spec.target_database) as target:
        target.execute(sql.SQL("CREATE TABLE bench_floor AS SELECT {} FROM system_logs WITH NO DATA").format(columns))
        started = time.monotonic()
        with (
            source.cursor().copy(
                sql.SQL("COPY (SELECT {} FROM system_logs) TO STDOUT (FORMAT BINARY)").format(columns)
            ) as rows_out,
            target.cursor().copy("COPY bench_floor FROM STDIN (FORMAT BINARY)") as rows_in,
        ):
            for data in rows_out:
                rows_in.write(data)
        elapsed = time.monotonic() - started
        target.execute("DROP TABLE bench_floor")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.adoption_move [--quick]`: the adoption's move alone (scripts/bench runs it too),
    printed; --quick moves a few thousand rows, once."""
    from bench import run

    quick = fixture.quick_asked(argv)
    move = run.measure_adoption_move(Server(embedded.start()), 2_000 if quick else 1_000_000, 1 if quick else 3)
    print(run.adoption_move_section(move))
    return 0


if __name__ == "__main__":
    sys.exit(main())
