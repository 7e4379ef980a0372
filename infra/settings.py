"""Stack configuration: read in this module only, validated into frozen objects before any resource.

Every key is declared with a description in Pulumi.yaml. Errors name the `Pulumi.<stack>.yaml` key
and the fix. The raw values come either from `pulumi.Config` (inside the program) or from the
Automation API's `get_all_config()` (the deploy driver checks a stack before starting the engine):
both are flattened into `{key: string}` and go through the same `parse_settings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from infra.identifiers import identifier_problem
from infra.privileges import DatabaseKey, RoleNames

NAMESPACE = "headhunter-db"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# PostgreSQL 15 makes pg_database_owner own the public schema: the owner role creates tables there
# with no grant from a superuser. Older servers need a manual ALTER SCHEMA public OWNER first.
MIN_SUPPORTED_SERVER_VERSION = 15


# Every key the program reads; Pulumi.yaml declares exactly these (tests/unit/test_settings.py).
PLAIN_KEYS = (
    "embeddedServer", "host", "port", "sslmode", "adminUser", "adminIsSuperuser", "minServerVersion",
    "mainDatabase", "logsDatabase", "rolePrefix", "production", "allowDatabaseDeletion", "connectionLimits",
    "statementTimeoutsMs", "passwordRotations", "readOnlyRoles",
)  # fmt: skip
SECRET_KEYS = ("adminPassword",)


class ConfigError(ValueError):
    """A stack configuration problem, worded for the person who edits the stack file."""


@dataclass(frozen=True)
class ServerSettings:
    embedded: bool
    """True for the dev stack: host, port and admin password are those of scripts/localpg's server."""
    host: str
    port: int
    sslmode: str
    admin_user: str
    # The admin password is only checked for presence here: the program hands it to the provider as
    # the secret Output that pulumi.Config gives, so it never becomes a plain Python string.
    # RDS, Cloud SQL and Azure give an admin that is not a real superuser: the provider must know,
    # or it tries superuser-only statements.
    admin_is_superuser: bool
    min_version: str


@dataclass(frozen=True)
class ReadOnlyRole:
    """An extra login role that may only read one database's tables (analysts, BI tools)."""

    name: str
    database: DatabaseKey


@dataclass(frozen=True)
class Settings:
    stack: str
    server: ServerSettings
    database_names: Mapping[DatabaseKey, str]
    role_names: RoleNames
    production: bool
    allow_database_deletion: bool
    connection_limits: Mapping[str, int]
    statement_timeouts_ms: Mapping[str, int]
    password_rotations: Mapping[str, int]
    """Per login role: raise the number to generate a new password on the next deploy."""
    read_only_roles: tuple[ReadOnlyRole, ...]

    @property
    def protect_databases(self) -> bool:
        return not self.allow_database_deletion


def parse_settings(stack: str, raw: Mapping[str, str]) -> Settings:
    """Validate the flattened stack configuration; raise ConfigError naming the key and the fix."""
    reader = _Reader(stack, raw)
    embedded = reader.boolean("embeddedServer", False)
    if embedded:
        for key in ("host", "port", "adminPassword"):
            if key in raw:
                raise reader.error(
                    key,
                    "is set while embeddedServer is true",
                    "remove one: the embedded server brings its own address and password",
                )
        host, port = embedded_server_address()
    else:
        reader.required("adminPassword", secret=True)
        host = reader.required("host")
        port = reader.integer("port", 5432, minimum=1, maximum=65535)
    server = ServerSettings(
        embedded=embedded,
        host=host,
        port=port,
        sslmode=reader.choice("sslmode", "require", SSL_MODES),
        admin_user=reader.required("adminUser"),
        admin_is_superuser=reader.boolean("adminIsSuperuser", True),
        min_version=str(
            reader.integer("minServerVersion", MIN_SUPPORTED_SERVER_VERSION, minimum=MIN_SUPPORTED_SERVER_VERSION)
        ),
    )
    database_names = {
        DatabaseKey.MAIN: reader.identifier("mainDatabase"),
        DatabaseKey.LOGS: reader.identifier("logsDatabase"),
    }
    if database_names[DatabaseKey.MAIN] == database_names[DatabaseKey.LOGS]:
        raise reader.error(
            "logsDatabase",
            f"is {database_names[DatabaseKey.LOGS]!r}, the same as mainDatabase",
            "give the logs database its own name: keeping the two apart is the point of this stack",
        )
    role_names = RoleNames(prefix=reader.identifier("rolePrefix"))
    production = reader.boolean("production", False)
    allow_deletion = reader.boolean("allowDatabaseDeletion", False)
    if production and allow_deletion:
        raise reader.error(
            "allowDatabaseDeletion",
            "is true on a stack marked production",
            "remove it: production databases are always protected against destroy and rename",
        )
    read_only_roles = reader.read_only_roles("readOnlyRoles")
    _check_role_names_unique(reader, role_names, read_only_roles)
    role_keys = role_names.all_keys()
    return Settings(
        stack=stack,
        server=server,
        database_names=database_names,
        role_names=role_names,
        production=production,
        allow_database_deletion=allow_deletion,
        connection_limits=reader.per_role_integers("connectionLimits", role_keys, minimum=-1),
        statement_timeouts_ms=reader.per_role_integers("statementTimeoutsMs", role_keys, minimum=0),
        password_rotations=reader.per_role_integers("passwordRotations", role_keys, minimum=1),
        read_only_roles=read_only_roles,
    )


