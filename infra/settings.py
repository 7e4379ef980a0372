"""Stack configuration: read in this module only, validated into frozen objects before any resource.

Every key is declared with a description in Pulumi.yaml, and the defaults are read from there: the
engine applies the same ones under `pulumi up`. Errors name the `Pulumi.<stack>.yaml` key and the
fix. The raw values come either from the engine's config (inside the program) or from the
Automation API's `get_all_config()` (the deploy driver checks a stack before starting the engine):
both are flattened into `{key: string}` and go through the same `parse_settings`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from infra import embedded_server
from infra.identifiers import identifier_problem
from migrations.shared.heads import default_location, migrations_copy_folder
from migrations.shared.phases import PhaseError, contract_through_fix, contract_through_known, revision_files
from model.log_lifecycle import LOG_TABLES, MAX_PREMAKE_DAYS, MAX_RETENTION_DAYS, LogLifecycle
from model.names import DatabaseKey, RoleNames, readers_key
from model.privileges import RUNTIME_ROLES, role_keys
from model.rotation import SLOTS, member_name
from model.server_versions import SUPPORTED_MAJORS, is_supported, supported_text

if TYPE_CHECKING:
    from pulumi import Output

NAMESPACE = "headhunter-db"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# PostgreSQL 15 makes pg_database_owner own the public schema: the owner role creates tables there
# with no grant from a superuser. Older servers need a manual ALTER SCHEMA public OWNER first.
MIN_SUPPORTED_SERVER_VERSION = min(SUPPORTED_MAJORS)


# Every key the program reads; Pulumi.yaml declares exactly these (tests/unit/test_settings.py).
PLAIN_KEYS = (
    "embeddedServer", "embeddedServerVersion", "host", "port", "sslmode", "sslRootCert", "sslCert", "sslKey",
    "adminUser", "adminIsSuperuser", "minServerVersion", "allowUntestedServerVersion",
    "mainDatabase", "logsDatabase", "rolePrefix", "production", "allowDatabaseDeletion", "connectionLimits",
    "statementTimeoutsMs", "passwordRotations", "readOnlyRoles", "legacyRoles", "logRetention", "logPremake",
    "retirementGraceSeconds", "contractThrough",
)  # fmt: skip
RESERVED_ROLE_PREFIX = "pg_"
LEGACY_ROLE_ACTIONS = ("keep", "nologin", "drop")
"""What scripts/adopt --apply does to a role outside the model (stack config `legacyRoles`); keep by default."""
SECRET_KEYS = ("adminPassword",)
# What the raw config holds in place of a secret's value: how it is stored, never the value.
SECRET_IS_SET = "<secret: set>"  # noqa: S105 (a marker, not a password)
SECRET_IN_PLAIN_TEXT = "<plain text>"  # noqa: S105 (a marker, not a password)


class ConfigError(ValueError):
    """A stack configuration problem, worded for the person who edits the stack file."""


@cache
def declared_defaults() -> dict[str, str]:
    """The defaults Pulumi.yaml declares, as the flat strings pulumi.Config returns."""
    declared: dict[str, dict[str, Any]] = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    return {
        key.removeprefix(f"{NAMESPACE}:"): _as_config_string(declaration["default"])
        for key, declaration in declared.items()
        if "default" in declaration
    }


def _as_config_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class TlsFiles:
    """Absolute paths of the PEM files every connection hands to libpq; "" when not set."""

    root_cert: str = ""
    cert: str = ""
    key: str = ""

    def libpq_parameters(self) -> dict[str, str]:
        """sslrootcert, sslcert and sslkey, as libpq (psycopg, and lib/pq in the provider) names them."""
        named = {"sslrootcert": self.root_cert, "sslcert": self.cert, "sslkey": self.key}
        return {name: path for name, path in named.items() if path}


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
    tls: TlsFiles = TlsFiles()
    allow_untested_version: bool = False
    """The stack opts in to a server of a major outside model.server_versions.SUPPORTED_MAJORS."""
    embedded_major: int | None = None
    """The embedded server's major the stack asks for (embeddedServerVersion); None for a server of its own."""
    running_major: int | None = None
    """The major the checkout's embedded server runs, as scripts/localpg recorded it."""


