"""The stack's outputs: one name each, for the program that exports them and everything that reads them.

A renamed or removed output then fails mypy in every reader (the commands, the verification suite,
the tests' contract stack) instead of a pipeline at run time. The values' shapes are described where
they are read: ops/deploy/deployed_stack.py.
"""

from __future__ import annotations

import enum


class StackOutput(enum.StrEnum):
    HOST = "host"
    PORT = "port"
    SSLMODE = "sslmode"
    DATABASES = "databases"
    OWNER_ROLES = "owner_roles"
    MIGRATOR_ROLES = "migrator_roles"
    RUNTIME_ROLES = "runtime_roles"
    ROLE_PREFIX = "role_prefix"
    READ_ONLY_ROLES = "read_only_roles"
    CONNECTION_LIMITS = "connection_limits"
    STATEMENT_TIMEOUTS = "statement_timeouts_ms"
    OPEN_HANDOVERS = "open_login_handovers"
    MIGRATION_REVISIONS = "migration_revisions"
    CONTRACT_THROUGH = "contract_through"
    CONNECTION_URLS = "connection_urls"
    STANDBY_CONNECTION_URLS = "standby_connection_urls"
    PASSWORD_ROTATIONS = "password_rotations"  # noqa: S105 (the rotation numbers, not a password)
    LEGACY_ROLES = "legacy_roles"
    LOG_PARTITIONS = "log_partitions"
    LOG_LIFECYCLE = "log_lifecycle"
