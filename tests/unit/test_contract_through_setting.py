"""headhunter-db:contractThrough: a main-tree revision (of the tree the program runs) or head, refused otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import ConfigError, Settings, parse_settings
from migrations.shared.heads import MIGRATIONS_COPY_ENV_VAR, declared_head, default_location

VALID = {
    "host": "db.internal",
    "adminUser": "admin",
    "adminPassword": "<secret: set>",
    "mainDatabase": "headhunter_db",
    "logsDatabase": "headhunter_logs",
    "rolePrefix": "headhunter",
}


def parse(value: str | None, environ: dict[str, str] | None = None) -> Settings:
    raw = {**VALID, **({} if value is None else {"contractThrough": value})}
    return parse_settings("staging", raw, environ or {})


def test_unset_or_empty_lets_no_contract_revision_run() -> None:
    assert parse(None).contract_through is None
    assert parse("").contract_through is None


def test_head_and_a_revision_of_the_main_tree_are_kept() -> None:
    assert parse("head").contract_through == "head"
    head = declared_head(default_location("main"))
    assert parse(head).contract_through == head


def test_an_unknown_revision_names_the_key_the_value_and_the_tree_s_revisions() -> None:
    with pytest.raises(ConfigError) as refused:
        parse("main_9999")
    message = str(refused.value)
    assert message.startswith("Pulumi.staging.yaml: headhunter-db:contractThrough is 'main_9999', which names no")
    assert "give head or one of main_0001" in message


def test_a_revision_of_the_logs_tree_is_refused() -> None:
    with pytest.raises(ConfigError, match="contractThrough is 'logs_0001', which names no revision of the main tree"):
        parse("logs_0001")


def test_the_revisions_are_those_of_the_copy_the_program_runs(tmp_path: Path) -> None:
    versions = tmp_path / "main" / "versions"
    versions.mkdir(parents=True)
    (versions / "c1.py").write_text('revision = "copy_0001"\ndown_revision = None\n')
    (versions / "c2.py").write_text('revision = "copy_0002"\ndown_revision = "copy_0001"\nphase = "contract"\n')
    copy = {MIGRATIONS_COPY_ENV_VAR: str(tmp_path)}
    assert parse("copy_0002", copy).contract_through == "copy_0002"
    with pytest.raises(ConfigError, match=r"'main_0001', .*give head or one of copy_0001, copy_0002"):
        parse("main_0001", copy)


def test_a_copy_with_an_invalid_phase_is_refused_by_file(tmp_path: Path) -> None:
    versions = tmp_path / "main" / "versions"
    versions.mkdir(parents=True)
    (versions / "c1.py").write_text('revision = "copy_0001"\ndown_revision = None\nphase = "shrink"\n')
    with pytest.raises(ConfigError, match=r"c1\.py: phase = 'shrink' is not a phase"):
        parse("head", {MIGRATIONS_COPY_ENV_VAR: str(tmp_path)})
