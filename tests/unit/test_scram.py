"""The SCRAM verifier the roles are created with: libpq's, with the password nowhere in it."""

from __future__ import annotations

from infra.scram import scram_sha256_verifier


def test_a_scram_verifier_is_libpqs_and_never_holds_the_password() -> None:
    first, second = scram_sha256_verifier("correct horse"), scram_sha256_verifier("correct horse")
    assert first.startswith("SCRAM-SHA-256$4096:") and "correct horse" not in first
    assert first != second  # a fresh salt every time
