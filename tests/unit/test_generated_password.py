"""The generated password's provider: what makes it rotate, and what it gives the role."""

from __future__ import annotations

import base64
import hashlib
import hmac

from infra.generated_password import _GeneratedPasswordProvider

PROVIDER = _GeneratedPasswordProvider()


def test_any_change_of_the_rotation_number_replaces_the_password() -> None:
    for old, new in (("1", "2"), ("2", "1")):  # lowering the number rotates too: any change does
        diff = PROVIDER.diff("id", {"rotation": old}, {"rotation": new})
        assert diff.changes and diff.replaces == ["rotation"], (old, new)


def test_the_same_rotation_number_changes_nothing() -> None:
    # Equal values from different places (the state, the program) are different string objects.
    diff = PROVIDER.diff("id", {"rotation": "10"}, {"rotation": "".join(["1", "0"])})
    assert not diff.changes and not diff.replaces


def test_a_password_has_24_random_bytes_and_the_role_gets_its_verifier() -> None:
    created = PROVIDER.create({"rotation": "1"}).outs
    assert created is not None
    password, verifier = created["result"], created["scram_verifier"]
    assert len(password) == 32  # 24 bytes, base64url: 192 bits
    assert verifier.startswith("SCRAM-SHA-256$4096:") and password not in verifier
    assert verifies(password, verifier) and not verifies(password + "x", verifier)


def verifies(password: str, verifier: str) -> bool:
    """RFC 5802's check, as the server makes it: does `verifier` hold this password's keys?"""
    _, rest = verifier.split("$", 1)
    iterations_and_salt, keys = rest.split("$")
    iterations, salt = iterations_and_salt.split(":")
    stored_key, server_key = (base64.b64decode(key) for key in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return (
        hashlib.sha256(client_key).digest() == stored_key
        and hmac.new(salted, b"Server Key", hashlib.sha256).digest() == server_key
    )
