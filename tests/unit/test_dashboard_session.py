"""Dashboard sessions, login throttling and the configuration's redaction."""

from __future__ import annotations

import pytest

from dijk.admin.ui import session as session_module
from dijk.admin.ui.session import LoginThrottle, SessionStore
from dijk.admin.ui.views import REDACTED, redact


def test_a_session_is_found_by_its_cookie_only_with_the_same_token() -> None:
    store = SessionStore()
    cookie, made = store.create("admin-token")
    assert store.get(cookie, "admin-token") is made
    assert store.get(cookie + "x", "admin-token") is None
    assert store.get(cookie, "another-token") is None  # the token changed: session over
    assert store.get(cookie, "admin-token") is None  # ... and forgotten


def test_sessions_expire_when_idle_and_after_their_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    store = SessionStore()
    monkeypatch.setattr(store, "_now", lambda: now[0])
    cookie, _ = store.create("t")
    now[0] += session_module.IDLE_S - 1
    assert store.get(cookie, "t") is not None
    now[0] += session_module.IDLE_S + 1
    assert store.get(cookie, "t") is None
    cookie, _ = store.create("t")
    for _ in range(int(session_module.LIFETIME_S // (session_module.IDLE_S - 60)) + 1):
        now[0] += session_module.IDLE_S - 60
        store.get(cookie, "t")
    assert store.get(cookie, "t") is None


def test_the_session_table_is_bounded_and_keeps_only_digests() -> None:
    store = SessionStore()
    cookies = [store.create("t")[0] for _ in range(session_module.MAX_SESSIONS + 5)]
    assert len(store) == session_module.MAX_SESSIONS
    assert store.get(cookies[0], "t") is None
    assert store.get(cookies[-1], "t") is not None
    assert all(cookie.encode() not in key for key in store._sessions for cookie in cookies[-3:])


def test_csrf_tokens_are_per_session_and_compared_exactly() -> None:
    store = SessionStore()
    _, one = store.create("t")
    _, two = store.create("t")
    assert one.csrf != two.csrf
    assert one.csrf_matches(one.csrf)
    assert not one.csrf_matches(two.csrf)
    assert not one.csrf_matches("")
    assert not one.csrf_matches(one.csrf + " ")


def test_failed_logins_are_throttled_per_address() -> None:
    throttle = LoginThrottle(limit=3, window_s=60)
    for _ in range(3):
        assert not throttle.blocked("192.0.2.1")
        throttle.failed("192.0.2.1")
    assert throttle.blocked("192.0.2.1")
    assert not throttle.blocked("192.0.2.2")


def test_redaction_hides_secret_values_but_keeps_where_they_come_from() -> None:
    config = {
        "admin": {"token_env": "DIJK_ADMIN_TOKEN"},
        "storage": {"url": "redis://user:hunter2@127.0.0.1:6379/0"},
        "consumers": [{"name": "a", "api_keys": [{"sha256": "ab" * 32}]}],
        "alerts": {
            "webhook": {"url": "https://hooks.example/T0/B0/XyZ", "secret": "s3cret"},
        },
        "audit": {"sinks": [{"url": "https://siem.example:8088/hec?token=abc"}]},
        "auth": {"introspection": {"client_secret": "x", "client_secret_file": "/run/s"}},
        "privacy": {"keys": {"path": "keys.json"}},
        "listen": {"port": 8080},
    }
    shown = redact(config)
    assert shown["admin"]["token_env"] == "DIJK_ADMIN_TOKEN"
    assert shown["storage"]["url"] == f"redis://user:{REDACTED}@127.0.0.1:6379/0"
    assert shown["consumers"][0]["api_keys"][0]["sha256"] == REDACTED
    assert shown["alerts"]["webhook"] == {
        "url": f"https://hooks.example/{REDACTED}",
        "secret": REDACTED,
    }
    assert shown["audit"]["sinks"][0]["url"] == f"https://siem.example:8088/{REDACTED}"
    assert shown["auth"]["introspection"]["client_secret"] == REDACTED
    assert shown["auth"]["introspection"]["client_secret_file"] == "/run/s"
    assert shown["privacy"] == {"keys": {"path": "keys.json"}}
    assert shown["listen"]["port"] == 8080
    assert "hunter2" not in str(shown)
    assert "s3cret" not in str(shown)