def embedded_server_address() -> tuple[str, int]:
    from ops import localpg

    connection = localpg.current_connection()
    return connection.host, connection.port


def embedded_server_password() -> str:
    from ops import localpg

    return localpg.current_connection().password


def _check_role_names_unique(reader: _Reader, names: RoleNames, extra: tuple[ReadOnlyRole, ...]) -> None:
    for derived in names.all_names():
        if problem := identifier_problem(derived):
            raise reader.error(
                "rolePrefix",
                f"makes the role name {derived!r}, and {problem}",
                "choose a shorter prefix of lower case letters, digits and underscores",
            )
    seen = set(names.all_names()) | set(names.all_keys())  # keys name the stack's outputs too
    for role in extra:
        if role.name in seen:
            raise reader.error(
                "readOnlyRoles",
                f"names the role {role.name!r} twice or reuses a role of this stack",
                "give every read-only role a name of its own",
            )
        seen.add(role.name)


@dataclass(frozen=True)
class _Reader:
    stack: str
    raw: Mapping[str, str]

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"Pulumi.{self.stack}.yaml: {NAMESPACE}:{key} {problem}: {fix}.")

    def optional(self, key: str, default: str) -> str:
        value = self.raw.get(key)
        return default if value is None or value == "" else value

    def required(self, key: str, secret: bool = False) -> str:
        value = self.raw.get(key)
        if value is None or value == "":
            setter = f"pulumi config set {'--secret ' if secret else ''}{NAMESPACE}:{key} <value> --stack {self.stack}"
            raise self.error(key, "is missing", f"set it with `{setter}`")
        return value

    def identifier(self, key: str) -> str:
        value = self.required(key)
        if problem := identifier_problem(value):
            raise self.error(key, f"is {value!r}, and {problem}", "choose another name")
        return value

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        text = self.optional(key, str(default))
        try:
            value = int(text)
        except ValueError:
            raise self.error(key, f"is {text!r}, not a whole number", "give a number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum is not None else "")
            raise self.error(key, f"is {value}", f"give a number {bounds}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        text = self.optional(key, str(default)).lower()
        if text not in ("true", "false"):
            raise self.error(key, f"is {text!r}", "write true or false")
        return text == "true"

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.optional(key, default)
        if value not in choices:
            raise self.error(key, f"is {value!r}, an unknown value", f"use one of {', '.join(choices)}")
        return value

    def structured(self, key: str) -> object:
        text = self.raw.get(key)
        if text is None or text == "":
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise self.error(key, "is not valid structured config", "write it as a YAML map or list") from None

    def per_role_integers(self, key: str, role_keys: tuple[str, ...], minimum: int) -> dict[str, int]:
        value = self.structured(key) or {}
        if not isinstance(value, dict):
            raise self.error(key, "is not a map", f"write a map from role ({', '.join(role_keys)}) to a number")
        result: dict[str, int] = {}
        for role_key, number in value.items():
            if role_key not in role_keys:
                raise self.error(key, f"names the unknown role {role_key!r}", f"use one of {', '.join(role_keys)}")
            if not isinstance(number, int) or isinstance(number, bool) or number < minimum:
                raise self.error(key, f"gives {role_key} {number!r}", f"give a whole number of at least {minimum}")
            result[role_key] = number
        return result

    def read_only_roles(self, key: str) -> tuple[ReadOnlyRole, ...]:
        value = self.structured(key) or []
        if not isinstance(value, list):
            raise self.error(key, "is not a list", "write a list of {name: ..., database: main|logs}")
        roles = []
        for entry in value:
            if not isinstance(entry, dict) or set(entry) != {"name", "database"}:
                raise self.error(key, f"has the entry {entry!r}", "give each entry exactly a name and a database")
            if problem := identifier_problem(str(entry["name"])):
                raise self.error(key, f"names the role {entry['name']!r}, and {problem}", "choose another name")
            if entry["database"] not in (DatabaseKey.MAIN.value, DatabaseKey.LOGS.value):
                raise self.error(key, f"gives {entry['name']} the database {entry['database']!r}", "use main or logs")
            roles.append(ReadOnlyRole(name=str(entry["name"]), database=DatabaseKey(entry["database"])))
        return tuple(roles)


def raw_config_from_pulumi() -> dict[str, str]:
    """The stack's configuration as flat strings, read through pulumi.Config (inside the program)."""
    import pulumi

    config = pulumi.Config(NAMESPACE)
    raw: dict[str, str] = {}
    for key in PLAIN_KEYS:
        value = config.get(key)
        if value is not None:
            raw[key] = value
    if config.get_secret("adminPassword") is not None:
        raw["adminPassword"] = "<secret: set>"  # validation needs only to know that it is set
    return raw