@dataclass(frozen=True)
class ReadOnlyRole:
    """An extra login role that may only read one database's tables (analysts, BI tools)."""

    name: str
    database: DatabaseKey


@dataclass(frozen=True)
class LoginSettings:
    """What the stack config says of one login role (its key in the per-role maps)."""

    connection_limit: int
    """-1 when the stack sets none: no limit."""
    statement_timeout_ms: int
    """0 when the stack sets none: no timeout."""
    password_rotation: int
    """1 until the stack raises it: a new number generates a new password on the next deploy."""


ADOPT_EXISTING_ENV_VAR = "HEADHUNTER_ADOPT_EXISTING"
"""Set by scripts/adopt --apply while it deploys: the keys (main,logs) of the databases that exist on
the server already; each is imported with its owner role instead of created."""
PROJECT_DIR_ENV_VAR = "HEADHUNTER_PROJECT_DIR"
"""The folder of Pulumi.yaml and the stack files, when a test deploys a project folder of its own."""


@dataclass(frozen=True)
class ProgramEnvironment:
    """The program's inputs besides the stack config: environment variables that the scripts and the
    tests set. They are read here once; nothing else in infra/ reads the environment."""

    adopt_existing: frozenset[DatabaseKey] = frozenset()
    """Databases that exist already and are imported into the stack instead of created
    (ADOPT_EXISTING_ENV_VAR), never set by a stack file."""
    migrations_copy: Path | None = None
    """A copy of both trees to run instead of migrations/ (MIGRATIONS_COPY_ENV_VAR): a release's
    trees, the benchmark's grown logs tree."""
    state_dir: Path = embedded_server.DEFAULT_STATE_DIR
    """Where the embedded server's connection file is (embedded_server.STATE_DIR_ENV_VAR)."""
    project_dir: Path = PROJECT_FILE.parent
    """Relative paths in a stack file (the TLS files) are read from here (PROJECT_DIR_ENV_VAR).
    Not the working directory: the engine runs the program in `main` (infra/)."""

    def tree_location(self, tree_key: str) -> Path | None:
        """The copy of a tree to run, or None for the tree in migrations/."""
        return self.migrations_copy / tree_key if self.migrations_copy else None


def program_environment(environ: Mapping[str, str]) -> ProgramEnvironment:
    return ProgramEnvironment(
        adopt_existing=adopt_existing_from(environ),
        migrations_copy=migrations_copy_folder(environ),
        state_dir=embedded_server.state_dir(environ),
        project_dir=Path(environ.get(PROJECT_DIR_ENV_VAR) or PROJECT_FILE.parent),
    )


def adopt_existing_from(environ: Mapping[str, str]) -> frozenset[DatabaseKey]:
    text = environ.get(ADOPT_EXISTING_ENV_VAR, "")
    keys = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [key for key in keys if key not in {k.value for k in DatabaseKey}]
    if unknown:
        raise ConfigError(
            f"{ADOPT_EXISTING_ENV_VAR}={text!r} names {', '.join(unknown)}, not a database of the stack: "
            f"give {' or '.join(k.value for k in DatabaseKey)}, comma-separated (scripts/adopt sets it)."
        )
    return frozenset(DatabaseKey(key) for key in keys)


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
    log_lifecycle: LogLifecycle
    """The log tables' retention and how far ahead their partitions are made."""
    legacy_roles: Mapping[str, str] = field(default_factory=dict)
    """Roles of an adopted deployment (not the model's) and what scripts/adopt does to them: keep,
    nologin (it can no longer log in) or drop (what it owns goes to the database's owner role first)."""
    retirement_grace_seconds: int = 30
    """How long a deploy that retires a role waits for its sessions to end before it ends them."""
    contract_through: str | None = None
    """The last main-tree revision whose contract revisions may run (or head); None: none may
    (migrations.shared.phases, docs/expand-contract.md)."""
    environment: ProgramEnvironment = ProgramEnvironment()

    @property
    def protect_databases(self) -> bool:
        return not self.allow_database_deletion

    def login(self, role_key: str) -> LoginSettings:
        return LoginSettings(
            connection_limit=self.connection_limits.get(role_key, -1),
            statement_timeout_ms=self.statement_timeouts_ms.get(role_key, 0),
            password_rotation=self.password_rotations.get(role_key, 1),
        )


