"""redact(): well-known credential shapes are hidden, ordinary spec words are not, any input is
handled in linear time, and no secret written in a spec comes back in a problem's text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ga_sync.redact import excerpt, redact
from ga_sync.spec import check_event_name, validate_paths

# Fake credentials in each issuer's documented shape (none of them is real).
SECRETS = {
    "aws access key id": "AKIAIOSFODNN7EXAMPLE",
    "aws temporary key id": "ASIAIOSFODNN7EXAMPLE",
    "stripe secret": "sk_live_51H8abcdefghijklmnop",
    "stripe test secret": "sk_test_51H8abcdefghijklmnop",
    "stripe restricted": "rk_live_51H8abcdefghijklmnop",
    "stripe publishable": "pk_live_51H8abcdefghijklmnop",
    "github classic": "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github oauth": "gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github user-to-server": "ghu_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github server-to-server": "ghs_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github refresh": "ghr_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github fine-grained": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "slack bot": "xoxb-1234567890-0987654321-abcdefGHIJKL",
    "slack user": "xoxp-1234567890-abcdefghij",
    "google api key": "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "google oauth": "ya29.a0AfH6SMBexampleTokenValue_123",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0",
}
# What must stay out of the text, for secrets given in a context (key=value, URL, PEM).
IN_CONTEXT = [
    ("https://admin:hunter2pass@proxy.example.com/v1", "hunter2pass", "https://***@proxy"),
    ("password=hunter2secret", "hunter2secret", "password=***"),
    ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value", '"client_secret": ***'),
    ('{"api_key": "abc123def"}', "abc123def", '"api_key": ***'),
    ("API_KEY=abc123def&x=1", "abc123def", "API_KEY=***&x=1"),
    ("refresh_token: 1//0gAbCdEfGhIjKlMn", "AbCdEfGh", "refresh_token: ***"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXU",
     "AWS_SECRET_ACCESS_KEY=***"),
    ("auth token='x y z'", "x y z", "token=***"),
    ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop", "Bearer ***"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nafter",
     "MIIEow", "***private key***\nafter"),
]
NAMES = ["sign_up", "begin_checkout", "newsletter_signup", "purchase", "generate_lead",
         "add_to_cart", "view_item_list", "file_download", "click_whatsapp_button",
         "downloaded_the_annual_report_pdf_version",  # 40 characters
         "contact_form_submitted_from_footer_page",   # 39
         "Q4_Campaign_Landing_Page_Visit_Newsletter",
         "properties/123456789", "once_per_session", "the token expired", "a password reset",
         "token", "api_key", "USD", "_agency_defaults.yaml"]


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_credential_shapes_are_hidden(secret: str) -> None:
    for text in (secret, f"GA said: {secret} (retry)", f"value '{secret}'", f"x={secret};"):
        shown = redact(text)
        assert secret not in shown and secret[4:12] not in shown, shown
        assert "***" in shown


@pytest.mark.parametrize(("text", "secret", "kept"), IN_CONTEXT)
def test_secrets_in_context_are_hidden(text: str, secret: str, kept: str) -> None:
    shown = redact(text)
    assert secret not in shown and kept in shown, shown


@pytest.mark.parametrize("name", NAMES)
def test_ordinary_spec_words_are_kept(name: str) -> None:
    assert redact(name) == name
    assert redact(f"event `{name}` is listed twice") == f"event `{name}` is listed twice"


def test_forty_character_snake_case_names_are_kept() -> None:
    words = ["downloaded", "annual", "report", "pdf", "newsletter", "signup", "footer", "form",
             "checkout", "step", "2", "v3"]
    for start in range(len(words)):
        name = "_".join(words[start:] + words[:start])[:40].strip("_")
        assert redact(name) == name
    assert len("downloaded_the_annual_report_pdf_version") == 40


def test_long_random_tokens_without_a_known_prefix_are_hidden() -> None:
    token = "q8Zr2Lw9xKp3Vt7Nb1Hc6Dj4Fs0Gm5Yu8Ae2Ri7Oo"
    assert redact(f"key {token}") == "key ***"
    assert redact("a" * 40) == "***"  # one 40-letter word is not a name either


ADVERSARIAL = {
    "one run": "a" * 100_000,
    "underscores": "_" * 100_000,
    "snake words": "ab_" * 33_334,
    "digit words": "1_" * 50_000,
    "jwt heads": "-eyJ" * 25_000,
    "glued jwt heads": "_eyJ" * 25_000,
    "jwt without end": "eyJaaaaa." * 11_112,
    "oauth heads": "-ya29." * 16_667,
    "aws heads": "AKIA" * 25_000,
    "stripe heads": "sk_live_" * 12_500,
    "slack heads": "xoxb-" * 20_000,
    "github heads": "ghp_" * 25_000,
    "google key heads": "-AIza" * 20_000,
    "refresh heads": "-1//" * 25_000,
    "secret keys": "password=" * 11_112,
    "open quotes": 'password:"' * 10_000,
    "unclosed quote": "password: '" + "x" * 100_000,
    "key words": "api_key" * 14_286,
    "schemes": "a://" * 25_000,
    "userinfo": "http://" + "a" * 100_000,
    "pem heads": "-----BEGIN A-----" * 5_883,
    "bearers": "bearer " * 14_286,
    "39-char runs": ("A" * 39 + " ") * 2_500,
    "mixed case words": "aB3_" * 25_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_redact_is_linear_on_100k_characters(text: str) -> None:
    assert len(text) >= 100_000
    start = time.perf_counter()
    redact(text)
    excerpt(text)
    assert time.perf_counter() - start < 0.5


def test_an_excerpt_never_shows_part_of_a_token_cut_by_its_head() -> None:
    """excerpt() redacts a head of the text; a key block shrinks to a few characters, so a
    token that the head cuts in two could come into view: the cut part is left out."""
    secret = "sk_live_51H8abcdefghijklmnop"
    pem = "-----BEGIN PRIVATE KEY-----\n" + "A" * 400 + "\n-----END PRIVATE KEY-----"
    for pad in range(1, 40):
        text = f"{pem} {'x' * pad} {secret}"
        shown = excerpt(text)
        assert "51H8" not in shown and "live" not in shown, (pad, shown)
        assert shown.startswith("***private key***")


# --------------------------------------------------------------------------- spec messages


def _problem_text(tmp_path: Path, yaml_text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml_text)
    specs, problems = validate_paths([path])
    assert problems, "expected problems"
    return "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_no_spec_message_shows_a_secret(tmp_path: Path, secret: str) -> None:
    text = _problem_text(tmp_path, (
        f"client: [{secret}]\nproperty: '{secret}'\ncurrency: '{secret}'\n"
        f"rate_basis: '{secret}'\nextends: ['{secret}']\n'{secret}': 1\ngoals:\n"
        f"  - event: '{secret}'\n    tier: '{secret}'\n    value: '{secret}'\n"
        f"    counting: '{secret}'\n    '{secret}': 1\n"
        f"  - event: 'x {secret}'\n    tier: micro\n    value: 1\n"
        f"  - event: 'google_{secret}'\n    tier: micro\n    value: 1\n"))
    assert text.count("error") >= 8, text
    for part in {secret, secret[-12:], secret[4:14], secret.replace("-", "_")}:
        assert part not in text, text


@pytest.mark.parametrize(("key", "written"), [
    ("value", "'sk_live_51H8abcdefghijklmnop'"),
    ("counting", "AKIAIOSFODNN7EXAMPLE"),
    ("tier", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
])
def test_goal_values_are_redacted(tmp_path: Path, key: str, written: str) -> None:
    goal = {"event": "sign_up", "tier": "micro", "value": "1", key: written}
    text = _problem_text(tmp_path, "client: C\nproperty: 1\ncurrency: USD\ngoals:\n  - "
                         + "\n    ".join(f"{k}: {v}" for k, v in goal.items()) + "\n")
    assert f"{key} `***`" in text and written.strip("'") not in text, text


@pytest.mark.parametrize("top", ["client: [xoxb-1234567890-abcdefghij]",
                                 "currency: sk_live_51H8abcdefghijklmnop"])
def test_top_level_values_are_redacted(tmp_path: Path, top: str) -> None:
    text = _problem_text(tmp_path, f"{top}\nproperty: 1\ngoals: []\n"
                         + ("client: C\n" if top.startswith("currency") else "currency: USD\n"))
    assert top.split(": ", 1)[1].strip("[]") not in text, text


@pytest.mark.parametrize(("event", "secret"), [
    ("password=hunter2secret", "hunter2secret"),
    ("token: abc123secret", "abc123secret"),
    ("api_key=AbCdEf123456", "AbCdEf123456"),
    ("sk live 51H8abcdefghijklmnop", "sk_live_51H8abcdefghijklmnop"),
    ("google_sk_live_51H8abcdefghijklmnop", "51H8abcdefghijklmnop"),
    ("firebase_password=hunter2secret", "hunter2secret"),
])
def test_no_event_name_suggestion_is_built_from_a_hidden_secret(tmp_path: Path, event: str,
                                                                secret: str) -> None:
    """The suggestion (`e.g. password_hunter2secret`) must not undo the redaction."""
    messages = check_event_name(event)
    assert messages and not any(secret in m for m in messages), messages
    assert not any("(e.g." in m for m in messages), messages
    text = _problem_text(tmp_path, "client: C\nproperty: 1\ncurrency: USD\ngoals:\n"
                         f"  - event: '{event}'\n    tier: micro\n    value: 1\n")
    assert secret not in text and "hunter2" not in text, text


@pytest.mark.parametrize(("event", "hint"), [
    ("café visit", "(e.g. `cafe_visit`)"),
    ("google_sign_up", "(e.g. `sign_up`)"),
    ("newsletter-signup", "(e.g. `newsletter_signup`)"),
])
def test_suggestions_for_ordinary_names_are_kept(event: str, hint: str) -> None:
    assert any(hint in m for m in check_event_name(event))


def test_a_long_snake_case_event_name_is_quoted_as_written(tmp_path: Path) -> None:
    name = "downloaded_the_annual_report_pdf_version_2024"  # 45 characters: too long for GA
    text = _problem_text(tmp_path, "client: C\nproperty: 1\ncurrency: USD\ngoals:\n"
                         f"  - event: {name}\n    tier: micro\n    value: 1\n")
    assert f"event name `{name}` is 45 characters long" in text, text
