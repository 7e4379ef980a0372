"""Which login of a runtime role the stack hands out, when each gets a new password, which numbers a deploy takes."""

from __future__ import annotations

import json

import pytest

from infra.settings import Settings, parse_settings
from model.rotation import Slot, handed_out, is_deployable, password_generation
from ops.deploy.rotation_check import deployed_rotations, pending_rotations, rotation_problems
from tests.unit.test_settings import VALID


def test_each_rotation_hands_out_the_other_login() -> None:
    assert [handed_out(rotation) for rotation in range(1, 6)] == [Slot.A, Slot.B, Slot.A, Slot.B, Slot.A]


def test_the_login_handed_out_got_its_password_at_this_rotation_and_the_other_keeps_the_last_one() -> None:
    for rotation in range(1, 20):
        fresh, kept = handed_out(rotation), handed_out(rotation + 1)
        assert password_generation(rotation, fresh) == rotation
        assert password_generation(rotation, kept) == rotation - 1
        # One rotation later the kept login is renewed and handed out; the other one still works.
        assert password_generation(rotation + 1, fresh) == rotation


def test_a_client_that_never_rereads_works_through_one_rotation_and_not_two() -> None:
    first = handed_out(1)
    assert password_generation(2, first) == password_generation(1, first)  # still its password
    assert password_generation(3, first) != password_generation(1, first)  # renewed: it fails now


@pytest.mark.parametrize(
    ("deployed", "written", "deployable"),
    [
        (1, 1, True),
        (1, 2, True),
        (2, 1, False),
        (1, 3, False),
        (4, 4, True),
        (4, 5, True),
        (4, 3, False),
        (4, 6, False),
    ],
)
def test_a_deploy_takes_the_deployed_number_or_one_more(deployed: int, written: int, deployable: bool) -> None:
    assert is_deployable(deployed, written) is deployable


@pytest.mark.parametrize("deployed", range(1, 6))
def test_any_other_number_renews_the_login_in_use(deployed: int) -> None:
    """Why the preflight refuses them: the login the outputs hand out gets a new password, so its clients fail."""
    in_use = handed_out(deployed)
    for written in (deployed - 1, deployed + 2, deployed + 3):
        assert password_generation(written, in_use) != password_generation(deployed, in_use), written
    for written in (deployed, deployed + 1):
        assert password_generation(written, in_use) == password_generation(deployed, in_use), written


def settings(rotations: dict[str, int]) -> Settings:
    raw = {**VALID, "passwordRotations": json.dumps(rotations)}
    raw["readOnlyRoles"] = json.dumps([{"name": "bi", "database": "main"}])
    return parse_settings("staging", raw, environ={})


DEPLOYED = {"app": 2, "logs_writer": 1, "logs_reader": 1, "bi": 3}


def test_the_numbers_as_deployed_and_one_rotation_pass() -> None:
    assert rotation_problems(settings({"app": 2, "bi": 3}), DEPLOYED) == []
    assert pending_rotations(settings({"app": 2, "bi": 3}), DEPLOYED) == {}
    rotated = settings({"app": 3, "logs_writer": 2, "logs_reader": 2, "bi": 4})
    assert rotation_problems(rotated, DEPLOYED) == []
    assert pending_rotations(rotated, DEPLOYED) == {"app": 3, "logs_writer": 2, "logs_reader": 2, "bi": 4}


def test_a_lowered_number_is_refused_naming_the_role_both_numbers_the_login_in_use_and_the_fix() -> None:
    [problem] = rotation_problems(settings({"app": 1, "bi": 3}), DEPLOYED)
    assert problem.startswith("Pulumi.staging.yaml: headhunter-db:passwordRotations gives app 1, lower than 2, ")
    assert "would give a new password to headhunter_app_b, the login the stack hands out now" in problem
    assert "Fix: set it back to 2 with `pulumi config set --path 'headhunter-db:passwordRotations.app' 2" in problem
    assert problem.endswith("Nothing was changed.")


def test_a_skipped_number_is_refused_with_the_one_to_set() -> None:
    [problem] = rotation_problems(settings({"app": 2, "bi": 5}), DEPLOYED)
    assert (
        "passwordRotations gives bi 5, more than one above 3, the number stack staging was last deployed with"
        in problem
    )
    assert "new passwords to both logins of bi at once, bi_a (handed out now) included" in problem
    assert "Fix: set it to 4 with `pulumi config set --path 'headhunter-db:passwordRotations.bi' 4" in problem


def test_a_role_the_stack_file_leaves_out_is_at_its_first_rotation() -> None:
    """No entry means 1: a stack deployed at 2 whose entry was deleted goes back, and is refused."""
    [problem] = rotation_problems(settings({"bi": 3}), DEPLOYED)
    assert "gives app 1, lower than 2" in problem


def test_roles_with_no_deployed_number_are_not_checked() -> None:
    """A first deploy, a new read-only role, or a stack last deployed by a program that recorded no numbers."""
    assert rotation_problems(settings({"app": 7, "bi": 9}), {}) == []
    assert pending_rotations(settings({"app": 7}), {}) == {}


def test_the_deployed_numbers_are_read_from_the_outputs() -> None:
    assert deployed_rotations({"password_rotations": {"app": 2, "bi": 3}}) == {"app": 2, "bi": 3}
    assert deployed_rotations({"connection_urls": {}}) == {}
