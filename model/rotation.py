"""Two logins per runtime role, so that a password rotation never fails a login.

Each runtime role (app, logs_writer, logs_reader, every read-only role) is a NOLOGIN role that holds
the grants; its two LOGIN members, `<role>_a` and `<role>_b`, own and hold nothing of their own.
The stack config's rotation number of the role (`passwordRotations`, 1 until raised) says which
member the stack's outputs hand out and when each member last got a new password:

    rotation   1    2    3    4   ...
    handed out a    b    a    b
    a's password set at 1, kept at 2, new at 3, kept at 4, ...
    b's password set at 0 (the first deploy), new at 2, kept at 3, new at 4, ...

Raising the number by one sets a new password on the member that is not in use, then hands it out;
the other member keeps its password, so a client that has not re-read the outputs yet keeps
logging in through one whole rotation, and fails (password authentication failed) after the second.
"""

from __future__ import annotations

import enum


class Slot(enum.StrEnum):
    A = "a"
    B = "b"


SLOTS = (Slot.A, Slot.B)


def member_name(role_name: str, slot: Slot) -> str:
    return f"{role_name}_{slot}"


def handed_out(rotation: int) -> Slot:
    """The member whose password the stack's outputs carry at this rotation number."""
    return Slot.A if rotation % 2 == 1 else Slot.B


def password_generation(rotation: int, slot: Slot) -> int:
    """The rotation number at which `slot` last got a new password: the password changes when this does."""
    return rotation if handed_out(rotation) is slot else rotation - 1


def is_deployable(deployed: int, written: int) -> bool:
    """Whether a deploy may go from rotation `deployed` to `written`: the same (no change) or one more (a rotation).

    Going back renews the login handed out now (its generation falls below the rotation it got its
    password at), and skipping renews both logins at once: either fails every client of the login in use.
    """
    return written in (deployed, deployed + 1)
