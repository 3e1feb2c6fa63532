#!/usr/bin/python3
"""Scalekit-compatible OpenID Connect provider for the demo and the integration tests.

It serves the Scalekit paths (discovery, /oauth/authorize, /oauth/token, /keys,
/userinfo, /oidc/logout) for one confidential client and three fixed test users, and a
JSON control API under /_dev/ that records requests and switches on misbehaviour modes.
It keeps all state in memory and listens on a loopback address only.

Run it with Debian's /usr/bin/python3, which has python3-cryptography:

    /usr/bin/python3 tools/devidp/scalekit_dev_idp.py --port 9000 \\
        --client-id skc_dev --client-secret dev-secret

NOTE: this is a test double. It trusts every caller of /_dev/ and lets anyone who can
reach the port sign in as any test user, so never expose it beyond loopback.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

logger = logging.getLogger("scalekit-dev-idp")

PAGE_TITLE = "Scalekit dev identity provider - sign in"

# Authorization codes and login transactions (the state between the login page and the
# form post) expire after 10 minutes.
CODE_LIFETIME_SECONDS = 600
TRANSACTION_LIFETIME_SECONDS = 600

MAX_BODY_BYTES = 1024 * 1024
MAX_QUERY_FIELDS = 100
# Oldest recordings are dropped past this number so that a long demo run keeps bounded
# memory. /_dev/counts is not affected by the cap.
MAX_RECORDED_REQUESTS = 10000
# Maximum idle time in seconds of a connection before its handler thread closes it.
SOCKET_TIMEOUT_SECONDS = 30

ORGANIZATIONS = {
    "org_acme": {"domain": "acme.test", "connection_id": "conn_acme_okta"},
    "org_globex": {"domain": "globex.test", "connection_id": "conn_globex_entra"},
}

# Login names in the order the login page lists them.
USERS = {
    "alice": {
        "sub": "usr_acme_alice",
        "email": "alice@acme.test",
        "email_verified": True,
        "name": "Alice Archer",
        "given_name": "Alice",
        "family_name": "Archer",
        "oid": "org_acme",
        "amr": ["conn_acme_okta"],
    },
    "bob": {
        # The ";" and "|" in this sub let tests check that relying parties handle a
        # sub that is not a plain identifier.
        "sub": "conn_acme_okta;00u-bob|42",
        "email": "bob@acme.test",
        "email_verified": True,
        "name": "Bob Baker",
        "given_name": "Bob",
        "family_name": "Baker",
        "oid": "org_acme",
        "amr": ["conn_acme_okta"],
    },
    "carol": {
        "sub": "usr_globex_carol",
        "email": "carol@globex.test",
        "email_verified": True,
        "name": "Carol Chen",
        "given_name": "Carol",
        "family_name": "Chen",
        "oid": "org_globex",
        "amr": ["conn_globex_entra"],
    },
}

ID_TOKEN_MODES = (
    "bad_signature",
    "wrong_aud",
    "wrong_iss",
    "expired",
    "wrong_nonce",
    "no_sub",
    "multi_aud_no_azp",
    "alg_none",
    "hs256",
    "unknown_kid",
    "future_iat",
)

SCOPES_SUPPORTED = ["openid", "email", "profile"]
CLAIMS_SUPPORTED = [
    "iss",
    "aud",
    "azp",
    "exp",
    "iat",
    "nonce",
    "sub",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "oid",
    "sid",
    "client_id",
    "amr",
    "at_hash",
]

# RFC 7636 section 4.1: a code verifier or challenge is 43 to 128 unreserved characters.
PKCE_VALUE_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class RequestError(Exception):
    """Invalid client input, sent back as a 400 (or the given status) error response."""

    def __init__(self, description, status=400, error="invalid_request", headers=None):
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error
        self.headers = headers or {}


# --- JSON Web Tokens ----------------------------------------------------------------


def base64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def base64url_uint(value):
    """Encode a positive integer as the big-endian base64url string that JWK uses."""
    return base64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def compact_json(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def random_hex(byte_count=8):
    return secrets.token_hex(byte_count)


class SigningKey:
    """RSA 2048 key pair with its key id, made in memory and never written to disk."""

    def __init__(self):
        self.private_key = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self.kid = "snk_" + random_hex(12)

    def public_jwk(self):
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": base64url_uint(numbers.n),
            "e": base64url_uint(numbers.e),
        }

    def sign_rs256(self, signing_input):
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def encode_jwt(header, claims, sign):
    """Build a compact JWS. `sign` maps the signing input bytes to the signature bytes."""
    signing_input = (
        base64url_encode(compact_json(header))
        + "."
        + base64url_encode(compact_json(claims))
    ).encode("ascii")
    signature = sign(signing_input)
    return signing_input.decode("ascii") + "." + base64url_encode(signature)


def access_token_hash(access_token):
    """Compute at_hash: the left half of SHA-256 of the access token, base64url-encoded."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64url_encode(digest[: len(digest) // 2])


def pkce_s256_challenge(code_verifier):
    return base64url_encode(hashlib.sha256(code_verifier.encode("ascii")).digest())


# --- URIs and routing ---------------------------------------------------------------


def add_query_parameters(uri, parameters):
    """Append parameters to a URI that may already have a query."""
    parts = urllib.parse.urlsplit(uri)
    extra = urllib.parse.urlencode(parameters)
    query = parts.query + "&" + extra if parts.query else extra
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def parse_absolute_http_uri(uri):
    """Return urlsplit(uri), or None unless uri is an absolute http(s) URI without a fragment."""
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.fragment or "#" in uri or parts.username is not None:
        return None
    return parts


