"""Secrets: a real service-account key flow against the sandbox's token endpoint.

The key is generated here; its `token_uri` points at the sandbox, so google-auth signs a real
JWT, exchanges it for an access token and sends `Authorization: Bearer ...` on every call. The
tests check that no command prints the key, the token or the key file's contents (even with
-v), that only `apply` asks for the edit scope (the sandbox refuses writes with a read-only
token, as GA does), and that a cassette recorded over this flow holds no secret.
"""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from ga_sync.cli import app
from ga_sync.clients import EDIT_SCOPE, READONLY_SCOPE, connect
from recording import find_leaks, make_vcr

SPEC = "client: Secret Co\nproperty: 135791113\ncurrency: USD\ngoals:\n  - {event: sign_up, tier: micro, value: 3}\n"


@pytest.fixture
def key_file(sandbox, sandbox_state, tmp_path, monkeypatch):
    sandbox_state.add_property(property_id="135791113", display_name="Secret Co")
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "test-project",
            "private_key_id": "abcdef0123456789abcdef0123456789abcdef01", "private_key": pem,
            "client_email": "ga-sync-test@test-project.iam.gserviceaccount.com",
            "client_id": "123456789012345678901", "token_uri": f"{sandbox.url}/_sandbox/token"}
    path = tmp_path / "key.json"
    path.write_text(json.dumps(info))
    os.chmod(path, 0o600)
    monkeypatch.setenv("GA_SYNC_CREDENTIALS", str(path))
    monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", sandbox.url)
    monkeypatch.setenv("GA_SYNC_DATA_ENDPOINT", sandbox.url)
    monkeypatch.setenv("GA_SYNC_JOURNAL", str(tmp_path / "journal.jsonl"))
    spec = tmp_path / "secret.yaml"
    spec.write_text(SPEC)
    return path, info, spec


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _assert_clean(text, info, sandbox):
    assert "PRIVATE KEY" not in text
    assert info["private_key_id"] not in text
    assert info["private_key"].splitlines()[1] not in text
    for token in sandbox.token_scopes:
        assert token not in text
    assert "ya29." not in text


def test_commands_authenticate_and_never_print_secrets(key_file, sandbox):
    path, info, spec = key_file
    plan = run("-v", "plan", spec)
    assert plan.exit_code == 0, plan.stderr
    apply = run("-v", "apply", spec, "--yes")
    assert apply.exit_code == 0, apply.stderr
    assert "Applied 1 change" in apply.stdout
    assert len(sandbox.token_scopes) == 2  # a token per command, really exchanged and used
    for r in (plan, apply):
        _assert_clean(r.stdout + r.stderr, info, sandbox)
    journal = (path.parent / "journal.jsonl").read_text()
    _assert_clean(journal, info, sandbox)


def test_only_apply_asks_for_the_edit_scope(key_file, sandbox):
    _, _, spec = key_file
    def scopes_used(*args):
        before = sandbox.scopes_seen.copy()
        r = run(*args)
        assert r.exit_code == 0, (args, r.stderr)
        return set(sandbox.scopes_seen - before)

    for args in (["plan", spec], ["dump", "135791113"], ["properties"],
                 ["report", spec, "--no-store"], ["audit", spec, "--fail-on", "never"]):
        assert scopes_used(*args) == {READONLY_SCOPE}, args
    assert scopes_used("apply", spec, "--yes") == {EDIT_SCOPE}


def test_read_only_token_cannot_write(key_file, sandbox):
    """What GA answers when the scope is too narrow, and how ga-sync says it."""
    from ga_sync.admin import Journal, apply_plan, read_key_events
    from ga_sync.plan import diff
    from ga_sync.spec import load_specs

    _, _, spec_path = key_file
    spec = load_specs([spec_path])[0]
    conn = connect(write=False)  # read-only scope, then try to write anyway
    plan = diff(spec.properties[0], spec.client, spec.desired(),
                read_key_events(conn, spec.properties[0]))
    result = apply_plan(conn, plan, Journal(None))
    assert len(result.failed) == 1
    assert "insufficient authentication scopes" in result.failed[0][1]


def test_world_readable_key_warns(key_file):
    path, info, spec = key_file
    os.chmod(path, 0o644)
    r = run("plan", spec)
    assert r.exit_code == 0
    assert f"credentials file {path} is readable by other users" in r.stderr
    assert "chmod 600" in r.stderr


@pytest.mark.parametrize("kind", ["service_account", "authorized_user"])
def test_cassette_of_the_real_flow_is_scrubbed(key_file, tmp_path, sandbox, monkeypatch, kind):
    """Record a real authenticated flow; the cassette keeps the shape, never the secrets.

    A service-account key sends a self-signed JWT on each call; an authorized-user file first
    exchanges its refresh token (and client secret) at the token endpoint.
    """
    from ga_sync.admin import read_key_events

    _, info, _ = key_file
    secrets_in_play = [info["private_key_id"]]
    if kind == "authorized_user":
        user = {"type": "authorized_user", "client_id": "1234-abc.apps.googleusercontent.com",
                "client_secret": "GOCSPX-sandboxClientSecret123",
                "refresh_token": "1//0sandbox-refresh-token-abcdefghijklmnopqrstuvwxyz",
                "token_uri": f"{sandbox.url}/_sandbox/token"}
        path = tmp_path / "user.json"
        path.write_text(json.dumps(user))
        os.chmod(path, 0o600)
        monkeypatch.setenv("GA_SYNC_CREDENTIALS", str(path))
        # google-auth always sends authorized users to Google's token endpoint: send it here
        import google.oauth2.credentials
        monkeypatch.setattr(google.oauth2.credentials, "_GOOGLE_OAUTH2_TOKEN_ENDPOINT",
                            user["token_uri"])
        secrets_in_play += [user["client_secret"], user["refresh_token"]]
    cassettes = tmp_path / "cassettes"
    with make_vcr(cassettes, "all").use_cassette("flow.yaml") as cassette:
        read_key_events(connect(), "properties/135791113")
    text = (cassettes / "flow.yaml").read_text()
    if kind == "authorized_user":
        assert "/_sandbox/token" in text  # the token exchange was recorded, scrubbed
    assert find_leaks(cassettes) == []
    _assert_clean(text, info, sandbox)
    for secret in secrets_in_play:
        assert secret not in text
    assert any(r.headers.get("Authorization") == "<scrubbed>" for r in cassette.requests)
    assert len(sandbox.token_scopes) == 1  # the flow really authenticated
