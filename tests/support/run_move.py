"""`python -m tests.support.run_move SOURCE TARGET TABLE BATCH`: one move in a process of its own, for a
test to kill at a moment it picks from the lines printed. The admin's password comes in PGPASSWORD."""

from __future__ import annotations

import os
import sys

from ops.adoption import move
from ops.adoption.catalog import read_database
from ops.adoption.server_access import AdminAccess
from ops.localpg import embedded


def main(source: str, target: str, table: str, batch: str) -> None:
    connection = embedded.current_connection()
    admin = AdminAccess(connection.host, connection.port, connection.user, os.environ["PGPASSWORD"])
    with admin.connect(source) as session:
        shape = read_database(session).tables[table]
    move.BATCH_ROWS = int(batch)  # this process's own copy of the module: small batches, many kill points
    move.move_table(admin, move.spec_for(shape, source, target), lambda line: print(line, flush=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
