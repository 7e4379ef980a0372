"""The model's promises as rules over what the engine shows a policy: one function per rule.

Each returns its violations, and each message names the resource, what is wrong and the fix. The
roles and databases come from the stack's config read through the model (policy/stack_facts.py),
so a role added to model/privileges.py is checked with no change here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from model.names import PUBLIC, SCHEMA, RoleKind
from model.privileges import RUNTIME_ROLES, Grantee, ObjectKind, expected
from policy.holdings import DATABASE, GRANT, ROLE, holdings
from policy.observed import Observed
from policy.stack_facts import StackFacts

RUNTIME_KINDS = (RoleKind.RUNTIME, RoleKind.LOGIN, RoleKind.READERS)
# A config key or property named for a credential, by how its name ends: adminPassword, db_passwd, PGPASSPHRASE,
# clientSecret, apiToken, aws:secretKey, api_key, privateKey, credentials. Not passwordRotations (numbers), and
# not sslKey or sslCert: those name the file a client key is in, and the file is kept out of the stack file.
PASSWORD_NAME = re.compile(
    r"(password|passwd|pwd|passphrase|secret|token|credentials?|(api|private|secret|access|signing|encryption|"
    r"master|auth)[_-]?key)$",
    re.IGNORECASE,
)
# A value that carries a password whatever its key's name: a URL with one (postgresql://user:password@host/db).
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@", re.IGNORECASE)


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None
    """The resource in violation; None for the stack as a whole (its config)."""


def no_cross_database_grant(resource: Observed, facts: StackFacts) -> list[str]:
    """A role of one database (runtime, login, readers, owner, migrator) is given nothing on the other."""
    found = []
    for holding in holdings(resource, facts):
        role = facts.role(holding.grantee)
        if role is None or role.database is None or holding.database in (None, role.database):
            continue
        found.append(
            f"{resource.label} gives {holding.what} to {role.name}, a role of the {role.database} database "
            f"{facts.databases[role.database]} ({describe(role)}); the model gives a role of one database nothing "
            f"on the other. Fix: remove it, or give it to the {holding.database} database's role that needs it "
            "(model/privileges.py says which role belongs where)."
        )
    return found


def runtime_privileges_as_modelled(resource: Observed, facts: StackFacts) -> list[str]:
    """A runtime role, its logins and a readers group hold in their database only what the model grants."""
    found = []
    for holding in holdings(resource, facts):
        role = facts.role(holding.grantee)
        if role is None or role.kind not in RUNTIME_KINDS or holding.database not in (None, role.database):
            continue  # another database's: no-cross-database-grant says so
        if holding.member_of is not None:
            allowed = facts.memberships(role)
            if holding.member_of in allowed:
                continue
            modelled = f"a member of {', '.join(sorted(allowed))} only" if allowed else "a member of no role"
            found.append(
                f"{resource.label} gives {role.name} ({describe(role)}) {holding.what}; the model makes it "
                f"{modelled}. Fix: remove the membership."
            )
            continue
        assert holding.database is not None  # only a membership may name a role outside the model
        own = facts.own_privileges(role, holding.database, holding.kind) if holding.kind else frozenset()
        extra = holding.privileges - own if holding.privileges else frozenset({"ownership"})
        if extra:
            kept = ", ".join(sorted(own)) or "nothing of its own"
            fix = f"grant {kept} only" if own else "remove it (what the role needs comes through its membership)"
            found.append(
                f"{resource.label} gives {role.name} ({describe(role)}) {holding.what}; the model gives it "
                f"{kept} there, so {', '.join(sorted(extra))} is too much. Fix: {fix}; what a role gets is "
                "changed in model/privileges.py, which the program and scripts/verify both read."
            )
    return found


def nothing_granted_to_public(resources: Sequence[Observed], facts: StackFacts) -> list[Violation]:
    """PUBLIC is given nothing, and what PostgreSQL gives it on a new database is taken back."""
    found = [
        Violation(
            f"{resource.label} gives PUBLIC {holding.what}: every role of the server, the other database's "
            "included, would hold it, and the model gives PUBLIC nothing. Fix: remove it, and grant what is "
            "needed to the role that needs it.",
            resource.urn,
        )
        for resource in resources
        for holding in holdings(resource, facts)
        if facts.is_public(holding.grantee)
    ]
    # PostgreSQL gives PUBLIC CONNECT and TEMPORARY on every new database, and USAGE on its public schema.
    for key, name in facts.databases.items():
        for kind, where in ((ObjectKind.DATABASE, f"the database {name}"), (ObjectKind.SCHEMA, f"{SCHEMA} of {name}")):
            kept = sorted(expected(facts.model, PUBLIC, key, kind))
            if not any(_public_grant(resource, facts, name, kind, kept) for resource in resources):
                found.append(
                    Violation(
                        f"Nothing in the stack takes back what PostgreSQL gives PUBLIC on {where}: PUBLIC keeps it, "
                        f"where the model leaves it {', '.join(kept) or 'nothing'}. Fix: declare a Grant to PUBLIC "
                        f"with privileges {kept} on it, as OwnedDatabase does (infra/database.py)."
                    )
                )
    return found


def _public_grant(resource: Observed, facts: StackFacts, database: str, kind: ObjectKind, kept: list[str]) -> bool:
    """Whether `resource` leaves PUBLIC exactly `kept` on the database or its schema (a Grant revokes the rest)."""
    object_type = {ObjectKind.DATABASE: "database", ObjectKind.SCHEMA: "schema"}[kind]
    privileges = resource.texts("privileges")
    return (
        resource.type == GRANT
        and facts.is_public(resource.text("role"))
        and (resource.text("database"), resource.text("objectType")) == (database, object_type)
        and (kind is not ObjectKind.SCHEMA or resource.text("schema") == SCHEMA)
        and privileges is not None
        and sorted(privilege.upper() for privilege in privileges) == kept
    )


def production_databases_kept(resources: Sequence[Observed], facts: StackFacts) -> list[Violation]:
    """A production stack's databases and their owner roles are protected and retained on delete.

    The engine shows a policy a resource's protect option but not retain_on_delete (its analyzer
    protocol has no such field), so OwnedDatabase registers, as its outputs, the options it gives its
    database and owner role (infra/database.py), and the rule reads those from the resource's parent.
    """
    if not facts.production:
        return []
    kept = {(DATABASE, name): "the database" for name in facts.databases.values()}
    kept |= {(ROLE, name): "the owner role" for name in facts.owners().values()}
    found = []
    for resource in resources:
        what = kept.get((resource.type, resource.text("name") or ""))
        if what is None:
            continue
        parent = resource.parent.props if resource.parent is not None else {}
        given = {"protect": resource.protect, "retain_on_delete": parent.get("retain_on_delete") is True}
        missing = [option for option, is_given in given.items() if not is_given]
        if missing:
            when = "a destroy, a rename in config" if "protect" in missing else "once unprotected, a destroy"
            found.append(
                Violation(
                    f"{resource.label}: {what} {resource.text('name')} of the production stack {facts.stack} is "
                    f"declared without {' and '.join(missing)}, so {when} or its removal from the program would "
                    "drop it, and with it the database's tables and rows. Fix: give it ResourceOptions(protect=True, "
                    "retain_on_delete=True), as OwnedDatabase does while the stack allows no database deletion "
                    f"(infra/database.py; {facts.stack_file} keeps production: true and no allowDatabaseDeletion).",
                    resource.urn,
                )
            )
    return found


def no_plain_text_password(resources: Sequence[Observed], facts: StackFacts) -> list[Violation]:
    """No config key holds a password in plain text, and no resource is given one from such a key."""
    if facts.secret_keys is None:
        return [
            Violation(
                "The engine did not tell the policy pack which config keys the stack keeps encrypted, so no "
                'password can be checked. Fix: run the pinned CLI (`eval "$(scripts/env)"`, or Pulumi v3.259.0) '
                "with the pulumi-policy of requirements.txt."
            )
        ]
    in_plain_text = {
        path: value
        for key, text in sorted(facts.config.items())
        if key not in facts.secret_keys
        for path, value in _leaves(key, text)
    }
    found = [
        Violation(
            f"{facts.stack_file}: {path} holds a password in plain text, readable by anyone who reads the stack "
            f"file. Fix: set it again, encrypted, with `{_set_secret(path, facts.stack)}` (it reads the value "
            "from standard input)."
        )
        for path, value in in_plain_text.items()
        if value and (PASSWORD_NAME.search(re.split(r"[:.\[]", path)[-1]) or URL_WITH_PASSWORD.search(value))
    ]
    sources = {value: path for path, value in in_plain_text.items() if value}
    for resource in resources:
        for prop, value in _password_properties(resource.props):
            # A resource that carries the config itself (a dynamic provider's default provider) adds nothing.
            if value in sources and prop != sources[value]:
                found.append(
                    Violation(
                        f"{resource.label}: its {prop} is the value of {sources[value]}, which {facts.stack_file} "
                        f"holds in plain text. Fix: set it with `{_set_secret(sources[value], facts.stack)}` (from "
                        "standard input), or let the stack generate it (infra/generated_password.py).",
                        resource.urn,
                    )
                )
    return found


def _set_secret(path: str, stack: str) -> str:
    """The command that stores the config value at `path` encrypted."""
    nested = path != re.split(r"[.\[]", path)[0]
    return f"pulumi config set {'--path ' if nested else ''}--secret '{path}' --stack {stack}"


def _leaves(path: str, text: str) -> Iterator[tuple[str, str]]:
    """A config value's strings by path: the value itself, or each leaf of a structured one (`ns:key.sub`)."""
    value: object = text
    if text[:1] in ("{", "["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
    yield from _walk(path, value)


def _walk(path: str, value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(f"{path}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(f"{path}[{index}]", item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield path, str(value)


def _password_properties(props: Mapping[str, object], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every known string property named like a password, nested ones too (a step's login.password)."""
    for key, value in props.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _password_properties(value, f"{path}.")
        elif isinstance(value, str) and value and PASSWORD_NAME.search(key):
            yield path, value


def describe(role: Grantee) -> str:
    """The role's part in the model, for a message."""
    purposes = {spec.key: spec.purpose for spec in RUNTIME_ROLES}
    if role.kind is RoleKind.RUNTIME:
        return f"the runtime role for {purposes[role.key]}" if role.key in purposes else "a read-only role"
    if role.kind is RoleKind.LOGIN:
        return f"a login of the runtime role {role.runtime_role}"
    parts = {RoleKind.OWNER: "the owner role", RoleKind.MIGRATOR: "the migrator", RoleKind.READERS: "the readers group"}
    return parts.get(role.kind, "a role") if role.kind is not None else "PUBLIC"
