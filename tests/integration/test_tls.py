"""TLS with certificates that are checked: verify-full against the embedded server, and its failures.

The embedded server presents a certificate that a test-made CA signed for `localhost`, and lets
the stack's admin in only over TLS with a client certificate of that CA. A deploy that succeeds
therefore proves that every connection (the provider's, the preflight's, the migrations' and the
verification's) carried the CA bundle, and the provider's the client certificate. A wrong CA, a
wrong host name and an expired certificate each stop the deploy before anything changes, with
exit 5 and the reason in words.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from fixtures import tls
from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, on_backend, project_stack
from fixtures.shared_backend import STATE_DATABASE, STATE_ROLE, SharedBackend, init_command
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.matrix]
ADMIN = "tls_admin_of_the_tests"


@dataclass(frozen=True)
class TlsServer:
    server: Server
    files: tls.TlsFiles
    ca: tls.Issued
    admin_password: str


@pytest.fixture(scope="module")
def tls_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    ca, other_ca = tls.certificate_authority("headhunter test CA"), tls.certificate_authority("another CA")
    files = tls.write_client_files(tmp_path_factory.mktemp("tls"), ca, tls.issue(ca, ADMIN), other_ca)
    password = secrets.token_urlsafe(24)
    with server.connect() as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ADMIN)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(ADMIN), sql.Literal(password))
        )
    with tls.server_with_tls(server, tls.issue(ca, "localhost", ("localhost",)), ca, ADMIN):
        yield TlsServer(server, files, ca, password)
    with server.connect() as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ADMIN)))


def tls_stack(folder: Path, tls_server: TlsServer, **changes: object) -> ProjectStack:
    config = {
        "embeddedServer": "false",
        "host": "localhost",
        "port": tls_server.server.connection.port,
        "sslmode": "verify-full",
        "sslRootCert": str(tls_server.files.ca),
        "sslCert": str(tls_server.files.client_cert),
        "sslKey": str(tls_server.files.client_key),
        "adminUser": ADMIN,
        **changes,
    }
    project = project_stack(folder, "tls", "tlstest", **config)
    assert project.pulumi("stack", "init").returncode == 0
    secret = project.pulumi("config", "set", "--secret", "headhunter-db:adminPassword", stdin=tls_server.admin_password)
    assert secret.returncode == 0, secret.stderr
    return project


@pytest.mark.slow
def test_a_verify_full_deploy_with_a_client_certificate(tls_server: TlsServer, tmp_path: Path) -> None:
    project = tls_stack(tmp_path, tls_server)
    try:
        up = project.script("ops.commands.up", project.stack)
        assert up.returncode == ExitCode.OK, up.stdout[-4000:] + up.stderr[-2000:]
        verified = project.script("ops.commands.verify", project.stack)
        assert verified.returncode == ExitCode.OK, verified.stdout[-4000:]
        # The verification's own check that its connections were encrypted ran, and passed.
        assert "ok       test_connections_are_encrypted_when_the_stack_asks" in verified.stdout
        destroyed = project.script("ops.commands.destroy", project.stack, "--yes")
        assert destroyed.returncode == ExitCode.OK, destroyed.stdout[-4000:] + destroyed.stderr[-2000:]
    finally:
        cleanup(project, tls_server.server)


@pytest.mark.fault(
    what="TLS that does not verify: the CA bundle is not the server's, the host is not a name the server's "
    "certificate holds, the server's certificate has expired",
    recovery="the message names which, and the key that fixes it; nothing was changed",
)
@pytest.mark.parametrize("failure", ["wrong CA", "wrong host name", "expired certificate"])
def test_a_certificate_that_does_not_verify_stops_the_deploy_before_any_change(
    tls_server: TlsServer, tmp_path: Path, failure: str, fault_seen: SeenFunction
) -> None:
    changes: dict[str, object] = {}
    if failure == "wrong CA":
        changes = {"sslRootCert": str(tls_server.files.other_ca)}
    if failure == "wrong host name":
        changes = {"host": "127.0.0.1"}
    expected = {
        "wrong CA": "is not signed by a CA in headhunter-db:sslRootCert",
        "wrong host name": "does not name the host '127.0.0.1'",
        "expired certificate": "has expired",
    }[failure]
    project = tls_stack(tmp_path, tls_server, **changes)
    good = tls.issue(tls_server.ca, "localhost", ("localhost",))
    if failure == "expired certificate":
        past = (tls.NOW - 60 * tls.DAY, tls.NOW - 30 * tls.DAY)
        expired = tls.issue(tls_server.ca, "localhost", ("localhost",), past)
        tls.serve_certificate(tls_server.server, expired, tls_server.ca)
    try:
        up = project.script("ops.commands.up", project.stack)
    finally:
        tls.serve_certificate(tls_server.server, good, tls_server.ca)

    assert up.returncode == ExitCode.SERVER_UNREACHABLE, up.stdout[-3000:] + up.stderr[-3000:]
    assert expected in up.stderr and "Nothing was changed." in up.stderr, up.stderr[-3000:]
    assert leftover_objects(project, tls_server.server) == []
    fault_seen("scripts/up", up.returncode, up.stderr, expected)


@pytest.mark.shared_backend
def test_the_shared_state_backend_verifies_the_servers_certificate(
    tls_server: TlsServer, shared_backend: SharedBackend, tmp_path: Path
) -> None:
    """The backend URL's TLS parameters reach the scripts' check (libpq) and the engine's own client (lib/pq)."""

    def over_tls(ca: Path) -> SharedBackend:
        where = f"localhost:{tls_server.server.connection.port}/{STATE_DATABASE}"
        return dataclasses.replace(
            shared_backend, url=f"postgres://{STATE_ROLE}@{where}?sslmode=verify-full&sslrootcert={ca}"
        )

    trusted, untrusted = over_tls(tls_server.files.ca), over_tls(tls_server.files.other_ca)
    checked = init_command(trusted, "", "check")
    assert checked.returncode == ExitCode.OK, checked.stdout + checked.stderr
    refused = init_command(untrusted, "", "check")
    assert refused.returncode == ExitCode.SERVER_UNREACHABLE and "certificate verify failed" in refused.stderr

    project = on_backend(project_stack(tmp_path, "tlsstate", "tlsstate"), trusted)
    made = project.pulumi("stack", "init")
    assert made.returncode == 0, made.stderr
    removed = project.pulumi("stack", "rm", "--yes", "--preserve-config")
    assert removed.returncode == 0, removed.stderr
    engine_refused = on_backend(project, untrusted).pulumi("stack", "init")
    assert engine_refused.returncode != 0 and "certificate signed by unknown authority" in engine_refused.stderr
