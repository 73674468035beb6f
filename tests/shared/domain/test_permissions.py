"""The role table."""

from __future__ import annotations

import pytest

from shared.domain.permissions import (
    ALL_PERMISSIONS,
    APPROVALS_RESOLVE,
    DIRECTORY_WRITE,
    READ,
    SECRETS_ADMIN,
    allows,
)


@pytest.mark.parametrize(
    ("role", "permission", "expected"),
    [
        ("admin", SECRETS_ADMIN, True),
        ("operator", DIRECTORY_WRITE, True),
        ("operator", SECRETS_ADMIN, False),
        ("operator", APPROVALS_RESOLVE, False),
        ("approver", APPROVALS_RESOLVE, True),
        ("approver", DIRECTORY_WRITE, False),
        ("viewer", READ, True),
        ("viewer", DIRECTORY_WRITE, False),
        ("intruder", READ, False),
    ],
)
def test_allows(role, permission, expected):
    assert allows(role, permission) is expected


def test_admin_has_everything():
    assert all(allows("admin", permission) for permission in ALL_PERMISSIONS)
