"""Which role may do what: the one table the API consults for every route."""

from __future__ import annotations

#: Each permission a route can require.
READ = "read"
WORKFLOWS_WRITE = "workflows:write"
DIRECTORY_WRITE = "directory:write"
TEMPLATES_WRITE = "templates:write"
#: Kakao providers hold credentials, like secrets: admins only.
KAKAO_PROVIDERS_WRITE = "kakao-providers:write"
#: A send-test really sends AlimTalk messages.
KAKAO_SEND_TEST = "kakao:send-test"
EXECUTIONS_WRITE = "executions:write"
APPROVALS_RESOLVE = "approvals:resolve"
USERS_ADMIN = "users:admin"
SECRETS_ADMIN = "secrets:admin"
AUDIT_READ = "audit:read"
OPS_ADMIN = "ops:admin"

ALL_PERMISSIONS = frozenset(
    {
        READ,
        WORKFLOWS_WRITE,
        DIRECTORY_WRITE,
        TEMPLATES_WRITE,
        KAKAO_PROVIDERS_WRITE,
        KAKAO_SEND_TEST,
        EXECUTIONS_WRITE,
        APPROVALS_RESOLVE,
        USERS_ADMIN,
        SECRETS_ADMIN,
        AUDIT_READ,
        OPS_ADMIN,
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": ALL_PERMISSIONS,
    "operator": frozenset(
        {READ, WORKFLOWS_WRITE, DIRECTORY_WRITE, TEMPLATES_WRITE, KAKAO_SEND_TEST, EXECUTIONS_WRITE}
    ),
    "approver": frozenset({READ, APPROVALS_RESOLVE}),
    "viewer": frozenset({READ}),
}


def allows(role: str, permission: str) -> bool:
    """True when ``role`` grants ``permission``; unknown roles grant nothing."""
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
