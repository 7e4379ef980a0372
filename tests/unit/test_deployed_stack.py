"""What a deployed stack's outputs promise, read the one way the commands read them."""

from __future__ import annotations

import pytest

from model.names import DatabaseKey
from ops.deploy.deployed_stack import deployed, is_deployed
from ops.errors import ExitCode, UserError

OUTPUTS = {
    "host": "127.0.0.1",
    "port": 5432,
    "sslmode": "disable",
    "role_prefix": "headhunter",
    "databases": {"main": "headhunter_db", "logs": "headhunter_logs"},
    "connection_urls": {"logs_migrator": "postgresql://headhunter_logs_migrator:pw@127.0.0.1:5432/headhunter_logs"},
}


def test_a_stack_whose_first_deploy_never_finished_is_named_with_the_command_that_deploys_it() -> None:
    assert not is_deployed({})
    with pytest.raises(UserError) as refused:
        deployed("staging", {})
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    assert str(refused.value) == "stack 'staging' has not been deployed yet: run `scripts/up staging` first."


def test_a_deployed_stacks_outputs_give_each_trees_migrator_and_database() -> None:
    stack = deployed("dev", OUTPUTS)
    assert is_deployed(OUTPUTS)
    assert stack.migrator_url(DatabaseKey.LOGS).startswith("postgresql://headhunter_logs_migrator:")
    assert stack.database(DatabaseKey.LOGS) == "headhunter_logs"
