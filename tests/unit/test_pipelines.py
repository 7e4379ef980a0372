"""The CI/CD examples in docs/pipelines.md are valid for the systems they are written for.

Each YAML block marked `<!-- pipeline: github -->` or `<!-- pipeline: gitlab -->` is checked against
that system's published schema (the copies that check-jsonschema ships), and against what our
scripts expect of a pipeline: the pinned versions, and a deploy that publishes the JUnit report.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.paths import REPO_ROOT
from ops.toolchain import pinned

PIPELINES = REPO_ROOT / "docs" / "pipelines.md"
BLOCK = re.compile(r"<!-- pipeline: (?P<kind>\w+) -->\n```yaml\n(?P<body>.*?)```", re.DOTALL)
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}


def blocks() -> list[tuple[str, str]]:
    return [(match["kind"], match["body"]) for match in BLOCK.finditer(PIPELINES.read_text())]


def test_the_doc_has_each_example() -> None:
    kinds = [kind for kind, _ in blocks()]
    assert kinds.count("github") == 2 and kinds.count("gitlab") == 2


@pytest.mark.parametrize(("kind", "body"), blocks(), ids=[f"{k}-{i}" for i, (k, _) in enumerate(blocks())])
def test_each_example_matches_its_ci_schema(kind: str, body: str, tmp_path: Path) -> None:
    example = tmp_path / "pipeline.yml"
    example.write_text(body)
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", SCHEMAS[kind], str(example)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_examples_install_the_pinned_toolchain_and_publish_the_verification() -> None:
    text = PIPELINES.read_text()
    cli, plugin = pinned.pinned_cli_version(), pinned.pinned_postgresql_plugin_version()
    for kind, body in blocks()[:2]:
        assert cli in body, f"the {kind} example does not pin the CLI {cli}"
        assert f"pulumi plugin install resource postgresql {plugin}" in body
        assert "reports/verify-" in body
    assert "HEADHUNTER_PLUGIN_SOURCES" in text
