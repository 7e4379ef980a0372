"""The SCRAM-SHA-256 verifier PostgreSQL stores for a password, computed by libpq itself.

Roles are created with the verifier, never the password, so the plain text never reaches the server
(where `log_statement` could log it). libpq's PQencryptPasswordConn computes it (psycopg exposes it
as PGconn.encrypt_password); it takes a connection only to look up `password_encryption` when no
algorithm is named, and we name one. The deploy makes passwords before any connection exists, so a
connection object that never connects serves: its socket path does not exist, so nothing is sent.
"""

from __future__ import annotations

_NEVER_CONNECTS = b"host=/nonexistent/headhunter-scram dbname=none connect_timeout=1"


def scram_sha256_verifier(password: str) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, with a fresh random salt."""
    # psycopg is imported when a password is made (in the engine's dynamic-provider process), not
    # by the program process: it costs every `pulumi up` 80 ms otherwise.
    from psycopg import pq

    connection = pq.PGconn.connect_start(_NEVER_CONNECTS)
    try:
        return connection.encrypt_password(password.encode(), b"", b"scram-sha-256").decode()
    finally:
        connection.finish()