def origin_of(parts):
    return (parts.scheme, parts.hostname.lower(), parts.port)


def select_users(params):
    """Return (usernames, organization_id) for the login page, or raise RequestError.

    The highest-precedence selector decides the organization: connection_id, then
    organization_id, then domain, then the domain part of login_hint. A login_hint whose
    domain has no organization lists every user, because a hint is only a suggestion.
    A login_hint that names a listed user's email moves that user first.
    """
    connection_id = params.get("connection_id", "")
    organization_id = params.get("organization_id", "")
    domain = params.get("domain", "")
    login_hint = params.get("login_hint", "").strip()

    selected = None
    if connection_id:
        selected = next(
            (
                org
                for org, info in ORGANIZATIONS.items()
                if info["connection_id"] == connection_id
            ),
            None,
        )
        if selected is None:
            raise RequestError(
                f"connection_id {connection_id!r} is not a known connection",
                error="invalid_connection_id",
            )
    elif organization_id:
        if organization_id not in ORGANIZATIONS:
            raise RequestError(
                f"organization_id {organization_id!r} is not a known organization",
                error="invalid_organization_id",
            )
        selected = organization_id
    elif domain:
        selected = next(
            (
                org
                for org, info in ORGANIZATIONS.items()
                if info["domain"] == domain.lower()
            ),
            None,
        )
        if selected is None:
            raise RequestError(
                f"domain {domain!r} does not belong to any organization",
                error="domain_not_found",
            )
    elif "@" in login_hint:
        hint_domain = login_hint.rsplit("@", 1)[1].lower()
        selected = next(
            (
                org
                for org, info in ORGANIZATIONS.items()
                if info["domain"] == hint_domain
            ),
            None,
        )

    usernames = [
        name
        for name, user in USERS.items()
        if selected is None or user["oid"] == selected
    ]
    hinted = [name for name in usernames if USERS[name]["email"] == login_hint.lower()]
    if hinted:
        usernames.remove(hinted[0])
        usernames.insert(0, hinted[0])
    return usernames, selected


# --- Provider state -----------------------------------------------------------------


class ProviderState:
    """Configuration, keys, pending logins, codes, recordings and misbehaviour.

    Handler threads share one instance, so every access to the mutable parts goes
    through a method that takes `lock`.
    """

    def __init__(self, config):
        self.config = config
        self.issuer = config.issuer
        self.endpoint_base = config.issuer.rstrip("/")
        self.path_prefix = urllib.parse.urlsplit(self.endpoint_base).path
        self.lock = threading.Lock()
        self.signing_key = SigningKey()
        # Signs "unknown_kid" tokens. Made on first use because key generation is slow.
        self.stray_key = None
        self.transactions = {}
        self.codes = {}
        self.access_tokens = {}
        self.recorded_requests = deque(maxlen=MAX_RECORDED_REQUESTS)
        self.request_counts = {}
        self.misbehaviour = {}

    # Redirect URIs

    def is_allowed_redirect_uri(self, uri):
        if self.config.redirect_uris:
            return uri in self.config.redirect_uris
        parts = parse_absolute_http_uri(uri)
        return parts is not None and parts.hostname.lower() in (
            "127.0.0.1",
            "localhost",
        )

    def is_allowed_logout_redirect_uri(self, uri):
        """Accept loopback http(s) URIs, and any URI on the origin of a registered redirect URI."""
        parts = parse_absolute_http_uri(uri)
        if parts is None:
            return False
        if parts.hostname.lower() in ("127.0.0.1", "localhost"):
            return True
        for registered in self.config.redirect_uris:
            registered_parts = parse_absolute_http_uri(registered)
            if registered_parts is not None and origin_of(
                registered_parts
            ) == origin_of(parts):
                return True
        return False

    # Recordings and misbehaviour

    def record_request(self, entry):
        with self.lock:
            self.recorded_requests.append(entry)
            self.request_counts[entry["path"]] = (
                self.request_counts.get(entry["path"], 0) + 1
            )

    def snapshot_recordings(self):
        with self.lock:
            return list(self.recorded_requests), dict(self.request_counts)

    def reset(self):
        with self.lock:
            self.recorded_requests.clear()
            self.request_counts.clear()
            self.misbehaviour = {}

    def current_misbehaviour(self):
        with self.lock:
            return json.loads(json.dumps(self.misbehaviour))

    def merge_misbehaviour(self, changes):
        """Validate all changes first, so that one invalid key leaves the state unchanged."""
        if not isinstance(changes, dict):
            raise RequestError("the request body must be a JSON object")
        for key, value in changes.items():
            validate_misbehaviour(key, value)
        with self.lock:
            for key, value in changes.items():
                if value is None:
                    self.misbehaviour.pop(key, None)
                else:
                    self.misbehaviour[key] = value
            return json.loads(json.dumps(self.misbehaviour))

    def rotate_keys(self):
        new_key = SigningKey()
        with self.lock:
            self.signing_key = new_key
        return new_key.kid

    def current_signing_key(self):
        with self.lock:
            return self.signing_key

    def get_stray_key(self):
        with self.lock:
            if self.stray_key is None:
                self.stray_key = SigningKey()
            return self.stray_key

    # Login transactions, codes and access tokens

    def create_transaction(self, request):
        txn = secrets.token_urlsafe(24)
        now = time.time()
        with self.lock:
            prune_expired(self.transactions, now)
            self.transactions[txn] = dict(
                request, expires_at=now + TRANSACTION_LIFETIME_SECONDS
            )
        return txn

    def complete_transaction(self, txn, username):
        """Consume the transaction and return (redirect_uri, state, code).

        An invalid user leaves the transaction in place so that the page can be used again.
        """
        now = time.time()
        with self.lock:
            prune_expired(self.transactions, now)
            request = self.transactions.get(txn)
            if request is None:
                raise RequestError(
                    "the sign-in transaction is unknown or expired; start again from the application"
                )
            if username not in request["usernames"]:
                raise RequestError(
                    f"user {username!r} is not offered on this sign-in page"
                )
            del self.transactions[txn]

            code = secrets.token_urlsafe(32)
            prune_expired(self.codes, now)
            self.codes[code] = {
                "client_id": request["client_id"],
                "redirect_uri": request["redirect_uri"],
                "code_challenge": request["code_challenge"],
                "nonce": request["nonce"],
                "username": username,
                "sid": "ses_" + random_hex(12),
                "expires_at": now + CODE_LIFETIME_SECONDS,
            }
        return request["redirect_uri"], request["state"], code

    def redeem_code(self, code, client_id, redirect_uri, code_verifier):
        """Consume the code and return its record, or raise invalid_grant.

        The code is spent on the first attempt even when a later check fails, so that a
        client cannot find the verifier or the redirect URI by retrying.
        """
        now = time.time()
        with self.lock:
            prune_expired(self.codes, now)
            record = self.codes.pop(code, None)
        if record is None:
            raise RequestError(
                "the authorization code is invalid, expired or already used",
                error="invalid_grant",
            )
        if record["client_id"] != client_id:
            raise RequestError(
                "the authorization code was issued to another client",
                error="invalid_grant",
            )
        if redirect_uri != record["redirect_uri"]:
            raise RequestError(
                "redirect_uri does not match the one in the authorization request",
                error="invalid_grant",
            )
        if not code_verifier:
            raise RequestError("code_verifier is missing", error="invalid_grant")
        if not PKCE_VALUE_PATTERN.match(code_verifier):
            raise RequestError(
                "code_verifier must be 43 to 128 unreserved characters",
                error="invalid_grant",
            )
        if not hmac.compare_digest(
            pkce_s256_challenge(code_verifier), record["code_challenge"]
        ):
            raise RequestError(
                "code_verifier does not match the S256 code_challenge",
                error="invalid_grant",
            )
        return record

    def store_access_token(self, access_token, username, expires_at):
        with self.lock:
            prune_expired(self.access_tokens, time.time())
            self.access_tokens[access_token] = {
                "username": username,
                "expires_at": expires_at,
            }

    def lookup_access_token(self, access_token):
        with self.lock:
            record = self.access_tokens.get(access_token)
        if record is None or record["expires_at"] <= time.time():
            return None
        return record["username"]


