"""A wrong secrets passphrase is told apart before the engine runs (ops/deploy/passphrase_check.py), by the check
the engine makes itself: the stack file's encryptionsalt decrypts to its sentinel only with the right passphrase."""

from __future__ import annotations

from pathlib import Path

from ops.deploy import driver, passphrase_check
from ops.paths import REPO_ROOT

DEV_STACK_FILE = REPO_ROOT / "Pulumi.dev.yaml"


def test_the_dev_stack_s_own_passphrase_matches_and_another_does_not() -> None:
    assert not passphrase_check.wrong_passphrase(DEV_STACK_FILE, {"PULUMI_CONFIG_PASSPHRASE": driver.DEV_PASSPHRASE})
    assert passphrase_check.wrong_passphrase(DEV_STACK_FILE, {"PULUMI_CONFIG_PASSPHRASE": "not-the-passphrase"})


def test_a_passphrase_file_with_its_final_newline_matches(tmp_path: Path) -> None:
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(driver.DEV_PASSPHRASE + "\n")
    assert not passphrase_check.wrong_passphrase(
        DEV_STACK_FILE, {"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file)}
    )


def test_a_stack_file_without_an_encryption_salt_is_left_to_its_secrets_provider(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.kms.yaml"
    stack_file.write_text("secretsprovider: awskms://alias/x\nconfig: {}\n")
    assert not passphrase_check.wrong_passphrase(stack_file, {"PULUMI_CONFIG_PASSPHRASE": "anything"})
