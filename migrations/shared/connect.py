"""Connecting with retries for transient failures only.

A server that is restarting refuses connections or answers "the database system is starting up"
(SQLSTATE 57P03); those are worth a few tries with backoff. A wrong password (28P01), a missing
database (3D000) or any SQL error is not: retrying would only delay the message.
"""

from __future__ import annotations

import os
import sys
import time

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

# libpq reports a failure to connect without a SQLSTATE (there is no result to read one from), so
# the failures a restart or a failover explains are known by the server's (English) message.
TRANSIENT_MESSAGES = (
    "connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",  # a standby without hot standby, until promoted
    "server closed the connection unexpectedly",
    "timeout expired",
    "no such file or directory",  # the Unix socket of a server not yet up
)
DEFAULT_ATTEMPTS = 6
MAX_ATTEMPTS = 12
FIRST_BACKOFF_S = 0.5


def is_transient(error: OperationalError) -> bool:
    original = error.orig
    if not isinstance(original, psycopg.OperationalError):
        return False
    message = str(original).lower()
    return any(transient in message for transient in TRANSIENT_MESSAGES)


def connect_with_retry(engine: Engine) -> Connection:
    attempts = int(os.environ.get("HEADHUNTER_CONNECT_ATTEMPTS", DEFAULT_ATTEMPTS))
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise ValueError(
            f"HEADHUNTER_CONNECT_ATTEMPTS is {attempts}: give 1 (no retry) to {MAX_ATTEMPTS} "
            "(the backoff doubles: the last of 12 waits over 8 minutes)"
        )
    backoff = FIRST_BACKOFF_S
    for attempt in range(1, attempts + 1):
        try:
            return engine.connect()
        except OperationalError as error:
            if attempt == attempts or not is_transient(error):
                raise
            reason = str(error.orig).strip().splitlines()[0]
            print(f"cannot connect yet ({reason}); retry {attempt}/{attempts - 1} in {backoff:.1f}s", file=sys.stderr)
            time.sleep(backoff)
            backoff *= 2
    raise AssertionError("unreachable")