def parse_settings(stack: str, raw: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Settings:
    """Validate the flattened stack configuration and the program's environment (os.environ unless
    given); raise ConfigError naming the key and the fix."""
    environment = program_environment(os.environ if environ is None else environ)
    reader = _Reader(stack, raw, environment.project_dir)
    for key in raw:
        if key not in PLAIN_KEYS + SECRET_KEYS:
            known = ", ".join(sorted(PLAIN_KEYS + SECRET_KEYS))
            raise reader.error(key, "is not a key this program reads", f"remove it or correct its name ({known})")
    if raw.get("adminPassword") == SECRET_IN_PLAIN_TEXT:
        raise reader.error(
            "adminPassword",
            "is stored in plain text",
            f"remove it and set it again with `pulumi config set --secret {NAMESPACE}:adminPassword --stack {stack}`, "
            "which reads it from standard input",
        )
    embedded = reader.boolean("embeddedServer")
    if embedded:
        for key in ("host", "adminPassword"):
            if raw.get(key):
                raise reader.error(
                    key,
                    "is set while embeddedServer is true",
                    "remove one: the embedded server brings its own address and password",
                )
        if raw.get("port") not in (None, "", declared_defaults()["port"]):
            # The engine hands the program Pulumi.yaml's default, so only another value is the stack's own.
            raise reader.error(
                "port",
                f"is {raw['port']} while embeddedServer is true",
                "remove it: the embedded server brings its own address (scripts/localpg status shows it)",
            )
        try:
            local = embedded_server.read(environment.state_dir)
        except embedded_server.EmbeddedServerMissingError:
            raise reader.error(
                "embeddedServer", "is true, but this checkout's embedded PostgreSQL was never started", "run scripts/up"
            ) from None
        host, port = local.host, local.port
        embedded_major, running_major = _embedded_major(reader), local.major
    else:
        if raw.get("embeddedServerVersion") not in (None, "", declared_defaults()["embeddedServerVersion"]):
            # As for port: the engine hands the program Pulumi.yaml's default, so only another value is the stack's.
            raise reader.error(
                "embeddedServerVersion",
                "is set while embeddedServer is false",
                "remove it: it picks the embedded server",
            )
        embedded_major, running_major = None, None
        reader.required("adminPassword", secret=True)
        host = reader.required("host")
        port = reader.integer("port", minimum=1, maximum=65535)
    sslmode = reader.choice("sslmode", SSL_MODES)
    untested = reader.boolean("allowUntestedServerVersion")
    server = ServerSettings(
        embedded=embedded,
        host=host,
        port=port,
        sslmode=sslmode,
        admin_user=reader.required("adminUser"),
        admin_is_superuser=reader.boolean("adminIsSuperuser"),
        # An untested server may be older than every supported major: its stack says so in both keys.
        min_version=str(reader.integer("minServerVersion", minimum=10 if untested else MIN_SUPPORTED_SERVER_VERSION)),
        tls=reader.tls_files(sslmode),
        allow_untested_version=untested,
        embedded_major=embedded_major,
        running_major=running_major,
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
    production = reader.boolean("production")
    allow_deletion = reader.boolean("allowDatabaseDeletion")
    if production and allow_deletion:
        raise reader.error(
            "allowDatabaseDeletion",
            "is true on a stack marked production",
            "remove it: production databases are always protected against destroy and rename",
        )
    read_only_roles = reader.read_only_roles("readOnlyRoles")
    _check_role_names_unique(reader, role_names, read_only_roles)
    # A read-only role is named by its key: its limits and rotations are set under its name.
    keys = role_keys() + tuple(role.name for role in read_only_roles)
    return Settings(
        stack=stack,
        server=server,
        database_names=database_names,
        role_names=role_names,
        production=production,
        allow_database_deletion=allow_deletion,
        connection_limits=reader.per_role_integers("connectionLimits", keys, minimum=-1),
        statement_timeouts_ms=reader.per_role_integers("statementTimeoutsMs", keys, minimum=0),
        password_rotations=reader.per_role_integers("passwordRotations", keys, minimum=1),
        read_only_roles=read_only_roles,
        log_lifecycle=reader.log_lifecycle("logRetention", "logPremake"),
        legacy_roles=reader.legacy_roles("legacyRoles", role_names, server.admin_user),
        retirement_grace_seconds=reader.integer("retirementGraceSeconds", minimum=0, maximum=3600),
        contract_through=reader.contract_through("contractThrough", environment.tree_location(DatabaseKey.MAIN.value)),
        environment=environment,
    )


def _embedded_major(reader: _Reader) -> int:
    text = reader.optional("embeddedServerVersion")
    if not text.isdigit() or not is_supported(int(text)):
        raise reader.error(
            "embeddedServerVersion", f"is {text!r}", f"give one of the supported majors ({supported_text()})"
        )
    return int(text)


def embedded_major_mismatch(settings: Settings) -> str | None:
    """The embedded server runs another major than the stack asks for: the program deploys nothing then.

    Only a deploy is refused: a destroy, a verify or a refresh acts on the stack where it is.
    """
    server = settings.server
    if server.running_major is None or server.running_major == server.embedded_major:
        return None
    return (
        f"Pulumi.{settings.stack}.yaml: {NAMESPACE}:embeddedServerVersion is {server.embedded_major}, and this "
        f"checkout's embedded server runs PostgreSQL {server.running_major}: set it to {server.running_major}, or "
        "move the stack: scripts/destroy the stack, scripts/localpg reset (the cluster and its databases are "
        "deleted), then scripts/up, which starts the major the stack asks for."
    )


def default_log_lifecycle() -> LogLifecycle:
    """The lifecycle Pulumi.yaml's defaults give (test fixtures that deploy without a stack file)."""
    return _Reader("defaults", {}).log_lifecycle("logRetention", "logPremake")


def embedded_server_password(settings: Settings) -> str:
    return embedded_server.read(settings.environment.state_dir).password


def reserved_role_name(name: str) -> bool:
    """PostgreSQL keeps names that start with pg_ for its own roles (pg_monitor, ...): CREATE ROLE refuses them."""
    return name.startswith(RESERVED_ROLE_PREFIX)


def _check_role_names_unique(reader: _Reader, names: RoleNames, read_only: tuple[ReadOnlyRole, ...]) -> None:
    groups = [names.of(readers_key(database)) for database in DatabaseKey]  # made only when a database has readers
    logins = [member_name(names.of(role.key), slot) for role in RUNTIME_ROLES for slot in SLOTS]
    derived_names = [names.of(key) for key in role_keys()] + groups + logins
    for derived in derived_names:
        if problem := identifier_problem(derived):
            raise reader.error(
                "rolePrefix",
                f"makes the role name {derived!r}, and {problem}",
                "choose a shorter prefix of lower case letters, digits and underscores",
            )
        if reserved_role_name(derived):
            raise reader.error(
                "rolePrefix",
                f"makes the role name {derived!r}, and PostgreSQL reserves names starting with "
                f"{RESERVED_ROLE_PREFIX} for its own roles",
                "choose a prefix that does not start with pg",
            )
    seen = set(derived_names) | set(role_keys())  # keys name the stack's outputs too
    for role in read_only:
        members = {member_name(role.name, slot) for slot in SLOTS}
        if role.name in seen or members & seen:
            raise reader.error(
                "readOnlyRoles",
                f"names the role {role.name!r} twice or reuses a role of this stack (or one of its logins)",
                "give every read-only role a name of its own",
            )
        for member in sorted(members):
            if problem := identifier_problem(member):
                raise reader.error(
                    "readOnlyRoles", f"makes the login {member!r}, and {problem}", "choose a shorter name"
                )
        if reserved := sorted(name for name in (role.name, *members) if reserved_role_name(name)):
            raise reader.error(
                "readOnlyRoles",
                f"names the role {role.name!r}, which makes {', '.join(map(repr, reserved))}: PostgreSQL reserves "
                f"names starting with {RESERVED_ROLE_PREFIX} for its own roles (pg_monitor, pg_read_all_data)",
                "give the read-only role a name of its own that does not start with pg",
            )
        seen |= {role.name, *members}


@dataclass(frozen=True)
class _Reader:
    stack: str
    raw: Mapping[str, str]
    project_dir: Path = PROJECT_FILE.parent

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"Pulumi.{self.stack}.yaml: {NAMESPACE}:{key} {problem}: {fix}.")

    def optional(self, key: str) -> str:
        """The stack's value, else Pulumi.yaml's default."""
        value = self.raw.get(key)
        return declared_defaults()[key] if value is None or value == "" else value

    def required(self, key: str, secret: bool = False) -> str:
        value = self.raw.get(key)
        if value is None or value == "":
            # A secret is read from standard input: never put one on a command line.
            how = "--secret " if secret else ""
            value = "" if secret else " <value>"
            setter = f"pulumi config set {how}{NAMESPACE}:{key}{value} --stack {self.stack}"
            raise self.error(key, "is missing", f"set it with `{setter}`")
        return value

    def identifier(self, key: str) -> str:
        value = self.required(key)
        if problem := identifier_problem(value):
            raise self.error(key, f"is {value!r}, and {problem}", "choose another name")
        return value

    def integer(self, key: str, minimum: int, maximum: int | None = None) -> int:
        text = self.optional(key)
        try:
            value = int(text)
        except ValueError:
            raise self.error(key, f"is {text!r}, not a whole number", "give a number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum is not None else "")
            raise self.error(key, f"is {value}", f"give a number {bounds}")
        return value

    def boolean(self, key: str) -> bool:
        text = self.optional(key).lower()
        if text not in ("true", "false"):
            raise self.error(key, f"is {text!r}", "write true or false")
        return text == "true"

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.optional(key)
        if value not in choices:
            raise self.error(key, f"is {value!r}, an unknown value", f"use one of {', '.join(choices)}")
        return value

    def tls_files(self, sslmode: str) -> TlsFiles:
        files = TlsFiles(self.pem_file("sslRootCert"), self.pem_file("sslCert"), self.pem_file("sslKey"))
        if sslmode in ("verify-ca", "verify-full") and not files.root_cert:
            raise self.error(
                "sslRootCert",
                f"is not set, and sslmode {sslmode} checks the server's certificate against it",
                "set it to the CA bundle of your server (RDS: global-bundle.pem; Cloud SQL: the instance's "
                "server-ca.pem)",
            )
        if bool(files.cert) != bool(files.key):
            missing = "sslKey" if files.cert else "sslCert"
            raise self.error(missing, "is not set, but its partner is", "set sslCert and sslKey together, or neither")
        if files.key and Path(files.key).stat().st_mode & 0o077:
            fix = f"run `chmod 600 {files.key}`: libpq refuses such a key"
            raise self.error("sslKey", f"({files.key}) can be read by others", fix)
        return files

    def pem_file(self, key: str) -> str:
        """The absolute path of a PEM file the stack names, checked to exist; "" when not set."""
        value = self.optional(key)
        if not value:
            return ""
        path = Path(value) if Path(value).is_absolute() else self.project_dir / value
        if not path.is_file():
            raise self.error(key, f"names {path}, which is not a file", "put the PEM file there or correct the path")
        return str(path)

    def structured(self, key: str) -> object:
        text = self.optional(key)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise self.error(key, "is not valid structured config", "write it as a YAML map or list") from None

    def per_role_integers(self, key: str, role_keys: tuple[str, ...], minimum: int) -> dict[str, int]:
        value = self.structured(key)
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

    def days(self, key: str, text: object, what: str, maximum: int) -> int:
        """A whole number of days written `<n>d` (30d), from 1 to `maximum`."""
        match = re.fullmatch(r"([0-9]+)d", str(text).strip())
        if match is None:
            raise self.error(key, f"gives {what} {text!r}, not a number of days", "write it as <n>d, e.g. 30d")
        days = int(match.group(1))
        if not 1 <= days <= maximum:
            raise self.error(key, f"gives {what} {days} days", f"give 1d to {maximum}d")
        return days

    def log_lifecycle(self, retention_key: str, premake_key: str) -> LogLifecycle:
        premake = self.days(premake_key, self.optional(premake_key), "the premake window", MAX_PREMAKE_DAYS)
        value = self.structured(retention_key)
        if not isinstance(value, dict):
            raise self.error(
                retention_key, "is not a map", f"write a map from log table ({', '.join(LOG_TABLES)}) to <n>d"
            )
        defaults = json.loads(declared_defaults()[retention_key])
        retention: dict[str, int] = {}
        for table, text in {**defaults, **value}.items():
            if table not in LOG_TABLES:
                raise self.error(retention_key, f"names {table!r}, not a log table", f"use {', '.join(LOG_TABLES)}")
            days = self.days(retention_key, text, table, MAX_RETENTION_DAYS)
            if days < premake:
                # Retention never reaches a partition ahead, but one shorter than the window made ahead
                # is a typo or a misunderstanding (30 for 3, or the two keys swapped): asked again.
                raise self.error(
                    retention_key,
                    f"keeps {table} {days} days, less than the {premake}-day premake window ({premake_key})",
                    f"keep it at least {premake}d, or shorten {premake_key}",
                )
            retention[table] = days
        return LogLifecycle(retention_days=retention, premake_days=premake)

    def legacy_roles(self, key: str, names: RoleNames, admin: str) -> dict[str, str]:
        value = self.structured(key)
        if not isinstance(value, dict):
            raise self.error(key, "is not a map", f"write a map from role name to {'|'.join(LEGACY_ROLE_ACTIONS)}")
        for role, action in value.items():
            if action not in LEGACY_ROLE_ACTIONS:
                raise self.error(key, f"gives {role} {action!r}", f"use one of {', '.join(LEGACY_ROLE_ACTIONS)}")
            if role == admin or role.startswith(f"{names.prefix}_"):
                raise self.error(
                    key, f"names {role!r}, the admin or a role of this stack", "name only roles outside the model"
                )
        return dict(value)

    def contract_through(self, key: str, copy_location: Path | None) -> str | None:
        """A revision of the main tree (the copy the program runs, if any) or head; None when unset."""
        value = self.optional(key)
        if not value:
            return None
        location = copy_location or default_location(DatabaseKey.MAIN.value)
        try:
            revisions = [file.revision for file in revision_files(location)]
        except PhaseError as error:  # a revision's own mistake, named by its file
            raise ConfigError(str(error)) from None
        if not contract_through_known(value, revisions):
            problem = f"is {value!r}, which names no revision of the main tree in {location}"
            raise self.error(key, problem, contract_through_fix(revisions))
        return value

    def read_only_roles(self, key: str) -> tuple[ReadOnlyRole, ...]:
        value = self.structured(key)
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
    """The stack's `headhunter-db:*` values as flat strings, read from the engine (inside the program)."""
    from pulumi.runtime import config as runtime_config

    # The SDK holds config in its context or, under some runtimes, only in PULUMI_CONFIG: read both.
    full_keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw: dict[str, str] = {}
    for full_key in sorted(full_keys):
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE:
            raw[key] = str(runtime_config.get_config(full_key))
    if raw.get("adminPassword"):
        # Validation needs only to know how it is stored; the value stays inside a secret Output.
        is_secret = runtime_config.is_config_secret(f"{NAMESPACE}:adminPassword")
        raw["adminPassword"] = SECRET_IS_SET if is_secret else SECRET_IN_PLAIN_TEXT
    return raw


def admin_password_from_pulumi(settings: Settings) -> Output[str]:
    """The admin password as a secret Output (inside the program): it never becomes a plain string here."""
    import pulumi

    if settings.server.embedded:
        return pulumi.Output.secret(embedded_server_password(settings))
    return pulumi.Config(NAMESPACE).require_secret("adminPassword")