def prune_expired(records, now):
    for key in [key for key, record in records.items() if record["expires_at"] <= now]:
        del records[key]


def validate_misbehaviour(key, value):
    """Raise RequestError unless value is valid for the misbehaviour key. None clears the key."""
    if value is None and key in (
        "id_token",
        "authorize_error",
        "token_status",
        "token_body",
        "discovery_issuer",
    ):
        return
    if key == "id_token":
        if value not in ID_TOKEN_MODES:
            raise RequestError(
                f"id_token must be one of {', '.join(ID_TOKEN_MODES)}; got {value!r}"
            )
    elif key == "authorize_error":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("error"), str)
            or not value["error"]
        ):
            raise RequestError(
                'authorize_error must be an object with a non-empty string "error"'
            )
        unknown = set(value) - {"error", "error_description"}
        if unknown:
            raise RequestError(
                f"authorize_error has unknown fields: {', '.join(sorted(unknown))}"
            )
        if not isinstance(value.get("error_description", ""), str):
            raise RequestError("authorize_error.error_description must be a string")
    elif key == "token_status":
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 100 <= value <= 599
        ):
            raise RequestError(
                f"token_status must be an integer HTTP status from 100 to 599; got {value!r}"
            )
    elif key in ("token_body", "discovery_issuer"):
        if not isinstance(value, str):
            raise RequestError(f"{key} must be a string")
    else:
        raise RequestError(
            f"unknown misbehaviour {key!r}; expected id_token, authorize_error, "
            "token_status, token_body or discovery_issuer"
        )


# --- Tokens -------------------------------------------------------------------------


def build_access_token(state, client_id, user, sid, now):
    claims = {
        "iss": state.issuer,
        "sub": user["sub"],
        "aud": [client_id],
        "client_id": client_id,
        "oid": user["oid"],
        "sid": sid,
        "iat": now,
        "nbf": now,
        "exp": now + state.config.token_lifetime,
        "jti": "tkn_" + random_hex(12),
    }
    key = state.current_signing_key()
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    return encode_jwt(header, claims, key.sign_rs256)


