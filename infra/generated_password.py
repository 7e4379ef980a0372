"""A password generated once and kept in the stack's state as a secret, with its SCRAM verifier.

This plays the part of pulumi-random's RandomPassword without another plugin to download: a
Python dynamic provider runs inside the engine. The role is given the SCRAM-SHA-256 verifier, not
the password, so the plain text never reaches the server (where `log_statement` could log it).
"""

from __future__ import annotations

import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

from infra.scram import scram_sha256_verifier

PASSWORD_BYTES = 24


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
