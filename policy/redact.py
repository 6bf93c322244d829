"""Take secrets out of text before it is written anywhere (logs, span attributes, what a model is
shown). Pure.

Two nets. The exact values of the worker's secrets (API keys, tokens, the App key), also as they
appear once JSON-escaped or, for a multi-line secret such as a PEM key, line by line. And the shapes
credentials have whether or not we know them: provider keys and tokens, JWTs, private-key blocks,
`Authorization` values, passwords in URLs, and AWS secrets by the name written before them. Where a
shape has a harmless part that says what was there (a header or variable name, a URL's user and
host), that part is kept. `redact_env_text` hides every value of a dotenv file and keeps its names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would redact ordinary words
MIN_LINE_LENGTH = 16  # a multi-line secret's lines hidden one by one; shorter ones are too common
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE)", re.IGNORECASE)
_ARMOR = re.compile(r"-----(?:BEGIN|END) [A-Z0-9 ]+-----")  # a PEM line that names the block, not secret

# Blocks first: whatever else they contain goes with them.
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|$)"
)

# `Authorization` (or Proxy-) in header text (`Authorization: Basic dXNl…`) and in JSON or dict
# renderings (`'authorization': 'token abc'`); the scheme word stays. The value must look like
# credentials (token68, or Digest-style params), so code (`f"Bearer {token}"`, `"Bearer " + t`,
# `authorization: str = Header()`) and placeholders (`$TOKEN`, `<token>`) come through unchanged.
_TOKEN68 = r"[A-Za-z0-9._~+/\-]+=*"
_PARAM = r"""[\w-]+=(?:"(?:\\.|[^"\\])*"|\\"(?:\\.|[^"\\])*?\\"|[^\s,"'\\]+)"""
AUTHORIZATION = re.compile(
    r"(?P<keep>(?i:\b(?:proxy-)?authorization)[\"']?[ \t]*[:=][ \t]*[\"']?)"
    rf"(?:(?P<scheme>[A-Za-z][\w.\-]*[ \t]+)(?:{_PARAM}(?:\s*,\s*{_PARAM})*|{_TOKEN68})|[A-Za-z0-9._~+/\-]{{16,}}=*)"
)

# AWS secret access keys and session tokens by the name before them: alone they look like any
# 40-character base64 (or a git SHA), so the name is what tells.
AWS_NAMED_SECRET = re.compile(
    r"(?P<keep>(?i:(?:aws_?)?(?:secret_?access_?key|session_?token|security_?token)|x-amz-security-token)"
    r"[\"']?\s*[:=]\s*[\"']?)(?=[A-Za-z]*[0-9/+])[A-Za-z0-9/+]{16,}=*"  # a digit, / or +: not an identifier
)

# `scheme://user:password@host`: the password goes. Not `{password}`, `$PASSWORD`, `%s`: that is code.
URL_PASSWORD = re.compile(
    r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/?#@\"'<>]{0,256}:)(?![{$%])"  # bounded: linear time
    r"[^\s/?#\"'<>]+(?=@[^\s/?#@\"'<>]*(?:[\s/?#\"'<>]|$))"
)

SLACK_WEBHOOK = re.compile(r"(?P<keep>https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/\-]+")

TOKEN_SHAPES = re.compile(
    "|".join(
        [
            r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic
            r"sk-[A-Za-z0-9_\-]{20,}",  # OpenAI-style keys
            r"pplx-[A-Za-z0-9]{16,}",  # Perplexity
            r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{20,}",
            r"AKIA[0-9A-Z]{16}",  # AWS access key id
            r"(?<![A-Z0-9])ASIA[0-9A-Z]{16}(?![A-Z0-9])",  # AWS temporary access key id
            r"(?:FwoGZXIvYXdz|FQoGZXIvYXdz|IQoJb3JpZ2lu)[A-Za-z0-9/+]{40,}=*",  # AWS session tokens
            r"\bxox[abeprs]-[A-Za-z0-9\-]{10,}",  # Slack bot, user, app, refresh... tokens
            r"\bxapp-[A-Za-z0-9\-]{10,}",  # Slack app-level tokens
            r"AIza[0-9A-Za-z_\-]{35}",  # Google API keys
            r"\b[sr]k_live_[0-9A-Za-z]{10,}",  # Stripe live secret and restricted keys
            r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",  # JWTs
            r"(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*",
        ]
    )
)

# (pattern, replacement), in order: a replacement keeps the pattern's `keep` group (and `scheme`).
RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (PRIVATE_KEY_BLOCK, REDACTED),
    (AUTHORIZATION, rf"\g<keep>\g<scheme>{REDACTED}"),
    (AWS_NAMED_SECRET, rf"\g<keep>{REDACTED}"),
    (URL_PASSWORD, rf"\g<keep>{REDACTED}"),
    (SLACK_WEBHOOK, rf"\g<keep>{REDACTED}"),
    (TOKEN_SHAPES, REDACTED),
)


def secret_values(env: Mapping[str, str], extra: Iterable[str | None] = ()) -> list[str]:
    """The values worth hiding: variables whose names say secret, plus `extra`; longest first."""
    found = {v for k, v in env.items() if SECRET_NAME.search(k)} | {v for v in extra if v}
    return sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for form in _forms_of(tuple(secrets)):  # longest first, so a secret containing another goes whole
        if form in text:
            text = text.replace(form, REDACTED)
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=8)
def _forms_of(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Every form of every secret the exact-value net looks for, longest first (cached: the same
    list is passed for every log line)."""
    forms = {form for secret in secrets for form in _forms(secret)}
    return tuple(sorted(forms, key=len, reverse=True))


def _forms(secret: str) -> set[str]:
    """A secret, its JSON-escaped spellings, and its parts that leak alone: each long line of a
    multi-line secret, each string in a JSON one (the codec key ring)."""
    parts = {secret, *_long_lines(secret), *_json_strings(secret)}
    return {form for part in parts for form in _escaped(part)}


def _escaped(value: str) -> set[str]:
    """How a JSON encoder may have written `value` inside a string: \\n and \\" escapes, non-ASCII
    as \\uXXXX in either case, and `/` as `\\/` (PHP's and some Java encoders' habit)."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group()[2:].upper(), f) for f in forms}
    forms |= {f.replace("/", "\\/") for f in forms}
    return forms


def _long_lines(secret: str) -> list[str]:
    lines = [line.strip() for line in secret.splitlines()]
    if len(lines) < 2:
        return []
    return [line for line in lines if len(line) >= MIN_LINE_LENGTH and not _ARMOR.fullmatch(line)]


def _json_strings(secret: str) -> list[str]:
    if not secret.lstrip().startswith("{"):
        return []
    try:
        parsed = json.loads(secret)
    except ValueError:
        return []
    if not isinstance(parsed, dict):
        return []
    return [v for v in parsed.values() if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH]


# --- dotenv files -----------------------------------------------------------------------------------


def is_env_file(path: str) -> bool:
    """A dotenv-style file of secrets: `.env`, `.env.local`, `prod.env`, direnv's `.envrc`."""
    name = path.rsplit("/", 1)[-1].lower()
    return name in (".env", ".envrc") or name.startswith(".env.") or name.endswith(".env")


_ASSIGNMENT = re.compile(r"(?P<name>\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.\-]*\s*(?:=|:(?=\s|$)))\s*(?P<value>.*)")
_CLOSED = {'"': re.compile(r'(?:\\.|[^"\\])*"'), "'": re.compile(r"[^']*'"), "`": re.compile(r"[^`]*`")}


def redact_env_text(text: str) -> str:
    """The content of a dotenv file (.env, .env.local, prod.env) with every value hidden: each
    `NAME=value` or `export NAME=value` line becomes `NAME=[redacted]`, so a reader still sees which
    variables exist. Comments and blank lines stay; the further lines of a multi-line quoted value
    go; any other line, which in such a file can only be part of a value, becomes `[redacted]`."""
    out: list[str] = []
    open_quote: str | None = None
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if open_quote is not None:  # inside a multi-line value, such as a PEM key in double quotes
            if _CLOSED[open_quote].match(body):
                open_quote = None
            continue
        redacted, open_quote = _env_line(body)
        out.append(redacted + line[len(body) :])
    return "".join(out)


def _env_line(line: str) -> tuple[str, str | None]:
    """The line redacted, and the quote its value leaves open (None if it closes or is unquoted)."""
    if not line.strip() or line.lstrip().startswith("#"):
        return line, None
    match = _ASSIGNMENT.fullmatch(line)
    if match is None:
        return REDACTED, None
    value = match["value"]
    quote = value[:1] if value[:1] in _CLOSED else None
    still_open = quote is not None and _CLOSED[quote].match(value[1:]) is None
    return match["name"] + REDACTED, quote if still_open else None
