"""The expectations written by hand, on purpose independent of the model, cover every role the model has.

A runtime role added to model/privileges.py fails here until its row, its login and its check after
each deploy are written (docs/architecture.md, "Add a runtime role"), instead of passing unchecked.
"""

from __future__ import annotations

from fixtures.observed import PROMISED_LOGINS, PROMISED_MATRIX
from model.names import DatabaseKey, migrator_key
from model.privileges import RUNTIME_ROLES
from ops.deploy.role_check import CHECKS

RUNTIME_KEYS = {role.key for role in RUNTIME_ROLES}


def test_every_runtime_role_has_a_row_in_the_promised_matrix() -> None:
    assert set(PROMISED_MATRIX) == RUNTIME_KEYS | {"public"}


def test_every_runtime_role_and_migrator_is_a_promised_login() -> None:
    assert {migrator_key(database) for database in DatabaseKey} | RUNTIME_KEYS == PROMISED_LOGINS


def test_every_runtime_role_is_tried_by_a_check_after_each_deploy() -> None:
    assert {check.role_key for check in CHECKS} == RUNTIME_KEYS
