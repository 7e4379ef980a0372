"""scripts/mutate's reading of cosmic-ray's report: which survivors are alive, which equivalent."""

from __future__ import annotations

from tools.mutate import command as mutate

REPORT = """[job-id] 7fe04823dbe144f88a006152ebe73430
infra/acl_chain.py core/ReplaceTrueWithFalse 1
worker outcome: WorkerOutcome.NORMAL, test outcome: TestOutcome.SURVIVED
=== DIFF ===
--- mutation diff ---
--- a/infra/acl_chain.py
+++ b/infra/acl_chain.py
@@ -64,7 +64,7 @@
-@dataclass(frozen=True)
+@dataclass(frozen=False)
 class GrantTarget:
============
[job-id] 0123
infra/identifiers.py core/ReplaceComparisonOperator_Gt_GtE 0
worker outcome: WorkerOutcome.NORMAL, test outcome: TestOutcome.SURVIVED
=== DIFF ===
--- a/infra/identifiers.py
+++ b/infra/identifiers.py
@@ -20,7 +20,7 @@
-    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
+    if len(name.encode()) >= MAX_IDENTIFIER_BYTES:
============
total jobs: 30
complete: 30 (100.00%)
surviving mutants: 2 (6.67%)
"""


def test_survivors_are_read_with_the_line_each_mutant_changed() -> None:
    found = mutate.survivors(REPORT)
    assert [(s.module, s.operator, s.mutated_line) for s in found] == [
        ("infra/acl_chain.py", "core/ReplaceTrueWithFalse", "@dataclass(frozen=False)"),
        (
            "infra/identifiers.py",
            "core/ReplaceComparisonOperator_Gt_GtE",
            "if len(name.encode()) >= MAX_IDENTIFIER_BYTES:",
        ),
    ]
    assert mutate.counts(REPORT) == (30, 2)


def test_only_a_listed_survivor_counts_as_equivalent() -> None:
    frozen, boundary = mutate.survivors(REPORT)
    assert frozen.equivalent_because is not None
    assert boundary.equivalent_because is None