def build_id_token(state, client_id, code_record, access_token, now, mode):
    """Build the ID token, broken in the way the "id_token" misbehaviour mode names."""
    user = USERS[code_record["username"]]
    lifetime = state.config.token_lifetime
    claims = {
        "iss": state.issuer,
        "aud": [client_id],
        "azp": client_id,
        "exp": now + lifetime,
        "iat": now,
    }
    if code_record["nonce"] is not None:
        claims["nonce"] = code_record["nonce"]
    claims.update(
        {
            "sub": user["sub"],
            "email": user["email"],
            "email_verified": user["email_verified"],
            "name": user["name"],
            "given_name": user["given_name"],
            "family_name": user["family_name"],
            "oid": user["oid"],
            "sid": code_record["sid"],
            "client_id": client_id,
            "amr": list(user["amr"]),
            "at_hash": access_token_hash(access_token),
        }
    )

    if mode == "wrong_aud":
        claims["aud"] = ["skc_not_this_client"]
    elif mode == "wrong_iss":
        claims["iss"] = "https://wrong-issuer.invalid"
    elif mode == "expired":
        # exp is one hour ago, so only a clock skew allowance of an hour or more accepts it.
        claims["iat"] = now - lifetime - 3600
        claims["exp"] = now - 3600
    elif mode == "wrong_nonce":
        claims["nonce"] = "wrong-nonce-" + random_hex()
    elif mode == "no_sub":
        del claims["sub"]
    elif mode == "multi_aud_no_azp":
        claims["aud"] = [client_id, "other"]
        del claims["azp"]
    elif mode == "future_iat":
        claims["iat"] = now + 3600
        claims["exp"] = now + 3600 + lifetime

    key = state.current_signing_key()
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    if mode == "alg_none":
        return encode_jwt(
            {"alg": "none", "typ": "JWT"}, claims, lambda signing_input: b""
        )
    if mode == "hs256":
        # The kid still names the RSA key, so only a client that checks alg against
        # RS256 (rather than trusting the header) rejects the token.
        secret = state.config.client_secret.encode("utf-8")
        header["alg"] = "HS256"
        return encode_jwt(
            header, claims, lambda data: hmac.new(secret, data, hashlib.sha256).digest()
        )
    if mode == "unknown_kid":
        stray_key = state.get_stray_key()
        header["kid"] = stray_key.kid
        return encode_jwt(header, claims, stray_key.sign_rs256)
    if mode == "bad_signature":

        def sign_then_corrupt(signing_input):
            signature = bytearray(key.sign_rs256(signing_input))
            for index in (0, len(signature) // 2, len(signature) - 1):
                signature[index] ^= 0x5A
            return bytes(signature)

        return encode_jwt(header, claims, sign_then_corrupt)
    return encode_jwt(header, claims, key.sign_rs256)


# --- HTML ---------------------------------------------------------------------------

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 28rem; margin: 3rem auto; background: #fff; padding: 1.5rem 2rem;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.12); }
h1 { font-size: 1.3rem; margin-top: 0; }
p.context { color: #5a6272; font-size: 0.9rem; }
form { margin: 0.6rem 0; }
button { width: 100%; text-align: left; padding: 0.7rem 0.9rem; border: 1px solid #c9ced8;
         border-radius: 6px; background: #fff; cursor: pointer; font: inherit; }
button:hover, button:focus { border-color: #3b5bdb; background: #eef2ff; }
form.preselected button { border-color: #3b5bdb; border-width: 2px; }
.name { display: block; font-weight: 600; }
.detail { display: block; color: #5a6272; font-size: 0.85rem; }
"""


def render_page(title, body_html):
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{PAGE_STYLE}</style>\n"
        f"</head>\n<body>\n<main>\n{body_html}</main>\n</body>\n</html>\n"
    )


def render_login_page(
    login_action, txn, client_id, usernames, organization_id, login_hint
):
    escape = html.escape
    lines = [f"<h1>Sign in to {escape(client_id)}</h1>"]
    if organization_id is not None:
        domain = ORGANIZATIONS[organization_id]["domain"]
        lines.append(
            f'<p class="context">Organization {escape(organization_id)} ({escape(domain)})</p>'
        )
    if login_hint:
        lines.append(f'<p class="context">Sign-in hint: {escape(login_hint)}</p>')
    lines.append('<p class="context">Choose a test user.</p>')

    for position, username in enumerate(usernames):
        user = USERS[username]
        preselected = position == 0 and user["email"] == login_hint.strip().lower()
        form_class = ' class="preselected"' if preselected else ""
        autofocus = " autofocus" if preselected else ""
        lines.extend(
            [
                f'<form method="post" action="{escape(login_action)}"{form_class}>',
                f'<input type="hidden" name="txn" value="{escape(txn)}">',
                f'<input type="hidden" name="user" value="{escape(username)}">',
                f'<button type="submit"{autofocus}>'
                f'<span class="name">{escape(user["name"])}</span>'
                f'<span class="detail">{escape(user["email"])}</span>'
                f'<span class="detail">{escape(user["oid"])}</span>'
                "</button>",
                "</form>",
            ]
        )
    return render_page(PAGE_TITLE, "\n".join(lines) + "\n")


def render_message_page(title, heading, message):
    body = f"<h1>{html.escape(heading)}</h1>\n<p>{html.escape(message)}</p>\n"
    return render_page(title, body)


# --- HTTP handler -------------------------------------------------------------------


class Response:
    def __init__(self, status, body=b"", content_type="application/json", headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
        # Error and description for the request log line. It must never contain a
        # secret, code or token.
        self.log_detail = None


def json_response(status, value, headers=None):
    return Response(status, compact_json(value), "application/json", headers)


def json_error(status, error, description, headers=None):
    response = json_response(
        status, {"error": error, "error_description": description}, headers
    )
    response.log_detail = f"{error}: {description}"
    return response


def html_response(status, page, headers=None):
    return Response(status, page.encode("utf-8"), "text/html; charset=utf-8", headers)


def html_error(status, description):
    page = render_message_page(
        "Scalekit dev identity provider - error",
        "Sign-in request rejected",
        description,
    )
    response = html_response(status, page)
    response.log_detail = description
    return response


def redirect(location):
    return Response(302, b"", "text/plain; charset=utf-8", {"Location": location})


def parse_query_string(query):
    """Return (first value of each field, names given more than once), or raise RequestError."""
    try:
        pairs = urllib.parse.parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_QUERY_FIELDS,
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(
            f"the query or form is not valid URL encoding: {error}"
        ) from None
    values = {}
    duplicates = set()
    for name, value in pairs:
        if name in values:
            duplicates.add(name)
        else:
            values[name] = value
    return values, duplicates


class DevIdpHandler(BaseHTTPRequestHandler):
    server_version = "scalekit-dev-idp/1.0"
    # The http.server default, HTTP/0.9, sends errors for malformed request lines
    # without a status line or headers.
    default_request_version = "HTTP/1.0"
    timeout = SOCKET_TIMEOUT_SECONDS
    state = None  # ProviderState, set by make_server

    # Dispatch

    def do_GET(self):
        self.handle_request()

    def do_HEAD(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def do_PUT(self):
        self.handle_request()

    def do_DELETE(self):
        self.handle_request()

    def do_PATCH(self):
        self.handle_request()

    def do_OPTIONS(self):
        self.handle_request()

    def handle_request(self):
        path, _, self.raw_query = self.path.partition("?")
        self.query_values = None
        self.form_values = None
        self.body = b""
        try:
            body_error = None
            try:
                self.body = self.read_body()
            except RequestError as error:
                body_error = error

            if not path.startswith("/_dev/") and path != "/_dev":
                self.record(path)

            if body_error is not None:
                response = json_error(
                    body_error.status, body_error.error, body_error.description
                )
            else:
                response = self.route(path)
        except Exception:  # noqa: BLE001 - the server must survive any bad request
            logger.exception("internal error while handling %s %s", self.command, path)
            response = json_error(
                500, "server_error", "internal error in the dev identity provider"
            )
        try:
            self.send(response)
        except (BrokenPipeError, ConnectionResetError):
            logger.warning(
                "client closed the connection before the response to %s %s",
                self.command,
                path,
            )

    def route(self, path):
        state = self.state
        if path == "/_dev" or path.startswith("/_dev/"):
            return self.route_control(path)

        prefix = state.path_prefix
        if prefix:
            if not path.startswith(prefix + "/"):
                return json_error(404, "not_found", f"no endpoint at {path}")
            path = path[len(prefix) :]

        routes = {
            "/.well-known/openid-configuration": {"GET": self.get_discovery},
            "/oauth/authorize": {"GET": self.get_authorize},
            "/oauth/authorize/login": {"POST": self.post_login},
            "/oauth/token": {"POST": self.post_token},
            "/keys": {"GET": self.get_keys},
            "/userinfo": {"GET": self.get_userinfo, "POST": self.get_userinfo},
            "/oidc/logout": {"GET": self.get_logout},
        }
        return self.dispatch(routes, path)

    def route_control(self, path):
        routes = {
            "/_dev/requests": {"GET": self.get_recorded_requests},
            "/_dev/counts": {"GET": self.get_request_counts},
            "/_dev/reset": {"POST": self.post_reset},
            "/_dev/misbehave": {
                "GET": self.get_misbehaviour,
                "POST": self.post_misbehave,
            },
            "/_dev/rotate-keys": {"POST": self.post_rotate_keys},
            "/_dev/idp-initiated": {"POST": self.post_idp_initiated},
        }
        return self.dispatch(routes, path)

    def dispatch(self, routes, path):
        methods = routes.get(path)
        if methods is None:
            return json_error(404, "not_found", f"no endpoint at {path}")
        method = "GET" if self.command == "HEAD" else self.command
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            return json_error(
                405,
                "method_not_allowed",
                f"{self.command} is not allowed on {path}; use {allowed}",
                {"Allow": allowed},
            )
        try:
            return handler()
        except RequestError as error:
            return json_error(
                error.status, error.error, error.description, error.headers
            )

    # Request parsing

    def read_body(self):
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(
                "chunked request bodies are not supported; send Content-Length",
                status=411,
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise RequestError(
                f"Content-Length {length_header!r} is not a number"
            ) from None
        if length < 0:
            raise RequestError(f"Content-Length {length} is negative")
        if length > MAX_BODY_BYTES:
            raise RequestError(
                f"request body exceeds {MAX_BODY_BYTES} bytes", status=413
            )
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestError("request body is shorter than Content-Length")
        return body

    def query(self):
        """Return (values, duplicates) of the query string."""
        if self.query_values is None:
            self.query_values = parse_query_string(self.raw_query)
        return self.query_values

    def is_form_body(self):
        content_type = self.headers.get("Content-Type", "")
        return (
            content_type.split(";", 1)[0].strip().lower()
            == "application/x-www-form-urlencoded"
        )

    def form(self):
        """Return (values, duplicates) of an application/x-www-form-urlencoded body."""
        if self.form_values is None:
            if not self.is_form_body():
                raise RequestError(
                    "the request body must be application/x-www-form-urlencoded"
                )
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError("the form body is not valid UTF-8") from None
            self.form_values = parse_query_string(text)
        return self.form_values

    def record(self, path):
        """Record the request for /_dev/requests. Unparsable queries or forms record as {}."""
        try:
            query = self.query()[0]
        except RequestError:
            query = {}
        form = {}
        if self.command == "POST" and self.is_form_body():
            try:
                form = self.form()[0]
            except RequestError:
                form = {}
        self.state.record_request(
            {
                "method": self.command,
                "path": path,
                "query": query,
                "form": form,
                "headers": dict(self.headers.items()),
                "time": time.time(),
            }
        )

    # Response writing and logging

    def send(self, response):
        self.log_detail = response.log_detail
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        if response.content_type.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'",
            )
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "no-referrer")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_request(self, code="-", size="-"):
        # Logs only the path, because queries and bodies carry codes, state and tokens.
        # Error descriptions quote none of those, so they are logged too.
        status = code.value if hasattr(code, "value") else code
        if not self.command:
            logger.info("malformed request line, status %s", status)
            return
        path = self.path.split("?", 1)[0]
        detail = getattr(self, "log_detail", None)
        if detail:
            logger.info("%s %s %s %s", self.command, path, status, detail)
        else:
            logger.info("%s %s %s", self.command, path, status)

    def log_error(self, format, *args):
        # send_error() calls this with the raw request line, which can carry codes and
        # state, and then log_request() logs the status. Other calls are timeouts.
        if args and isinstance(args[0], int):
            return
        logger.warning("connection error: %s", format % args)

    def log_message(self, format, *args):
        logger.info(format, *args)

    # Scalekit endpoints

    def get_discovery(self):
        state = self.state
        base = state.endpoint_base
        issuer = state.current_misbehaviour().get("discovery_issuer", state.issuer)
        return json_response(
            200,
            {
                "issuer": issuer,
                "authorization_endpoint": base + "/oauth/authorize",
                "token_endpoint": base + "/oauth/token",
                "jwks_uri": base + "/keys",
                "userinfo_endpoint": base + "/userinfo",
                "end_session_endpoint": base + "/oidc/logout",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "scopes_supported": SCOPES_SUPPORTED,
                "claims_supported": CLAIMS_SUPPORTED,
            },
        )

    def get_keys(self):
        key = self.state.current_signing_key()
        return json_response(200, {"keys": [key.public_jwk()]})

    def get_authorize(self):
        state = self.state
        try:
            params, duplicates = self.query()
        except RequestError as error:
            return html_error(400, error.description)

        # Until client_id and redirect_uri are known good, errors must not redirect,
        # because the redirect would go to an unverified address.
        client_id = params.get("client_id")
        redirect_uri = params.get("redirect_uri")
        if "client_id" in duplicates or "redirect_uri" in duplicates:
            return html_error(400, "client_id and redirect_uri must each appear once")
        if not client_id:
            return html_error(400, "client_id is missing")
        if client_id != state.config.client_id:
            return html_error(400, f"client_id {client_id!r} is not registered")
        if not redirect_uri:
            return html_error(400, "redirect_uri is missing")
        if not state.is_allowed_redirect_uri(redirect_uri):
            return html_error(
                400, f"redirect_uri {redirect_uri!r} is not registered for this client"
            )

        request_state = params.get("state")

        def redirect_error(error, description):
            response_params = {"error": error, "error_description": description}
            if request_state is not None and "state" not in duplicates:
                response_params["state"] = request_state
            response = redirect(add_query_parameters(redirect_uri, response_params))
            response.log_detail = f"redirected with {error}: {description}"
            return response

        forced_error = state.current_misbehaviour().get("authorize_error")
        if forced_error is not None:
            return redirect_error(
                forced_error["error"], forced_error.get("error_description", "")
            )

        if duplicates:
            return redirect_error(
                "invalid_request",
                f"parameters given more than once: {', '.join(sorted(duplicates))}",
            )
        response_type = params.get("response_type")
        if not response_type:
            return redirect_error("invalid_request", "response_type is missing")
        if response_type != "code":
            return redirect_error(
                "unsupported_response_type",
                f"response_type must be code, not {response_type!r}",
            )
        if not request_state:
            return redirect_error("invalid_request", "state is missing")
        method = params.get("code_challenge_method")
        if method != "S256":
            return redirect_error(
                "invalid_request", f"code_challenge_method must be S256, not {method!r}"
            )
        code_challenge = params.get("code_challenge", "")
        if not code_challenge:
            return redirect_error("invalid_request", "code_challenge is missing")
        if not PKCE_VALUE_PATTERN.match(code_challenge):
            return redirect_error(
                "invalid_request",
                "code_challenge must be 43 to 128 unreserved characters",
            )

        try:
            usernames, organization_id = select_users(params)
        except RequestError as error:
            return redirect_error(error.error, error.description)

        txn = state.create_transaction(
            {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "state": request_state,
                "nonce": params.get("nonce"),
                "code_challenge": code_challenge,
                "usernames": usernames,
            }
        )
        login_action = state.path_prefix + "/oauth/authorize/login"
        page = render_login_page(
            login_action,
            txn,
            client_id,
            usernames,
            organization_id,
            params.get("login_hint", ""),
        )
        return html_response(200, page)

    def post_login(self):
        try:
            form, _ = self.form()
            txn = form.get("txn", "")
            username = form.get("user", "")
            if not txn:
                raise RequestError(
                    "the txn field is missing; open the sign-in page again"
                )
            if not username:
                raise RequestError("the user field is missing")
            redirect_uri, request_state, code = self.state.complete_transaction(
                txn, username
            )
        except RequestError as error:
            return html_error(error.status, error.description)
        location = add_query_parameters(
            redirect_uri,
            {"code": code, "state": request_state, "iss": self.state.issuer},
        )
        return redirect(location)

    def authenticate_client(self, form):
        """Return the client_id authenticated by client_secret_basic or client_secret_post."""
        config = self.state.config
        authorization = self.headers.get("Authorization")
        basic_challenge = {"WWW-Authenticate": 'Basic realm="scalekit-dev-idp"'}
        has_post_secret = "client_secret" in form

        if authorization is not None and authorization[:6].lower() == "basic ":
            if has_post_secret:
                raise RequestError(
                    "use only one client authentication method, not Basic and client_secret"
                )
            try:
                decoded = base64.b64decode(
                    authorization[6:].strip(), validate=True
                ).decode("utf-8")
                encoded_id, encoded_secret = decoded.split(":", 1)
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise RequestError(
                    "the Basic Authorization header is malformed",
                    status=401,
                    error="invalid_client",
                ) from None
            # RFC 6749 section 2.3.1 form-encodes both parts before joining them.
            client_id = urllib.parse.unquote_plus(encoded_id)
            client_secret = urllib.parse.unquote_plus(encoded_secret)
            challenge = basic_challenge
        elif has_post_secret:
            client_id = form.get("client_id", "")
            client_secret = form["client_secret"]
            challenge = {}
        else:
            raise RequestError(
                "client authentication is missing; use client_secret_post or client_secret_basic",
                status=401,
                error="invalid_client",
            )

        if "client_id" in form and form["client_id"] != client_id:
            raise RequestError(
                "client_id in the form does not match the authenticated client"
            )
        id_ok = hmac.compare_digest(
            client_id.encode("utf-8"), config.client_id.encode("utf-8")
        )
        secret_ok = hmac.compare_digest(
            client_secret.encode("utf-8"), config.client_secret.encode("utf-8")
        )
        if not (id_ok and secret_ok):
            raise RequestError(
                "client authentication failed",
                status=401,
                error="invalid_client",
                headers=challenge,
            )
        return client_id

    def post_token(self):
        state = self.state
        misbehaviour = state.current_misbehaviour()
        if "token_status" in misbehaviour or "token_body" in misbehaviour:
            return self.misbehaving_token_response(misbehaviour)

        try:
            form, duplicates = self.form()
            if duplicates:
                raise RequestError(
                    f"parameters given more than once: {', '.join(sorted(duplicates))}"
                )
            client_id = self.authenticate_client(form)
            grant_type = form.get("grant_type")
            if not grant_type:
                raise RequestError("grant_type is missing")
            if grant_type != "authorization_code":
                raise RequestError(
                    f"grant_type {grant_type!r} is not supported; use authorization_code",
                    error="unsupported_grant_type",
                )
            code = form.get("code")
            if not code:
                raise RequestError("code is missing")
            record = state.redeem_code(
                code, client_id, form.get("redirect_uri"), form.get("code_verifier", "")
            )
        except RequestError as error:
            return json_error(
                error.status, error.error, error.description, error.headers
            )

        now = int(time.time())
        user = USERS[record["username"]]
        access_token = build_access_token(state, client_id, user, record["sid"], now)
        state.store_access_token(
            access_token, record["username"], now + state.config.token_lifetime
        )
        id_token = build_id_token(
            state, client_id, record, access_token, now, misbehaviour.get("id_token")
        )
        return json_response(
            200,
            {
                "access_token": access_token,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": state.config.token_lifetime,
            },
        )

    def misbehaving_token_response(self, misbehaviour):
        """Send token_body with token_status, defaulting to 200 and to an error body for 4xx/5xx."""
        status = misbehaviour.get("token_status", 200)
        if "token_body" in misbehaviour:
            body = misbehaviour["token_body"].encode("utf-8")
        elif status >= 400:
            body = compact_json(
                {
                    "error": "server_error",
                    "error_description": f"dev misbehaviour: token_status {status}",
                }
            )
        else:
            body = b"{}"
        return Response(status, body, "application/json")

    def get_userinfo(self):
        authorization = self.headers.get("Authorization", "")
        if authorization[:7].lower() != "bearer ":
            return json_error(
                401,
                "invalid_token",
                "a Bearer access token is required",
                {"WWW-Authenticate": 'Bearer realm="scalekit-dev-idp"'},
            )
        username = self.state.lookup_access_token(authorization[7:].strip())
        if username is None:
            return json_error(
                401,
                "invalid_token",
                "the access token is invalid or expired",
                {
                    "WWW-Authenticate": 'Bearer realm="scalekit-dev-idp", error="invalid_token"'
                },
            )
        user = USERS[username]
        claims = {
            name: user[name]
            for name in (
                "sub",
                "email",
                "email_verified",
                "name",
                "given_name",
                "family_name",
                "oid",
            )
        }
        return json_response(200, claims)

    def get_logout(self):
        try:
            params, _ = self.query()
        except RequestError as error:
            return html_error(400, error.description)
        target = params.get("post_logout_redirect_uri")
        if target:
            if not self.state.is_allowed_logout_redirect_uri(target):
                return html_error(
                    400, f"post_logout_redirect_uri {target!r} is not allowed"
                )
            if "state" in params:
                target = add_query_parameters(target, {"state": params["state"]})
            return redirect(target)
        page = render_message_page(
            "Scalekit dev identity provider - signed out",
            "Signed out",
            "You are signed out of the dev identity provider.",
        )
        return html_response(200, page)

    # Control endpoints

    def get_recorded_requests(self):
        requests, _ = self.state.snapshot_recordings()
        return json_response(200, requests)

    def get_request_counts(self):
        _, counts = self.state.snapshot_recordings()
        return json_response(200, counts)

    def post_reset(self):
        self.state.reset()
        return json_response(200, {"status": "reset"})

    def get_misbehaviour(self):
        return json_response(200, self.state.current_misbehaviour())

    def post_misbehave(self):
        try:
            changes = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise RequestError(f"the request body is not valid JSON: {error}") from None
        return json_response(200, self.state.merge_misbehaviour(changes))

    def post_idp_initiated(self):
        """Mint the JWT that Scalekit sends as ?idp_initiated_login= to start a login.

        The JSON body may set connection_id, organization_id, login_hint and
        relay_state, and "expired": true or "bad_signature": true to get a token the
        relying party must reject.
        """
        try:
            options = json.loads(self.body or b"{}")
        except ValueError as error:
            raise RequestError(f"the request body is not valid JSON: {error}") from None
        if not isinstance(options, dict):
            raise RequestError("the request body must be a JSON object")
        now = int(time.time())
        claims = {
            "iss": self.state.config.issuer,
            "aud": [self.state.config.client_id],
            "iat": now,
            "exp": now - 600 if options.get("expired") else now + 300,
        }
        for name in ("connection_id", "organization_id", "login_hint", "relay_state"):
            if isinstance(options.get(name), str):
                claims[name] = options[name]
        key = (
            self.state.get_stray_key()
            if options.get("bad_signature")
            else self.state.current_signing_key()
        )
        header = {"alg": "RS256", "kid": self.state.current_signing_key().kid, "typ": "JWT"}
        token = encode_jwt(header, claims, key.sign_rs256)
        return json_response(200, {"idp_initiated_login": token})

    def post_rotate_keys(self):
        kid = self.state.rotate_keys()
        logger.info("rotated signing key, new kid %s", kid)
        return json_response(200, {"kid": kid})


# --- Command line -------------------------------------------------------------------


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Scalekit-compatible OpenID Connect provider for local tests and demos."
    )
    parser.add_argument(
        "--port",
        type=int,
        required=True,
        help="TCP port to listen on (0 picks a free port)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1; localhost means 127.0.0.1)",
    )
    parser.add_argument("--issuer", help="issuer URL (default http://HOST:PORT)")
    parser.add_argument(
        "--client-id", required=True, help="the one client_id this provider accepts"
    )
    parser.add_argument(
        "--client-secret",
        required=True,
        help="the client's secret for client_secret_post and client_secret_basic",
    )
    parser.add_argument(
        "--redirect-uri",
        dest="redirect_uris",
        action="append",
        default=[],
        help="registered redirect URI, matched exactly (repeatable). "
        "Without any, every http(s) URI on 127.0.0.1 or localhost is accepted.",
    )
    parser.add_argument(
        "--tls-cert",
        help="PEM certificate (chain) to serve https instead of http",
    )
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--token-lifetime",
        type=int,
        default=300,
        help="lifetime of access and ID tokens in seconds (default 300)",
    )
    args = parser.parse_args(argv)

    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is outside 0-65535")
    if args.host == "localhost":
        args.host = "127.0.0.1"
    try:
        is_loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback:
        parser.error(
            f"--host {args.host!r} is not a loopback address; use 127.0.0.1 or ::1"
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not args.client_id:
        parser.error("--client-id must not be empty")
    if not args.client_secret:
        parser.error("--client-secret must not be empty")
    if args.token_lifetime <= 0:
        parser.error(
            f"--token-lifetime {args.token_lifetime} must be a positive number of seconds"
        )
    if args.issuer is not None:
        issuer_parts = parse_absolute_http_uri(args.issuer)
        if issuer_parts is None or issuer_parts.query:
            parser.error(
                f"--issuer {args.issuer!r} must be an http(s) URL without query or fragment"
            )
    for uri in args.redirect_uris:
        if parse_absolute_http_uri(uri) is None:
            parser.error(
                f"--redirect-uri {uri!r} must be an absolute http(s) URI without a fragment"
            )
    return args


def format_http_origin(host, port, scheme="http"):
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def make_server(args):
    """Bind the listening socket and return (server, origin URL)."""
    address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    server_class = type(
        "DevIdpServer", (ThreadingHTTPServer,), {"address_family": address_family}
    )
    server = server_class((args.host, args.port), DevIdpHandler)
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    port = server.server_address[1]
    origin = format_http_origin(args.host, port, scheme)
    if args.issuer is None:
        args.issuer = origin
    DevIdpHandler.state = ProviderState(args)
    return server, origin


def main(argv=None):
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s scalekit-dev-idp %(levelname)s %(message)s",
    )
    args = parse_arguments(argv)
    try:
        server, origin = make_server(args)
    except OSError as error:
        logger.error("cannot listen on %s port %d: %s", args.host, args.port, error)
        return 1

    def request_stop(signum, frame):
        logger.info("received %s, stopping", signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, so it cannot run in the
        # main thread, which is where this handler runs.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    logger.info(
        "started: issuer %s, client_id %s, redirect URIs %s, token lifetime %d s",
        args.issuer,
        args.client_id,
        ", ".join(args.redirect_uris) or "any http(s) URI on 127.0.0.1 or localhost",
        args.token_lifetime,
    )
    print(f"scalekit-dev-idp listening on {origin}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
