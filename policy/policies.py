"""The pack's policies: each rule of policy/rules.py, mandatory, with what the engine shows it.

A rule on one resource's inputs (a grant, a membership) runs as a resource validation, before the
engine plans that resource; a rule that needs the whole stack (a revoke that must exist, a resource
and its parent, the stack's config) runs as a stack validation, once the program has registered
everything. `pulumi preview --policy-pack policy` fails on either with the rule's message, and a
preview deploys nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from functools import cache

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import rules, secret_config_keys
from policy.observed import Observed, from_stack, from_validation
from policy.stack_facts import FactsError, StackFacts, stack_facts

ResourceRule = Callable[[Observed, StackFacts], list[str]]
StackRule = Callable[[Sequence[Observed], StackFacts], list[rules.Violation]]


def current_facts() -> StackFacts:
    """The facts of the stack under preview: its name and config as the engine handed them to this process."""
    return _facts(
        os.environ.get("PULUMI_STACK", ""), os.environ.get("PULUMI_CONFIG", "{}"), secret_config_keys.secret_keys()
    )


@cache
def _facts(stack: str, config: str, secret_keys: frozenset[str] | None) -> StackFacts:
    return stack_facts(stack, json.loads(config), secret_keys)


def resource_policy(name: str, description: str, rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        try:
            facts = current_facts()
        except FactsError as error:
            report(str(error), None)
            return
        for message in rule(from_validation(args), facts):
            report(message, None)

    return ResourceValidationPolicy(name, description, validate, EnforcementLevel.MANDATORY)


def stack_policy(name: str, description: str, rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        try:
            facts = current_facts()
        except FactsError as error:
            report(str(error), None)
            return
        for violation in rule(from_stack(args.resources), facts):
            report(violation.message, violation.urn)

    return StackValidationPolicy(name, description, validate, EnforcementLevel.MANDATORY)


POLICIES = [
    resource_policy(
        "no-cross-database-grant",
        "No role of one database is given anything on the other (model/privileges.py).",
        rules.no_cross_database_grant,
    ),
    resource_policy(
        "runtime-privileges-as-modelled",
        "A runtime role gets only what the model grants it: the logs writer INSERT and nothing else on log tables.",
        rules.runtime_privileges_as_modelled,
    ),
    stack_policy(
        "nothing-granted-to-public",
        "Nothing is granted to PUBLIC, and what PostgreSQL gives it on a new database is taken back.",
        rules.nothing_granted_to_public,
    ),
    stack_policy(
        "production-databases-protected-and-retained",
        "A production stack's databases and owner roles are protected and retained on delete.",
        rules.production_databases_kept,
    ),
    stack_policy(
        "no-plain-text-password",
        "No password enters as plain-text config: every config key that holds one is encrypted.",
        rules.no_plain_text_password,
    ),
]
