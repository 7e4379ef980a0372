"""What the rules know of the stack: its names and kind from its own config, read through the model.

A policy pack sees the stack's config: the engine hands the pack's language host the stack's
decrypted config and pulumi-policy loads it before every check (PULUMI_CONFIG, as for the program;
Pulumi.yaml's defaults applied). So the rules learn the role prefix, the database names, the
read-only roles and whether the stack is a production one from the same keys the program reads,
and name every role of the model from them (model/privileges.py) rather than from a list of their
own. Which keys the stack keeps encrypted is not in that config: see policy/secret_config_keys.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from infra.settings import NAMESPACE, declared_defaults
from model.names import PUBLIC, DatabaseKey, RoleNames
from model.privileges import (
    Grantee,
    ObjectKind,
    Rule,
    RuntimeRoleSpec,
    Via,
    expected_memberships,
    grantees,
    read_only_role,
    rules,
)

DIRECT = (Via.GRANT, Via.DEFAULT_PRIVILEGES, Via.OWNERSHIP)
"""How a role holds a privilege of its own: what a Grant, default privileges or ownership give it directly."""


class FactsError(ValueError):
    """The stack config lacks what the rules name the stack's roles and databases from."""


@dataclass(frozen=True)
class StackFacts:
    stack: str
    names: RoleNames
    databases: Mapping[DatabaseKey, str]
    """The stack's two databases by key: their names on the server."""
    read_only: tuple[RuntimeRoleSpec, ...]
    production: bool
    """`headhunter-db:production`: the stack's databases must be protected and retained."""
    config: Mapping[str, str]
    """Every config value of the stack, in any namespace, decrypted, by its full key (`ns:key`)."""
    secret_keys: frozenset[str] | None = None
    """The config keys the stack keeps encrypted, as the engine told the pack; None when it did not."""

    @property
    def stack_file(self) -> str:
        return f"Pulumi.{self.stack}.yaml"

    @property
    def model(self) -> tuple[Rule, ...]:
        return rules(self.read_only)

    def database_key(self, name: object) -> DatabaseKey | None:
        """Which of the stack's databases `name` is; None for another database (or an unknown name)."""
        return next((key for key, database in self.databases.items() if database == name), None)

    def role(self, name: object) -> Grantee | None:
        """The role of the model that the server knows as `name` (PUBLIC included); None for any other role."""
        found = [grantee for grantee in grantees(self.names, self.read_only) if grantee.name == name]
        return found[0] if found else None

    def own_privileges(self, role: Grantee, database: DatabaseKey, kind: ObjectKind) -> frozenset[str]:
        """What `role` holds of its own on `kind` objects of `database`: the model's grants, defaults, ownership."""
        held = [
            rule.privileges
            for rule in self.model
            if (rule.grantee, rule.database, rule.kind) == (role.key, database, kind) and rule.via in DIRECT
        ]
        return held[0] if held else frozenset()

    def memberships(self, role: Grantee) -> frozenset[str]:
        """The roles the model makes `role` a member of (by name)."""
        return expected_memberships(self.names, self.read_only).get(role.name, frozenset())

    def owners(self) -> dict[DatabaseKey, str]:
        return {key: self.names.owner(key) for key in DatabaseKey}

    def is_public(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() == PUBLIC


def stack_facts(stack: str, config: Mapping[str, str], secret_keys: frozenset[str] | None = None) -> StackFacts:
    """The facts from the stack's config as the engine hands it over (full keys, string values)."""

    def value(key: str) -> str:
        given = config.get(f"{NAMESPACE}:{key}")
        return str(given) if given not in (None, "") else declared_defaults().get(key, "")

    def required(key: str) -> str:
        if not (text := value(key)):
            raise FactsError(
                f"Pulumi.{stack}.yaml: {NAMESPACE}:{key} is not set, and the rules name the stack's roles and "
                f"databases from it: set it as the program requires (Pulumi.yaml describes it)."
            )
        return text

    return StackFacts(
        stack=stack,
        names=RoleNames(required("rolePrefix")),
        databases={key: required(f"{key}Database") for key in DatabaseKey},
        read_only=_read_only_roles(stack, value("readOnlyRoles") or "[]"),
        production=value("production").lower() == "true",
        config={key: str(text) for key, text in config.items()},
        secret_keys=secret_keys,
    )


def _read_only_roles(stack: str, text: str) -> tuple[RuntimeRoleSpec, ...]:
    problem = FactsError(
        f"Pulumi.{stack}.yaml: {NAMESPACE}:readOnlyRoles is not a list of {{name, database}} with database "
        f"{' or '.join(DatabaseKey)}: correct it as the program requires."
    )
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        raise problem from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise problem
    databases = {key.value: key for key in DatabaseKey}
    if any(entry.get("database") not in databases or not entry.get("name") for entry in entries):
        raise problem
    return tuple(read_only_role(str(entry["name"]), databases[entry["database"]]) for entry in entries)
