"""Redaction, by table: each credential shape goes and the text around it stays; ordinary text (code,
hashes, ids, URLs, prose, base64) comes through unchanged.

Credential-shaped fixtures are assembled from pieces, so secret scanners don't flag this file."""

from __future__ import annotations

import json

import pytest

from policy.redact import REDACTED, is_env_file, redact, redact_env_text, secret_values

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
SESSION = "IQoJb3JpZ2lu" + "X2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDxEXAMPLEsessionTOKEN0123456789+abc="
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PGP = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0bEXAMPLE\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c7+9z5Pad7O\n-----END RSA PRIVATE KEY-----"
R = REDACTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-ant-api03-abcdefghijkl used", f"key {R} used"),
        ("token " + "ghp_" + "a" * 36 + " expired", f"token {R} expired"),
        ("id AKIA" + "IOSFODNN7EXAMPLE, region", f"id {R}, region"),
        ("id ASIA" + "Y34FZKBOKMUTVV7A, region", f"id {R}, region"),
        # AWS secret access keys and session tokens, by the name before them
        (f"aws_secret_access_key={AWS_SECRET}\nregion=us-east-1", f"aws_secret_access_key={R}\nregion=us-east-1"),
        (f"AWS_SECRET_ACCESS_KEY: {AWS_SECRET}", f"AWS_SECRET_ACCESS_KEY: {R}"),
        (
            f'{{"SecretAccessKey": "{AWS_SECRET}", "Expiration": "2026"}}',
            f'{{"SecretAccessKey": "{R}", "Expiration": "2026"}}',
        ),
        (f"export MY_AWS_SECRET_ACCESS_KEY='{AWS_SECRET}'", f"export MY_AWS_SECRET_ACCESS_KEY='{R}'"),
        (f"aws_session_token = {SESSION}\n", f"aws_session_token = {R}\n"),
        (f'{{"SessionToken": "{SESSION}"}}', f'{{"SessionToken": "{R}"}}'),
        (f"got {SESSION} back", f"got {R} back"),
        ("got FwoGZXIvYXdz" + "EBYaDHhBTEXAMPLE" * 4 + " back", f"got {R} back"),
        # Slack
        *(
            (f"slack {prefix}-" + "1234567890-0987654321-AbCdEfGhIjKl" + " ok", f"slack {R} ok")
            for prefix in ("xoxb", "xoxp", "xoxa", "xoxr", "xoxs", "xapp")
        ),
        (
            "post to https://hooks.slack.com/services/" + "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX now",
            f"post to https://hooks.slack.com/services/{R} now",
        ),
        ("key=AIza" + "SyA1234567890abcdefghijklmnopqrstuv&q=1", f"key={R}&q=1"),
        ("stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc.", f"stripe {R}."),
        ("stripe rk_live_" + "51H8d2EXAMPLEabcdefgh,", f"stripe {R},"),
        (f"cookie session={JWT}; path=/", f"cookie session={R}; path=/"),
        (f"before\n{PGP}\nafter", f"before\n{R}\nafter"),
        (f"before\n{PEM}\nafter", f"before\n{R}\nafter"),
        (json.dumps({"key": PEM}), json.dumps({"key": R})),  # a log that escaped the newlines
        # passwords in URLs: scheme, user and host stay
        ("postgres://app:hunter2hunter2@db.internal:5432/app", f"postgres://app:{R}@db.internal:5432/app"),
        ("redis://:s3cr3t@cache:6379/0", f"redis://:{R}@cache:6379/0"),
        ("clone https://bot:p@ss@git.example.com/r.git done", f"clone https://bot:{R}@git.example.com/r.git done"),
        # Authorization, any scheme, in header text and in JSON or dict renderings
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nHost: x", f"Authorization: Basic {R}\r\nHost: x"),
        ("{'authorization': 'token abc', 'accept': '*/*'}", f"{{'authorization': 'token {R}', 'accept': '*/*'}}"),
        ('{"Authorization": "Bearer abc.def"}', f'{{"Authorization": "Bearer {R}"}}'),
        (
            'Authorization: Digest username="Mufasa", realm="t@h.com", nonce="dcd98b", response="6629fae4"\nnext',
            f"Authorization: Digest {R}\nnext",
        ),
        (
            '{"authorization": "Digest username=\\"Mufasa\\", response=\\"6629fae4\\""}',
            f'{{"authorization": "Digest {R}"}}',
        ),
        ("Proxy-Authorization: Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXag", f"Proxy-Authorization: Negotiate {R}"),
        ("authorization=0123456789abcdef0123 sent", f"authorization={R} sent"),
        ("auth failed for Bearer abcdefghijklmnopqrstuvwxyz012345", f"auth failed for {R}"),
    ],
)
def test_credential_shapes_are_redacted_and_the_text_around_them_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        'headers = {"Authorization": f"Bearer {token}"}',
        'request.headers["Authorization"] = "Basic " + credentials',
        "def login(authorization: str = Header(None)) -> str: ...",
        "authorization: Optional[str] = None",
        'token = self.headers.get("Authorization", "")',
        "curl -H 'Authorization: Bearer $GITHUB_TOKEN' https://api.github.com/user",
        "curl -H 'Authorization: Bearer <token>' https://api.github.com/user",
        "Send the Authorization header with every request; without it the server answers 401.",
        'aws_secret_access_key = os.environ["AWS_SECRET_ACCESS_KEY"]',
        "client = boto3.client('s3', aws_secret_access_key=awsSecretAccessKey)",
        "the session token expires in 3600 s",
        'url = f"postgres://{user}:{password}@{host}/db"',
        'dsn = "mysql://%s:%s@%s/app" % (user, password, host)',
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixes #12",
        "run 550e8400-e29b-41d4-a716-446655440000 approved",
        "https://github.com/org/repo/pull/12?tab=files#diff and https://example.com:8443/pkg@1.2.3",
        'KEY_PADDING = "c2VjcmV0IGtleSBwYWRkaW5nIGZvciB0ZXN0cw=="',
        '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChw'
        'GA60e6kgAAAABJRU5ErkJggg==">',
        "header = 'eyJhbGciOiJIUzI1NiJ9'  # one segment is not a token",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "xoxo-hugs and ASIAN-PACIFIC and sk_test_123",
        "",
    ],
)
def test_ordinary_text_comes_through_unchanged(text: str) -> None:
    assert redact(text) == text


