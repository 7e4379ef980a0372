"""The model lists, for each kind of object, every privilege PostgreSQL can grant on it: a privilege
left out of a list is one that no check looks at (the verification and the policy pack compare a
role's holdings over these lists only), so a runtime role could hold it unseen."""

from __future__ import annotations

import pytest

from fixtures.cluster import Server
from model.privileges import ObjectKind

# acldefault()'s object types: what the server grants an object's owner, i.e. all it can grant.
ACL_OBJECT_TYPES = {ObjectKind.DATABASE: "d", ObjectKind.SCHEMA: "n", ObjectKind.TABLES: "r", ObjectKind.SEQUENCES: "s"}
# PostgreSQL 17's MAINTAIN on tables is checked apart, on 17+ only (tests/infra/test_privilege_matrix.py).
CHECKED_APART = {"MAINTAIN"}


@pytest.mark.parametrize("kind", list(ACL_OBJECT_TYPES))
def test_each_kind_lists_every_privilege_postgresql_can_grant_on_it(server: Server, kind: ObjectKind) -> None:
    with server.connect() as connection:
        rows = connection.execute(
            """SELECT DISTINCT privilege_type FROM aclexplode(acldefault(%s::"char", 'pg_database_owner'::regrole))""",
            (ACL_OBJECT_TYPES[kind],),
        ).fetchall()
    assert {privilege for (privilege,) in rows} - CHECKED_APART == set(kind.possible_privileges)
