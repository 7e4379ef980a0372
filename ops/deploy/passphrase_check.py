"""The stack's secrets passphrase checked before the engine reads a secret with it.

The engine reports a wrong passphrase only as a message. The stack file's `encryptionsalt` (written
by Pulumi's passphrase secrets manager) holds the word "pulumi" encrypted with the key the right
passphrase gives (PBKDF2-SHA256, 1,000,000 rounds, AES-256-GCM), so the same check the engine makes
tells a wrong passphrase apart, with an exit code of its own, before anything runs. A stack with
another secrets provider (no encryptionsalt) is left to that provider.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ROUNDS = 1_000_000
KEY_BYTES = 32
SENTINEL = b"pulumi"


def passphrase_matches(encryption_salt: str, passphrase: str) -> bool:
    """True when `passphrase` decrypts the salt's sentinel: `v1:<salt>:v1:<nonce>:<ciphertext>`, base64 parts."""
    try:
        version, salt, crypter, nonce, ciphertext = encryption_salt.split(":")
        if (version, crypter) != ("v1", "v1"):
            return True  # a format this check does not know: the engine judges it
        key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), base64.b64decode(salt), KEY_ROUNDS, KEY_BYTES)
        decrypted = AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), None)
    except (ValueError, binascii.Error):
        return True  # not the passphrase manager's state: the engine judges it
    except InvalidTag:
        return False
    return decrypted == SENTINEL


def stack_passphrases(env: Mapping[str, str]) -> list[str]:
    """The passphrase the engine will use, from the environment the engine gets (a file's, with and without its
    final newline: either may be what the stack was made with)."""
    if "PULUMI_CONFIG_PASSPHRASE" in env:
        return [env["PULUMI_CONFIG_PASSPHRASE"]]
    if "PULUMI_CONFIG_PASSPHRASE_FILE" in env:
        try:
            text = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text()
        except OSError:
            return []  # the engine names the file it cannot read
        return list(dict.fromkeys([text, text.rstrip("\r\n")]))
    return []


def wrong_passphrase(stack_file: Path, env: Mapping[str, str]) -> bool:
    """True when the stack file's secrets were provably encrypted with another passphrase than the environment's."""
    if not stack_file.exists():
        return False
    salt = (yaml.safe_load(stack_file.read_text()) or {}).get("encryptionsalt")
    passphrases = stack_passphrases(env)
    if not isinstance(salt, str) or not passphrases:
        return False
    return not any(passphrase_matches(salt, passphrase) for passphrase in passphrases)
