"""Which tests judge a mutant of each module, and the test command cosmic-ray runs for one mutant.

Each module is tested in stages, fastest first: a mutant that the quick stage kills costs seconds,
and only those it lets through pay for the stages that deploy through the real engine. Run as
`python -m tools.mutate.stages MODULE`: exit 0 means every stage passed (the mutant survived).
"""

from __future__ import annotations

import subprocess
import sys

from ops.paths import REPO_ROOT

UNIT_GRAPH = "tests/unit/test_resource_graph.py"
UNIT_SETTINGS = "tests/unit/test_settings.py"
DEV_STACK = "tests/integration/test_dev_stack.py::test_up_verify_preview_refresh_outputs_and_destroy"
MIGRATION_TESTS = (
    "tests/migrations/test_placement_guard.py",
    "tests/migrations/test_safe_runs.py",
    "tests/migrations/test_trees.py",
)


def focused(first: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The migration tests with the file aimed at a module first: most mutants die there in seconds."""
    return ((first,), tuple(test for test in MIGRATION_TESTS if test != first))


# Module -> its test stages (each a pytest selection), in the order they run.
STAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    # Every key's validation has its unit test; the deploys of test_bad_input add a minute a mutant,
    # and each of the 9 mutants the unit tests missed in a first run, they missed too.
    "infra/settings.py": ((UNIT_SETTINGS, UNIT_GRAPH),),
    "infra/identifiers.py": ((UNIT_SETTINGS,),),
    "infra/embedded_server.py": ((UNIT_SETTINGS,), ("tests/toolchain/test_localpg.py", DEV_STACK)),
    "infra/acl_chain.py": ((UNIT_GRAPH,), ("tests/integration/test_provider_engine.py", DEV_STACK)),
    "infra/database.py": (
        (UNIT_GRAPH,),
        (DEV_STACK, "tests/integration/test_managed_server.py", "tests/integration/test_dev_stack.py"),
    ),
    "infra/runtime_role.py": ((UNIT_GRAPH,), (DEV_STACK,)),
    "infra/program.py": ((UNIT_GRAPH, UNIT_SETTINGS), (DEV_STACK, "tests/integration/test_tls.py")),
    "infra/scram.py": (("tests/unit/test_scram.py", "tests/unit/test_generated_password.py"),),
    "infra/generated_password.py": (
        ("tests/unit/test_scram.py", "tests/unit/test_generated_password.py", UNIT_GRAPH),
        (DEV_STACK,),
    ),
    "infra/migration_step.py": (
        ("tests/unit/test_program_imports.py", "tests/integration/test_migration_step_engine.py"),
        ("tests/integration/test_tls.py",),
    ),
    "migrations/shared/concurrent_index.py": focused("tests/migrations/test_safe_runs.py"),
    "migrations/shared/connect.py": focused("tests/migrations/test_safe_runs.py"),
    "migrations/shared/environment.py": (MIGRATION_TESTS,),
    "migrations/shared/heads.py": (("tests/unit/test_heads.py",), ("tests/integration/test_migration_step_engine.py",)),
    "migrations/shared/placement_guard.py": focused("tests/migrations/test_placement_guard.py"),
    "migrations/shared/run_inputs.py": (MIGRATION_TESTS, ("tests/integration/test_migration_step_engine.py",)),
    "migrations/shared/run_lock.py": focused("tests/migrations/test_safe_runs.py"),
    "migrations/shared/tree.py": focused("tests/migrations/test_trees.py"),
}
# Mutations that cannot change behaviour here, left out by operator: `|` appears in this code only
# in type unions (annotations are not evaluated, `from __future__ import annotations`).
EXCLUDED_OPERATORS = ("core/ReplaceBinaryOperator_BitOr_.*",)

FROZEN = "nothing assigns to these objects after they are made (mypy, in scripts/test, refuses it for frozen ones)"
ENUM_IDENTITY = "both sides are members of one enum, and an enum member is a singleton: `==` and `is` agree"
SINGLE_TARGET = "the assignment has exactly one target (checked just before): [0] and [-1] are the same"
LOOP_ENDS_BY_RAISE = "the last attempt raises at `attempt == attempts` (1 to 12, checked): the range never runs out"
# Surviving mutants judged equivalent: (module, the mutated line as cosmic-ray writes it) -> why no
# user can observe the change. scripts/mutate marks a survivor equivalent only when it is listed here.
EQUIVALENT: dict[tuple[str, str], str] = {
    ("infra/acl_chain.py", "@dataclass(frozen=False)"): FROZEN,
    ("infra/database.py", "@dataclass(frozen=False)"): FROZEN,
    (
        "infra/database.py",
        "after_database = pulumi.ResourceOptions(parent=self, depends_on=[database], delete_before_replace=False)",
    ): (
        "the admin's membership is replaced only when the admin or the owner role is renamed: the old and the new "
        "membership then differ, and neither order takes one back"
    ),
    ("infra/runtime_role.py", "@dataclass(frozen=False)"): FROZEN,
    ("infra/program.py", "@dataclass(frozen=False)"): FROZEN,
    ("infra/migration_step.py", "@dataclass(frozen=False)"): FROZEN,
    ("migrations/shared/placement_guard.py", "@dataclass(frozen=False)"): FROZEN,
    ("migrations/shared/concurrent_index.py", "@dataclass(frozen=False)"): FROZEN,
    ("migrations/shared/environment.py", "RUN_LOCK_WAIT_S = 601.0"): "a second more or less of a ten-minute wait",
    ("migrations/shared/environment.py", "RUN_LOCK_WAIT_S = 599.0"): "a second more or less of a ten-minute wait",
    ("migrations/shared/environment.py", "if not connection.in_transaction():"): (
        "Alembic's transaction context has ended the transaction by the time the cleanup runs, on success "
        "and on failure, so the branch is defensive: a rollback() with no transaction open does nothing"
    ),
    (
        "migrations/shared/placement_guard.py",
        "if other.key is not tree.key and _has_table(connection, other.version_table):",
    ): "both trees are the objects of the one TREES table, whose keys are interned literals: `is not` and `!=` agree",
    ("migrations/shared/connect.py", "for attempt in range(1, attempts << 1):"): LOOP_ENDS_BY_RAISE,
    ("migrations/shared/connect.py", "for attempt in range(1, attempts + 2):"): LOOP_ENDS_BY_RAISE,
    ("migrations/shared/connect.py", "if attempt >= attempts or not is_transient(error):"): (
        "the counter never passes `attempts`, so `>=` and `==` agree"
    ),
    ("migrations/shared/connect.py", "if attempt is attempts or not is_transient(error):"): (
        "both are ints of at most 12 (checked), which CPython keeps one object each of: `is` and `==` agree"
    ),
    ("migrations/shared/connect.py", "return True"): (
        "with the psycopg driver every OperationalError of a connect wraps a psycopg error: the branch never runs"
    ),
    (
        "migrations/shared/heads.py",
        "elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[ -1], ast.Name):",
    ): SINGLE_TARGET,
    ("migrations/shared/heads.py", "target, value = node.targets[ -1].id, node.value"): SINGLE_TARGET,
    (
        "migrations/shared/heads.py",
        "elif isinstance(node, ast.Assign) and len(node.targets) <= 1 and isinstance(node.targets[0], ast.Name):",
    ): "an assignment has at least one target, so `<= 1` holds exactly when `== 1` does",
    ("migrations/shared/heads.py", "heads = sorted(revisions ^ revised)"): (
        "every revised id is a revision of the tree (Alembic refuses a tree otherwise), so `^` and `-` agree"
    ),
    ("migrations/shared/heads.py", "return heads[ -1]"): "exactly one head by then (checked): [0] and [-1] agree",
    (
        "migrations/shared/heads.py",
        "elif isinstance(node, ast.Assign) and len(node.targets) >= 1 and isinstance(node.targets[0], ast.Name):",
    ): "only a chained assignment (`a = b = 1`) has two targets, and no revision file assigns its ids that way",
    ("migrations/shared/heads.py", "break"): (
        "`revision` is read first: a file without it is refused whatever the loop reads after it"
    ),
    ("migrations/shared/heads.py", "found[name] = ast.literal_eval(match[ 0].strip())"): (
        "the whole line is no literal, so the file is parsed whole and the same value found (slower, same answer)"
    ),
    ("migrations/shared/run_lock.py", "if time.monotonic() > deadline:"): (
        "`>` and `>=` differ only at the instant the clock reads the deadline exactly"
    ),
    ("migrations/shared/run_lock.py", "POLL_INTERVAL_S = 1.5"): (
        "only how soon a waiting run notices a freed lock; a test that timed it would be a timed test"
    ),
    (
        "infra/migration_step.py",
        'return DiffResult(changes=bool(changed) or "tables" not in olds, replaces=[], delete_before_replace=True)',
    ): "the step never asks for a replacement (replaces is always empty), so the order of one is moot",
    ("infra/generated_password.py", "return CreateResult(id_=secrets.token_hex( 9), outs=outputs)"): (
        "the resource id is opaque: any unique string serves"
    ),
    ("infra/generated_password.py", "return CreateResult(id_=secrets.token_hex( 7), outs=outputs)"): (
        "the resource id is opaque: any unique string serves"
    ),
    (
        "infra/generated_password.py",
        'return DiffResult(changes=changed, replaces=["rotation"] if changed else [], delete_before_replace=True)',
    ): "deleting a generated password touches nothing on the server, so the order of a replacement is moot",
    (
        "infra/runtime_role.py",
        "granted = {rule.kind: sorted(rule.privileges) for rule in rules if rule.database is model.database}",
    ): ENUM_IDENTITY,
    (
        "infra/program.py",
        "elsewhere=tuple(database for key, database in databases.items() if key is not role.database),",
    ): ENUM_IDENTITY,
    ("infra/settings.py", "@dataclass(frozen=False)"): FROZEN,
    ("infra/settings.py", 'if value is None or value is "":'): (
        'CPython keeps a single empty string, so `is ""` and `== ""` agree'
    ),
    ("infra/settings.py", 'if raw.get("adminPassword") is SECRET_IN_PLAIN_TEXT:'): (
        "the marker stored is that very object, so `is` and `==` agree"
    ),
    ("infra/settings.py", 'return text >= "true"'): (
        'text is "true" or "false" by then, and only "true" sorts >= "true"'
    ),
    ("infra/settings.py", "if bool(files.cert) is not bool(files.key):"): "True and False are singletons",
    ("infra/settings.py", 'if value is None or value <= "":'): 'for a string, `<= ""` holds for "" alone',
    ("infra/settings.py", 'return declared_defaults()[key] if value is None or value <= "" else value'): (
        'for a string, `<= ""` holds for "" alone'
    ),
    ("infra/settings.py", 'return declared_defaults()[key] if value is None or value is "" else value'): (
        'CPython keeps a single empty string, so `is ""` and `== ""` agree'
    ),
    ("infra/settings.py", ""): "only `@cache` of declared_defaults can go unnoticed: Pulumi.yaml is then read per key",
    ("infra/settings.py", "if not TYPE_CHECKING:"): (
        "that import serves annotations only (not evaluated here); importing it at run time changes nothing"
    ),
    ("infra/program.py", "connect_timeout= 16,"): "a second more or less before a dead server is reported",
    ("infra/program.py", "connect_timeout= 14,"): "a second more or less before a dead server is reported",
}


def run_stages(module: str) -> int:
    """Run the module's stages in order; the first that fails kills the mutant (exit 1).

    The fault log is off: a mutant's run must not overwrite the suite's reports/faults.json.
    """
    for stage in STAGES[module]:
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:fault_log", *stage]
        if subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_stages(sys.argv[1]))
