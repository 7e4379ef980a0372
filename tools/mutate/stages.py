"""Which tests judge a mutant of each product module, and the command that runs them.

Each module is tested in stages, cheapest first: a mutant that the quick stage kills costs seconds,
and only those it lets through pay for the stages that start the embedded server or deploy through
the real engine. `python -m tools.mutate.stages MODULE` runs one module's stages on this checkout
as it is (exit 0: every stage passed), which is how to check a stage before a mutation run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ops.errors import ExitCode
from ops.paths import REPO_ROOT

# The folders whose every module has stages (tests/unit/test_mutation.py holds that).
PRODUCT_FOLDERS = ("infra", "model", "migrations", "ops", "policy")

UNIT = "tests/unit"
UNIT_GRAPH = "tests/unit/test_resource_graph.py"
UNIT_SETTINGS = "tests/unit/test_settings.py"
UNIT_POLICY = "tests/unit/test_policy_rules.py"
UNIT_ADOPTION = "tests/unit/test_adoption_logic.py"
UNIT_DEPLOYED = "tests/unit/test_deployed_stack.py"
UNIT_ENGINE_ERRORS = "tests/unit/test_engine_errors.py"
UNIT_IMPORTS = "tests/unit/test_program_imports.py"
UNIT_EXPECTATIONS = "tests/unit/test_hand_written_expectations.py"
# What the model promises for read-only roles, verification's expectations and the lifecycle's helpers.
UNIT_MODEL_RULES = "tests/unit/test_privilege_rules.py"
DEV_STACK = "tests/integration/test_dev_stack.py::test_up_verify_preview_refresh_outputs_and_destroy"
SCRIPTS = "tests/toolchain/test_scripts.py"
LOCALPG = "tests/toolchain/test_localpg.py"
TOOLCHAIN = "tests/toolchain/test_pulumi_toolchain.py"
PINNED_BUILDS = "tests/toolchain/test_pinned_builds.py"
ADOPTION = ("tests/adoption/test_plan.py", "tests/adoption/test_move.py")
# The unit tests of everything that reads model/: the program, the policy rules, the verification's
# expectations, the rotation, and the docs rendered from it (not the fault table, which a whole run renders).
MODEL_UNIT = (
    UNIT_MODEL_RULES,
    UNIT_EXPECTATIONS,
    UNIT_DEPLOYED,
    UNIT_SETTINGS,
    UNIT_GRAPH,
    UNIT_POLICY,
    "tests/unit/test_rotation.py",
    "tests/unit/test_docs.py::test_the_generated_parts_of_the_docs_are_up_to_date",
    "tests/unit/test_docs.py::test_the_matrix_says_the_writer_only_inserts",
    "tests/unit/test_docs.py::test_the_matrix_shows_every_kind_of_object_that_verification_checks",
)
MIGRATION_TESTS = (
    "tests/migrations/test_placement_guard.py",
    "tests/migrations/test_safe_runs.py",
    "tests/migrations/test_trees.py",
)
PARTITION_TESTS = ("tests/migrations/test_partitions.py", "tests/migrations/test_maintenance.py")
TREES = (
    *MIGRATION_TESTS,
    *PARTITION_TESTS,
    "tests/migrations/test_pytest_alembic.py",
    "tests/migrations/test_offline_sql.py",
    "tests/unit/test_revision_imports.py",
)


def focused(first: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The migration tests with the file aimed at a module first: most mutants die there in seconds."""
    return ((first,), tuple(test for test in MIGRATION_TESTS if test != first))


