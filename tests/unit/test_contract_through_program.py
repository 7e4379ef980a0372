"""The program hands headhunter-db:contractThrough to the main tree's migration step alone (Pulumi mocks)."""

from __future__ import annotations

from typing import Any

import pulumi

from tests.unit.test_resource_graph import STACK_CONFIG, declared, of_type


def contract_through_by_tree(graph: list[pulumi.runtime.MockResourceArgs]) -> dict[str, Any]:
    steps = [inputs for inputs in of_type(graph, "pulumi-python:dynamic:Resource") if "head" in inputs]
    return {str(inputs["tree"]): inputs.get("contract_through") for inputs in steps}


def test_the_key_reaches_the_main_tree_s_step_only() -> None:
    graph = declared({**STACK_CONFIG, "headhunter-db:contractThrough": "main_0001"})
    assert contract_through_by_tree(graph) == {"main": "main_0001", "logs": None}


def test_unset_no_step_may_run_a_contract_revision() -> None:
    assert contract_through_by_tree(declared(STACK_CONFIG)) == {"main": None, "logs": None}
