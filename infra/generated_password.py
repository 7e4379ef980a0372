"""A password generated once and kept in the stack's state as a secret, with its SCRAM verifier.

This plays the part of pulumi-random's RandomPassword without another plugin to download: a
Python dynamic provider runs inside the engine. The role is given the SCRAM-SHA-256 verifier, not
the password, so the plain text never reaches the server (where `log_statement` could log it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

PASSWORD_BYTES = 24
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def scram_sha256_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The verifier PostgreSQL stores for `password` (RFC 5802/7677), in pg_authid's format."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class _GeneratedPasswordProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        outputs = {**props, "result": password, "scram_verifier": scram_sha256_verifier(password)}
        return CreateResult(id_=secrets.token_hex(8), outs=outputs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a new `rotation` value replaces the password (the runbook's way to rotate it).
        changed = olds.get("rotation") != news.get("rotation")
        return DiffResult(changes=changed, replaces=["rotation"] if changed else [], delete_before_replace=False)


class GeneratedPassword(pulumi.dynamic.Resource):
    """`result` is the password and `scram_verifier` what the role is created with; both secret."""

    result: pulumi.Output[str]
    scram_verifier: pulumi.Output[str]

    def __init__(self, name: str, rotation: str = "1", opts: pulumi.ResourceOptions | None = None) -> None:
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["result", "scram_verifier"])
        super().__init__(
            _GeneratedPasswordProvider(),
            name,
            {"rotation": rotation, "result": None, "scram_verifier": None},
            pulumi.ResourceOptions.merge(secret_outputs, opts),
        )