# Module -> its test stages (each a pytest selection), in the order they run.
STAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    # infra/: the resource graph under Pulumi's mocks first, then the real engine.
    "infra/__main__.py": ((UNIT_IMPORTS,), (DEV_STACK,)),
    # Every key's validation has its unit test; the deploys of test_bad_input add a minute a mutant,
    # and each of the 9 mutants the unit tests missed in a first run, they missed too.
    "infra/settings.py": ((UNIT_SETTINGS, UNIT_GRAPH),),
    "infra/identifiers.py": ((UNIT_SETTINGS,),),
    "infra/embedded_server.py": ((UNIT_SETTINGS,), (LOCALPG, DEV_STACK)),
    "infra/acl_chain.py": ((UNIT_GRAPH,), ("tests/integration/test_provider_engine.py", DEV_STACK)),
    "infra/database.py": (
        (UNIT_GRAPH,),
        (DEV_STACK, "tests/integration/test_managed_server.py", "tests/integration/test_dev_stack.py"),
    ),
    "infra/runtime_role.py": ((UNIT_GRAPH,), (DEV_STACK,)),
    "infra/login_handover.py": ((UNIT_GRAPH,), ("tests/integration/test_rotation.py",)),
    "infra/role_retirement.py": (
        (UNIT_GRAPH,),
        ("tests/retirement/test_retire.py",),
        ("tests/integration/test_retirement.py",),
    ),
    "infra/server_login.py": (
        (UNIT_GRAPH,),
        ("tests/integration/test_migration_step_engine.py", "tests/integration/test_tls.py"),
    ),
    "infra/outputs.py": ((UNIT_GRAPH, UNIT_DEPLOYED), (DEV_STACK,)),
    "infra/program.py": ((UNIT_GRAPH, UNIT_SETTINGS), (DEV_STACK, "tests/integration/test_tls.py")),
    "infra/scram.py": (("tests/unit/test_scram.py", "tests/unit/test_generated_password.py"),),
    "infra/generated_password.py": (
        ("tests/unit/test_scram.py", "tests/unit/test_generated_password.py", UNIT_GRAPH),
        (DEV_STACK,),
    ),
    "infra/step_errors.py": ((UNIT_ENGINE_ERRORS,), ("tests/integration/test_migration_step_engine.py",)),
    "infra/migration_preview.py": (
        (UNIT_IMPORTS, "tests/unit/test_target_difference.py"),
        ("tests/integration/test_converge.py", "tests/integration/test_migration_gate_deploy.py"),
    ),
    "infra/migration_step.py": (
        (
            UNIT_IMPORTS,
            "tests/migrations/test_step_revision_read.py",
            "tests/integration/test_migration_step_engine.py",
        ),
        ("tests/integration/test_tls.py",),
    ),
    "infra/log_maintenance.py": ((UNIT_GRAPH,), ("tests/integration/test_migration_step_engine.py", DEV_STACK)),
    # model/: pure data, read by the program, the policy rules and the docs. The unit files that read a
    # module first (seconds), then every unit test of a reader of the model, then the databases the
    # migration tests provision from it.
    "model/names.py": ((UNIT_EXPECTATIONS, UNIT_DEPLOYED, UNIT_SETTINGS), MODEL_UNIT, MIGRATION_TESTS),
    "model/privileges.py": (
        (UNIT_MODEL_RULES, UNIT_EXPECTATIONS, UNIT_GRAPH),
        MODEL_UNIT,
        ("tests/migrations/test_model_privileges.py", "tests/migrations/test_runtime_access.py"),
    ),
    "model/rotation.py": (("tests/unit/test_rotation.py",), MODEL_UNIT),
    "model/log_lifecycle.py": ((UNIT_MODEL_RULES, UNIT_SETTINGS, UNIT_GRAPH), MODEL_UNIT, PARTITION_TESTS),
    "model/server_versions.py": ((UNIT_SETTINGS,), MODEL_UNIT, (LOCALPG, "tests/integration/test_stack_files.py")),
    # migrations/: each tree on real databases (no engine), then the step that runs them in a deploy.
    "migrations/main/env.py": (MIGRATION_TESTS,),
    "migrations/logs/env.py": (MIGRATION_TESTS,),
    "migrations/runner.py": (MIGRATION_TESTS, ("tests/integration/test_migration_step_engine.py",)),
    "migrations/schema.py": (("tests/migrations/test_trees.py",), ("tests/integration/test_migration_step_engine.py",)),
    "migrations/maintenance.py": (
        ("tests/migrations/test_maintenance.py",),
        ("tests/integration/test_migration_step_engine.py",),
    ),
    # The migration gate: judged from offline SQL, no server needed.
    "migrations/gate/__init__.py": (("tests/gate",),),
    "migrations/gate/judging.py": (("tests/gate",),),
    "migrations/gate/rendering.py": (("tests/gate",),),
    "migrations/gate/rules.py": (("tests/gate",),),
    "migrations/gate/squawk.py": (("tests/gate",),),
    "migrations/gate/statements.py": (("tests/gate",),),
    "migrations/gate/verdict.py": (("tests/gate",),),
    "migrations/gate/waivers.py": (("tests/gate",),),
    "migrations/shared/phases.py": (("tests/unit/test_phases.py", "tests/migrations/test_expand_contract.py"),),
    "migrations/shared/backfill.py": focused("tests/migrations/test_expand_contract.py"),
    "migrations/shared/lock_retry.py": focused("tests/migrations/test_safe_runs.py"),
    "migrations/shared/concurrent_index.py": (
        ("tests/migrations/test_partitioned_index.py", "tests/migrations/test_safe_runs.py"),
        (*MIGRATION_TESTS, "tests/migrations/test_offline_sql.py"),
    ),
    # The revisions: the trees' own tests build every table and index, up and down.
    "migrations/main/versions/main_0001_create_user_invitations.py": (TREES,),
    "migrations/logs/versions/logs_0001_create_system_logs.py": (TREES,),
    "migrations/logs/versions/logs_0002_create_llm_logs.py": (TREES,),
    "migrations/logs/versions/logs_0003_composite_indexes.py": (TREES,),
    "migrations/logs/versions/logs_0004_partition_log_tables.py": (PARTITION_TESTS, TREES),
    "migrations/shared/connect.py": focused("tests/migrations/test_safe_runs.py"),
    "migrations/shared/environment.py": (MIGRATION_TESTS,),
    "migrations/shared/offline.py": (
        (
            "tests/migrations/test_offline_sql.py",
            "tests/migrations/test_trees.py",
            "tests/migrations/test_partitions.py",
        ),
    ),
    "migrations/shared/heads.py": (("tests/unit/test_heads.py",), ("tests/integration/test_migration_step_engine.py",)),
    "migrations/shared/partitions.py": (
        PARTITION_TESTS,
        ("tests/migrations/test_pytest_alembic.py", "tests/migrations/test_offline_sql.py"),
    ),
    "migrations/shared/partition_conversion.py": (
        ("tests/migrations/test_partitions.py",),
        (*TREES, "tests/migrations/test_offline_sql.py"),
    ),
    "migrations/shared/placement_guard.py": focused("tests/migrations/test_placement_guard.py"),
    "migrations/shared/run_inputs.py": (MIGRATION_TESTS, ("tests/integration/test_migration_step_engine.py",)),
    "migrations/shared/run_lock.py": focused("tests/migrations/test_safe_runs.py"),
    "migrations/shared/tree.py": focused("tests/migrations/test_trees.py"),
    # policy/: the rules as plain functions first, then the pack in a real preview.
    "policy/__main__.py": (("tests/policy/test_policy_pack.py",),),
    "policy/holdings.py": ((UNIT_POLICY,), ("tests/policy/test_policy_pack.py",)),
    "policy/observed.py": ((UNIT_POLICY,), ("tests/policy/test_policy_pack.py",)),
    "policy/policies.py": ((UNIT_POLICY,), ("tests/policy/test_policy_pack.py",)),
    "policy/rules.py": ((UNIT_POLICY,), ("tests/policy/test_policy_pack.py",)),
    "policy/secret_config_keys.py": ((UNIT_POLICY,), ("tests/policy/test_policy_pack.py",)),
    "policy/stack_facts.py": ((UNIT_POLICY,), ("tests/policy/test_policy_pack.py",)),
    # ops/: what the scripts run. Arguments and exit codes are unit-tested; the rest runs the scripts.
    "ops/errors.py": ((UNIT,), (SCRIPTS,)),
    "ops/paths.py": ((UNIT,), (SCRIPTS,)),
    "ops/commands/cli.py": ((SCRIPTS,),),
    "ops/commands/docs.py": (("tests/unit/test_docs.py",),),
    "ops/commands/gate.py": ((SCRIPTS,), ("tests/gate",)),
    "ops/commands/adopt.py": ((SCRIPTS,), ("tests/integration/test_adopt.py",)),
    "ops/deploy/migration_gate.py": (("tests/integration/test_migration_gate_deploy.py",),),
    "ops/commands/deploy.py": ((SCRIPTS,), ("tests/integration/test_deploy.py",)),
    "ops/commands/destroy.py": ((SCRIPTS,), ("tests/integration/test_deploy.py",)),
    "ops/commands/up.py": ((SCRIPTS,), (DEV_STACK,)),
    "ops/commands/verify.py": ((SCRIPTS,), ("tests/integration/test_verify.py",)),
    "ops/commands/rotate.py": (
        (SCRIPTS, "tests/integration/test_rotate_writes.py"),
        ("tests/integration/test_rotation.py", "tests/faults/test_killed_rotation.py"),
    ),
    "ops/commands/maintain.py": ((SCRIPTS,), ("tests/integration/test_deploy.py",)),
    "ops/commands/migrate.py": (
        (SCRIPTS,),
        ("tests/faults/test_unanswered_migrate.py", "tests/integration/test_deploy.py"),
    ),
    "ops/commands/matrix.py": (("tests/unit/test_pipelines.py", SCRIPTS),),
    "ops/commands/localpg.py": ((SCRIPTS, LOCALPG),),
    "ops/commands/pulumi.py": ((SCRIPTS,),),
    "ops/commands/client_programs.py": ((SCRIPTS, LOCALPG),),
    "ops/commands/toolchain.py": ((SCRIPTS, TOOLCHAIN),),
    "ops/commands/state_backend.py": ((SCRIPTS,), ("tests/integration/test_shared_backend.py",)),
    "ops/deploy/deployed_stack.py": ((UNIT_DEPLOYED,), ("tests/integration/test_verify.py",)),
    "ops/deploy/engine_events.py": ((UNIT_ENGINE_ERRORS,), ("tests/policy/test_policy_pack.py",)),
    "ops/deploy/passphrase_check.py": ((UNIT_ENGINE_ERRORS,), ("tests/faults/test_bad_input.py",)),
    "ops/deploy/driver.py": ((UNIT_ENGINE_ERRORS,), (DEV_STACK, "tests/integration/test_deploy.py")),
    "ops/deploy/recovery.py": (("tests/faults/test_killed_provisioning.py", "tests/faults/test_damaged_state.py"),),
    "ops/deploy/deploy_processes.py": (("tests/faults/test_recovery_bystanders.py",),),
    "ops/deploy/role_check.py": (
        ("tests/unit/test_hand_written_expectations.py", "tests/migrations/test_role_check.py"),
        (DEV_STACK,),
    ),
    "ops/deploy/state_backend.py": (
        ("tests/unit/test_state_backend.py",),
        ("tests/integration/test_shared_backend.py",),
    ),
    "ops/deploy/tls_check.py": (("tests/integration/test_tls.py",),),
    "ops/deploy/rotation_check.py": (
        ("tests/unit/test_rotation.py",),
        ("tests/faults/test_killed_rotation.py", "tests/integration/test_rotation.py"),
    ),
    "ops/deploy/foreign_roles.py": (("tests/integration/test_read_only_names.py",),),
    "ops/adoption/apply.py": (ADOPTION, ("tests/integration/test_adopt.py",)),
    "ops/adoption/baseline.py": ((UNIT_ADOPTION,), ADOPTION),
    "ops/adoption/catalog.py": ((UNIT_ADOPTION,), ADOPTION),
    "ops/adoption/inspect.py": (ADOPTION,),
    "ops/adoption/move.py": (("tests/adoption/test_move.py",), ("tests/integration/test_adopt.py",)),
    "ops/adoption/move_progress.py": (("tests/adoption/test_move.py",),),
    "ops/adoption/plan.py": (("tests/adoption/test_plan.py",), ("tests/integration/test_adopt.py",)),
    "ops/adoption/revision_shapes.py": ((UNIT_ADOPTION,), ADOPTION),
    "ops/adoption/server_access.py": (ADOPTION,),
    "ops/localpg/embedded.py": ((LOCALPG,), ("tests/migrations/test_safe_runs.py",)),
    "ops/localpg/server_builds.py": ((LOCALPG, PINNED_BUILDS),),
    "ops/localpg/client_builds.py": ((LOCALPG, PINNED_BUILDS),),
    "ops/toolchain/go_build.py": ((TOOLCHAIN,),),
    "ops/toolchain/pinned.py": (("tests/unit/test_pipelines.py", TOOLCHAIN),),
    "ops/toolchain/plugin_info.py": ((TOOLCHAIN,),),
    "ops/toolchain/plugin_sources.py": ((TOOLCHAIN,),),
}
FROZEN = "nothing assigns to these objects after they are made (mypy, in scripts/test, refuses it for frozen ones)"
FROZEN_DATACLASS = ("@dataclass(frozen=True)", "@dataclass(frozen=False)")
# Surviving mutants judged equivalent: (module, the line as written, the line as the mutant has it)
# -> why no user can observe the change. A survivor is marked equivalent only when it is listed
# here, and tests/unit/test_mutation.py fails on an entry that no mutant of the module produces.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    **{
        (module, *FROZEN_DATACLASS): FROZEN
        for module in (
            "infra/acl_chain.py",
            "infra/database.py",
            "infra/runtime_role.py",
            "infra/program.py",
            "infra/migration_step.py",
            "infra/settings.py",
            "migrations/shared/placement_guard.py",
            "migrations/shared/concurrent_index.py",
            "model/log_lifecycle.py",
            "model/names.py",
            "model/privileges.py",
        )
    },
    (
        "infra/database.py",
        "after_database = pulumi.ResourceOptions(parent=self, depends_on=[database], delete_before_replace=True)",
        "after_database = pulumi.ResourceOptions(parent=self, depends_on=[database], delete_before_replace=False)",
    ): (
        "the admin's membership is replaced only when the admin or the owner role is renamed: the old and the new "
        "membership then differ, and neither order takes one back"
    ),
    ("model/privileges.py", "if grantee.kind is not None", "if True"): (
        "the filter only keeps PUBLIC out, and PUBLIC holds no default privileges in the model: the next "
        "line drops its empty entry all the same"
    ),
    ("migrations/shared/connect.py", "return False", "return True"): (
        "with the psycopg driver every OperationalError of a connect wraps a psycopg error: the branch never runs"
    ),
    ("migrations/shared/run_lock.py", "if time.monotonic() >= deadline:", "if time.monotonic() > deadline:"): (
        "`>` and `>=` differ only at the instant the clock reads the deadline exactly"
    ),
    (
        "infra/migration_step.py",
        'changes=bool(changed) or behind or "tables" not in olds, replaces=[], delete_before_replace=False',
        'changes=bool(changed) or behind or "tables" not in olds, replaces=[], delete_before_replace=True',
    ): "the step never asks for a replacement (replaces is always empty), so the order of one is moot",
    (
        "infra/generated_password.py",
        'return DiffResult(changes=changed, replaces=["rotation"] if changed else [], delete_before_replace=False)',
        'return DiffResult(changes=changed, replaces=["rotation"] if changed else [], delete_before_replace=True)',
    ): "deleting a generated password touches nothing on the server, so the order of a replacement is moot",
}


def scratch_environment(tree: Path) -> dict[str, str]:
    """The tests' environment in a scratch copy: its own modules first on the path (the virtualenv's
    .pth names this checkout), its own state folder (never the checkout's server), no bytecode (two
    mutants of one size written in the same second would share a stale .pyc)."""
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HEADHUNTER_STATE_DIR": str(tree / ".state"),
    }


def failing_stage(module: str, tree: Path = REPO_ROOT, timeout_s: float | None = None) -> int | None:
    """Run the module's stages in order in `tree`; the number (1-based) of the first that fails, or
    None when all pass. A stage that outlives the timeout fails (a mutant that hangs is caught).

    The fault log is off: a mutant's run must not overwrite the suite's reports/faults.json.
    """
    environment = scratch_environment(tree) if tree != REPO_ROOT else dict(os.environ)
    for number, stage in enumerate(STAGES[module], start=1):
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:fault_log", *stage]
        try:
            outcome = subprocess.run(
                command,
                cwd=tree,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return number
        if outcome.returncode:
            return number
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in STAGES:
        print("usage: python -m tools.mutate.stages MODULE  (a module of scripts/mutate --list)", file=sys.stderr)
        return ExitCode.BAD_INPUT
    return 0 if failing_stage(argv[0]) is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
