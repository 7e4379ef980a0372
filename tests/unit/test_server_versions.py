"""Which PostgreSQL majors are refused, at the one place each decision is made, on both sides of each bound.

The supported list (model/server_versions.py) is checked by the preflight against the server's own
version (ops/deploy/driver.py) and by the stack's embeddedServerVersion (infra/settings.py); a major
outside it is refused unless the stack opts in, and minServerVersion is a floor of its own.
"""

from __future__ import annotations

import pytest

from infra.settings import Settings, parse_settings
from model.server_versions import DEFAULT_MAJOR, SUPPORTED_MAJORS, is_supported
from ops.deploy.driver import server_version_problem
from tests.unit.test_settings import VALID

OUTSIDE = (9, 13, 14, 19, 20)
"""Below the oldest supported major and above the newest: each neighbour of the list, and further off."""


def settings(**changes: str) -> Settings:
    return parse_settings("staging", {**VALID, **changes}, environ={})


@pytest.mark.parametrize("major", SUPPORTED_MAJORS)
def test_each_supported_major_is_accepted(major: int) -> None:
    assert is_supported(major)
    assert server_version_problem(settings(), major * 10000 + 4) is None


@pytest.mark.parametrize("major", OUTSIDE)
def test_each_major_outside_the_list_is_refused_naming_the_opt_in(major: int) -> None:
    assert not is_supported(major)
    problem = server_version_problem(settings(), major * 10000 + 4)
    assert problem is not None
    assert f"runs PostgreSQL {major}, which this project does not test (it supports 15, 16, 17, 18)" in problem
    assert "headhunter-db:allowUntestedServerVersion true in Pulumi.staging.yaml" in problem
    assert problem.endswith("Nothing was changed.")


def test_the_supported_list_is_15_to_18_and_the_default_is_the_newest() -> None:
    """Pinned on purpose: a major joins the list when the version-matrix stage passes on it, in the same change."""
    assert SUPPORTED_MAJORS == (15, 16, 17, 18)
    assert max(SUPPORTED_MAJORS) == DEFAULT_MAJOR


@pytest.mark.parametrize("major", (14, 19))
def test_a_stack_that_opts_in_is_let_through_to_an_untested_major(major: int) -> None:
    opted_in = settings(allowUntestedServerVersion="true", minServerVersion="14")
    assert server_version_problem(opted_in, major * 10000) is None


@pytest.mark.parametrize(("major", "refused"), [(15, True), (16, False), (17, False)])
def test_min_server_version_is_a_floor_of_its_own(major: int, refused: bool) -> None:
    problem = server_version_problem(settings(minServerVersion="16"), major * 10000 + 2)
    assert (problem is not None) == refused
    if problem is not None:
        assert f"runs PostgreSQL {major}, older than headhunter-db:minServerVersion 16" in problem


def test_an_opted_in_stack_still_keeps_its_floor() -> None:
    problem = server_version_problem(settings(allowUntestedServerVersion="true", minServerVersion="15"), 140011)
    assert problem is not None and "runs PostgreSQL 14, older than headhunter-db:minServerVersion 15" in problem


def test_a_minor_release_does_not_change_the_major() -> None:
    """server_version_num is major * 10000 + minor: 189999 is still 18, 190000 is 19."""
    assert server_version_problem(settings(), 189999) is None
    assert server_version_problem(settings(), 190000) is not None
    assert server_version_problem(settings(), 149999) is not None
    assert server_version_problem(settings(), 150000) is None
