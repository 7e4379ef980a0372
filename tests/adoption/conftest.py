"""The review's legacy deployment on the embedded server, and the trees' revision shapes measured once."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from fixtures.cluster import Server
from fixtures.legacy import LegacyDatabases, build_legacy
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from ops.adoption.revision_shapes import RevisionShape, revision_shapes
from ops.adoption.server_access import AdminAccess


@pytest.fixture(scope="session")
def admin(server: Server) -> AdminAccess:
    connection = server.connection
    return AdminAccess(connection.host, connection.port, connection.user, connection.password)


@pytest.fixture(scope="session")
def shapes(admin: AdminAccess) -> dict[DatabaseKey, list[RevisionShape]]:
    return {key: revision_shapes(admin, TREES[key.value]) for key in DatabaseKey}


@pytest.fixture
def legacy(server: Server) -> Iterator[LegacyDatabases]:
    deployment = build_legacy(server, f"t{secrets.token_hex(3)}")
    try:
        yield deployment
    finally:
        deployment.drop()
