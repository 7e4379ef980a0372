"""Which login of a runtime role the stack hands out, and when each gets a new password."""

from __future__ import annotations

from model.rotation import Slot, handed_out, password_generation


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