MULTILINE = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumCPuM1uSCD\n"
    "x2Tn9WeN0sCQQD6aqpBzAcN8o1fT0B7i3ZGEFvPi/8t+sM2YC\n"
    "Ab=\n"
    "-----END RSA PRIVATE KEY-----\n"
)
ODD = 'pä"ss/wörd-1234'  # a quote, a slash and non-ASCII: every JSON escape at once
RING = json.dumps({"2026-11": "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"value {ODD} end", f"value {R} end"),
        (f"value {json.dumps(ODD)} end", f'value "{R}" end'),  # \" and \u00e4
        (f"value {json.dumps(ODD, ensure_ascii=False)} end", f'value "{R}" end'),
        ('value "p\\u00E4\\"ss\\/w\\u00F6rd-1234" end', f'value "{R}" end'),  # upper-case hex, \/
        # each long line of a multi-line secret, wherever it turns up alone
        ("line: MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumCPuM1uSCD", f"line: {R}"),
        ("x2Tn9WeN0sCQQD6aqpBzAcN8o1fT0B7i3ZGEFvPi\\/8t+sM2YC split", f"{R} split"),
        (  # the body of the key, JSON-escaped, without its armor lines (a line under 16 characters stays)
            '"MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumCPuM1uSCD\\nx2Tn9WeN0sCQQD6aqpBzAcN8o1fT0B7i3ZGEFvPi\\/8t+sM2YC\\nAb="',
            f'"{R}\\n{R}\\nAb="',
        ),
        # a string inside a JSON secret (the codec key ring)
        ("key q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA= leaked", f"key {R} leaked"),
        ("the armor line -----END RSA PRIVATE KEY----- alone is public", None),
    ],
)
def test_known_secrets_are_caught_escaped_and_line_by_line(text: str, expected: str | None) -> None:
    secrets = secret_values({"GITHUB_APP_PRIVATE_KEY": MULTILINE, "DB_PASSWORD": ODD, "FORGEFLOW_CODEC_KEYS": RING})
    assert redact(text, secrets) == (text if expected is None else expected)


def test_secret_values_are_the_secret_named_variables_longest_first() -> None:
    env = {"GITHUB_TOKEN": "t" * 40, "API_KEY": "k" * 20, "HOME": "/home/someone", "SHORT_TOKEN": "1"}
    assert secret_values(env, extra=["e" * 30, None]) == ["t" * 40, "e" * 30, "k" * 20]


ENV_FILE = """\
# database
DB_PASSWORD=hunter2
export STRIPE_KEY="sk_live_abc" # live
EMPTY=

  API_URL = https://api.example.com
PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA1c7+9z5Pad7O
-----END RSA PRIVATE KEY-----"
SINGLE='it''s'
ESCAPED="a \\" quote"
NAME: value
stray continuation of something
AFTER=1
"""

ENV_REDACTED = f"""\
# database
DB_PASSWORD={R}
export STRIPE_KEY={R}
EMPTY={R}

  API_URL ={R}
PRIVATE_KEY={R}
SINGLE={R}
ESCAPED={R}
NAME:{R}
{R}
AFTER={R}
"""


def test_env_files_keep_names_comments_and_blank_lines_only() -> None:
    assert redact_env_text(ENV_FILE) == ENV_REDACTED


def test_env_files_keep_their_line_endings() -> None:
    assert redact_env_text("A=1\r\n# c\r\nB='x'") == f"A={R}\r\n# c\r\nB={R}"


@pytest.mark.parametrize(
    ("path", "env_file"),
    [(".env", True), ("config/.env.production", True), ("deploy/prod.env", True), (".envrc", True),
     ("src/env.py", False), ("docs/environment.md", False), (".envoy.yaml", False)],
)  # fmt: skip
def test_is_env_file(path: str, env_file: bool) -> None:
    assert is_env_file(path) is env_file
