"""`aisopsflow up` registers the bundled mock as Kakao provider `mock` of the default tenant."""

from __future__ import annotations

from shared.bootstrap import prepare
from shared.db import connection
from shared.kakao.providers import register_bundled_mock
from shared.models import AuditLog, KakaoProvider


def test_registration_is_idempotent_and_follows_the_plugin_url(make_settings, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'up.db'}"
    first = make_settings(database_url=database_url, plugin_base_port="9000")
    moved = make_settings(
        database_url=database_url, plugin_urls="kakao-mock=http://plugin-kakao:8095"
    )
    prepare(first)

    changes = [register_bundled_mock(first), register_bundled_mock(first)]
    changes.append(register_bundled_mock(moved))

    assert changes == [True, False, True]
    with connection():
        [row] = KakaoProvider.select()
        assert (row.provider_key, row.auth, row.base_url) == (
            "mock",
            "plugin_token",
            "http://plugin-kakao:8095",
        )
        registered = AuditLog.select().where(AuditLog.action == "kakao_provider.register")
        assert registered.count() == 2
