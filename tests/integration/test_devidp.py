"""Self-test of the dev identity provider in tools/devidp/scalekit_dev_idp.py.

Each server runs as a subprocess on a free 127.0.0.1 port and is stopped with SIGTERM
by the fixture or test that started it. Run with:

    /usr/bin/python3 -m pytest tests/integration/test_devidp.py
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REPOSITORY = Path(__file__).resolve().parents[2]
DEV_IDP = REPOSITORY / "tools" / "devidp" / "scalekit_dev_idp.py"
# Debian's interpreter has python3-cryptography. The pyenv python3 on PATH does not.
PYTHON = "/usr/bin/python3"

CLIENT_ID = "skc_devidp_selftest"
CLIENT_SECRET = "selftest-secret-Zq8vW2"
REDIRECT_URI = "http://127.0.0.1:8080/scalekit/callback"
STARTUP_TIMEOUT_SECONDS = 15
TOKEN_LIFETIME = 300
USER_SUBS = {
    "alice": "usr_acme_alice",
    "bob": "conn_acme_okta;00u-bob|42",
    "carol": "usr_globex_carol",
}


# --- Server processes ---------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DevIdp:
    """One running dev identity provider process and its base URL."""

    def __init__(self, extra_args=(), issuer_path=""):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.issuer = self.base + issuer_path
        self.stderr_file = tempfile.NamedTemporaryFile(
            prefix="devidp-stderr-", delete=False
        )
        command = [
            PYTHON,
            str(DEV_IDP),
            "--port",
            str(self.port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--token-lifetime",
            str(TOKEN_LIFETIME),
            *extra_args,
        ]
        if issuer_path:
            command += ["--issuer", self.issuer]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.stderr_file, text=True
        )
        self.ready_line = self.wait_for_ready_line()

    def wait_for_ready_line(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                line = self.process.stdout.readline()
                if line:
                    return line.rstrip("\n")
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(
            f"dev identity provider did not start; stderr:\n{self.stderr_text()}"
        )

    def stop(self):
        """Send SIGTERM and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return self.process.returncode

    def stderr_text(self):
        return Path(self.stderr_file.name).read_text(errors="replace")

    def cleanup(self):
        self.stop()
        self.stderr_file.close()
        os.unlink(self.stderr_file.name)

    def url(self, path):
        return self.issuer + path

    def get(self, path, **kwargs):
        return requests.get(self.url(path), allow_redirects=False, timeout=10, **kwargs)

    def post(self, path, **kwargs):
        return requests.post(
            self.url(path), allow_redirects=False, timeout=10, **kwargs
        )

    def control(self, method, path, **kwargs):
        return requests.request(method, self.base + path, timeout=10, **kwargs)

    def misbehave(self, **changes):
        response = self.control("POST", "/_dev/misbehave", json=changes)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def server():
    idp = DevIdp()
    yield idp
    log = idp.stderr_text()
    idp.cleanup()
    # Every request handled by the shared server, bad ones included, must leave no
    # traceback in its log.
    assert "Traceback" not in log


@pytest.fixture
def idp(server):
    """The shared server, with recordings and misbehaviour cleared before the test."""
    response = server.control("POST", "/_dev/reset")
    assert response.status_code == 200
    return server


# --- OAuth helpers ------------------------------------------------------------------


def base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def base64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64url(hashlib.sha256(verifier.encode("ascii")).digest())
    return verifier, challenge


def authorize_params(challenge, **overrides):
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": "st_" + secrets.token_hex(8),
        "nonce": "n_" + secrets.token_hex(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def listed_forms(page):
    """Return (txn values, user values) of the login page's forms, in page order."""
    txns = re.findall(r'<input type="hidden" name="txn" value="([^"]*)">', page)
    users = re.findall(r'<input type="hidden" name="user" value="([^"]*)">', page)
    return txns, users


def redirect_query(response):
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    parts = urllib.parse.urlsplit(location)
    return location, dict(urllib.parse.parse_qsl(parts.query))


def sign_in(idp, user="alice", **overrides):
    """Run authorize and login, and return the code with the request values."""
    verifier, challenge = make_pkce()
    params = authorize_params(challenge, **overrides)
    page = idp.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    txns, users = listed_forms(page.text)
    assert user in users
    login = idp.post("/oauth/authorize/login", data={"txn": txns[0], "user": user})
    location, query = redirect_query(login)
    separator = "&" if "?" in params["redirect_uri"] else "?"
    assert location.startswith(params["redirect_uri"] + separator)
    assert query["state"] == params["state"]
    return {
        "code": query["code"],
        "verifier": verifier,
        "params": params,
        "query": query,
    }


def exchange(
    idp, code, verifier, redirect_uri=REDIRECT_URI, auth="post", secret=CLIENT_SECRET
):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if auth == "post":
        form.update({"client_id": CLIENT_ID, "client_secret": secret})
        return idp.post("/oauth/token", data=form)
    return idp.post("/oauth/token", data=form, auth=(CLIENT_ID, secret))


def tokens_for(idp, user="alice", **overrides):
    login = sign_in(idp, user, **overrides)
    response = exchange(idp, login["code"], login["verifier"])
    assert response.status_code == 200, response.text
    return response.json(), login


def split_jwt(token):
    encoded_header, encoded_claims, encoded_signature = token.split(".")
    header = json.loads(base64url_decode(encoded_header))
    claims = json.loads(base64url_decode(encoded_claims))
    signing_input = f"{encoded_header}.{encoded_claims}".encode("ascii")
    return header, claims, signing_input, base64url_decode(encoded_signature)


def public_key_from_jwk(jwk):
    n = int.from_bytes(base64url_decode(jwk["n"]), "big")
    e = int.from_bytes(base64url_decode(jwk["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def verify_rs256(idp, token):
    """Verify the token against /keys and return its claims. Raise InvalidSignature or KeyError."""
    header, claims, signing_input, signature = split_jwt(token)
    keys = {jwk["kid"]: jwk for jwk in idp.get("/keys").json()["keys"]}
    key = public_key_from_jwk(keys[header["kid"]])
    key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    return claims


# --- Discovery and keys -------------------------------------------------------------


def test_ready_line_names_listen_url(server):
    assert (
        server.ready_line
        == f"scalekit-dev-idp listening on http://127.0.0.1:{server.port}"
    )


def test_discovery_lists_scalekit_endpoints(idp):
    response = idp.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    issuer = idp.issuer
    assert document["issuer"] == issuer
    assert document["authorization_endpoint"] == issuer + "/oauth/authorize"
    assert document["token_endpoint"] == issuer + "/oauth/token"
    assert document["jwks_uri"] == issuer + "/keys"
    assert document["userinfo_endpoint"] == issuer + "/userinfo"
    assert document["end_session_endpoint"] == issuer + "/oidc/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_post",
        "client_secret_basic",
    ]
    assert "openid" in document["scopes_supported"]
    assert "sub" in document["claims_supported"]


def test_jwks_has_one_rsa_2048_key(idp):
    keys = idp.get("/keys").json()["keys"]
    assert len(keys) == 1
    jwk = keys[0]
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert re.fullmatch(r"snk_[0-9a-f]+", jwk["kid"])
    assert public_key_from_jwk(jwk).key_size == 2048


# --- Authorization code flow --------------------------------------------------------


def test_login_page_lists_all_users(idp):
    _, challenge = make_pkce()
    response = idp.get("/oauth/authorize", params=authorize_params(challenge))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<title>Scalekit dev identity provider - sign in</title>" in response.text
    assert (
        response.text.count('<form method="post" action="/oauth/authorize/login"') == 3
    )
    txns, users = listed_forms(response.text)
    assert users == ["alice", "bob", "carol"]
    assert len(set(txns)) == 1
    assert "Alice Archer" in response.text
    assert "carol@globex.test" in response.text
    assert "org_globex" in response.text


def test_login_redirects_with_code_state_iss(idp):
    login = sign_in(idp)
    assert login["query"]["iss"] == idp.issuer
    assert login["code"]


def test_token_flow_issues_signed_id_token(idp):
    tokens, login = tokens_for(idp, "alice")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == TOKEN_LIFETIME

    header, _, _, _ = split_jwt(tokens["id_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "JWT"
    assert header["kid"] == idp.get("/keys").json()["keys"][0]["kid"]

    claims = verify_rs256(idp, tokens["id_token"])
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == [CLIENT_ID]
    assert claims["azp"] == CLIENT_ID
    assert claims["client_id"] == CLIENT_ID
    assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME
    assert abs(claims["iat"] - time.time()) < 30
    assert claims["nonce"] == login["params"]["nonce"]
    assert claims["sub"] == "usr_acme_alice"
    assert claims["email"] == "alice@acme.test"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Archer"
    assert claims["given_name"] == "Alice"
    assert claims["family_name"] == "Archer"
    assert claims["oid"] == "org_acme"
    assert claims["amr"] == ["conn_acme_okta"]
    assert claims["sid"].startswith("ses_")

    digest = hashlib.sha256(tokens["access_token"].encode("ascii")).digest()
    assert claims["at_hash"] == base64url(digest[:16])
    verify_rs256(idp, tokens["access_token"])


@pytest.mark.parametrize(
    ("user", "sub", "oid", "amr"),
    [
        ("bob", "conn_acme_okta;00u-bob|42", "org_acme", ["conn_acme_okta"]),
        ("carol", "usr_globex_carol", "org_globex", ["conn_globex_entra"]),
    ],
)
def test_id_token_claims_per_user(idp, user, sub, oid, amr):
    tokens, _ = tokens_for(idp, user)
    claims = verify_rs256(idp, tokens["id_token"])
    assert claims["sub"] == sub
    assert claims["oid"] == oid
    assert claims["amr"] == amr


def test_id_token_omits_nonce_when_not_sent(idp):
    tokens, _ = tokens_for(idp, nonce=None)
    claims = verify_rs256(idp, tokens["id_token"])
    assert "nonce" not in claims


def test_token_accepts_client_secret_basic(idp):
    login = sign_in(idp)
    response = exchange(idp, login["code"], login["verifier"], auth="basic")
    assert response.status_code == 200, response.text
    assert "id_token" in response.json()


def test_code_is_single_use(idp):
    login = sign_in(idp)
    first = exchange(idp, login["code"], login["verifier"])
    assert first.status_code == 200
    second = exchange(idp, login["code"], login["verifier"])
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


def test_redirect_uri_keeps_existing_query(idp):
    login = sign_in(idp, redirect_uri="http://localhost:8080/cb?tenant=a")
    assert login["query"]["tenant"] == "a"
    response = exchange(
        idp,
        login["code"],
        login["verifier"],
        redirect_uri="http://localhost:8080/cb?tenant=a",
    )
    assert response.status_code == 200, response.text


def test_userinfo_returns_user_claims(idp):
    tokens, _ = tokens_for(idp, "carol")
    response = idp.get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert response.status_code == 200
    assert response.json()["sub"] == "usr_globex_carol"
    assert response.json()["email"] == "carol@globex.test"


def test_userinfo_rejects_unknown_token(idp):
    response = idp.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "Bearer" in response.headers["WWW-Authenticate"]


# --- Token endpoint errors ----------------------------------------------------------


def test_token_rejects_wrong_verifier(idp):
    login = sign_in(idp)
    other_verifier, _ = make_pkce()
    response = exchange(idp, login["code"], other_verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_token_rejects_other_redirect_uri(idp):
    login = sign_in(idp)
    response = exchange(
        idp,
        login["code"],
        login["verifier"],
        redirect_uri="http://127.0.0.1:8080/other",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_token_rejects_wrong_secret(idp):
    login = sign_in(idp)
    response = exchange(idp, login["code"], login["verifier"], secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_rejects_wrong_basic_secret(idp):
    login = sign_in(idp)
    response = exchange(
        idp, login["code"], login["verifier"], auth="basic", secret="wrong"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_token_rejects_missing_client_auth(idp):
    login = sign_in(idp)
    form = {
        "grant_type": "authorization_code",
        "code": login["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": login["verifier"],
        "client_id": CLIENT_ID,
    }
    response = idp.post("/oauth/token", data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_rejects_unknown_code(idp):
    verifier, _ = make_pkce()
    response = exchange(idp, "no-such-code", verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_token_rejects_other_grant_type(idp):
    form = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    response = idp.post("/oauth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_rejects_json_body(idp):
    response = idp.post("/oauth/token", json={"grant_type": "authorization_code"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- Authorization request errors ---------------------------------------------------


def test_authorize_rejects_unknown_client_without_redirect(idp):
    _, challenge = make_pkce()
    response = idp.get(
        "/oauth/authorize", params=authorize_params(challenge, client_id="skc_other")
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        None,
        "http://evil.example/cb",
        "ftp://127.0.0.1/cb",
        "http://127.0.0.1/cb#fragment",
        "/relative",
    ],
)
def test_authorize_rejects_bad_redirect_uri(idp, redirect_uri):
    _, challenge = make_pkce()
    response = idp.get(
        "/oauth/authorize",
        params=authorize_params(challenge, redirect_uri=redirect_uri),
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
    ],
)
def test_authorize_redirects_request_errors(idp, overrides, error):
    _, challenge = make_pkce()
    params = authorize_params(challenge, **overrides)
    location, query = redirect_query(idp.get("/oauth/authorize", params=params))
    assert location.startswith(REDIRECT_URI + "?")
    assert query["error"] == error
    assert query["error_description"]
    assert query["state"] == params["state"]


def test_authorize_requires_state(idp):
    _, challenge = make_pkce()
    _, query = redirect_query(
        idp.get("/oauth/authorize", params=authorize_params(challenge, state=None))
    )
    assert query["error"] == "invalid_request"
    assert "state" not in query


def test_authorize_rejects_repeated_parameter(idp):
    _, challenge = make_pkce()
    query = urllib.parse.urlencode(authorize_params(challenge)) + "&scope=openid"
    _, redirect = redirect_query(idp.get("/oauth/authorize?" + query))
    assert redirect["error"] == "invalid_request"


# --- Routing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selectors", "expected_users"),
    [
        ({}, ["alice", "bob", "carol"]),
        ({"connection_id": "conn_globex_entra"}, ["carol"]),
        ({"connection_id": "conn_acme_okta"}, ["alice", "bob"]),
        ({"organization_id": "org_acme"}, ["alice", "bob"]),
        ({"domain": "globex.test"}, ["carol"]),
        ({"login_hint": "bob@acme.test"}, ["bob", "alice"]),
        ({"login_hint": "carol@globex.test"}, ["carol"]),
        ({"login_hint": "dave@unknown.test"}, ["alice", "bob", "carol"]),
        (
            {"connection_id": "conn_globex_entra", "organization_id": "org_acme"},
            ["carol"],
        ),
        ({"organization_id": "org_globex", "domain": "acme.test"}, ["carol"]),
        ({"domain": "acme.test", "login_hint": "carol@globex.test"}, ["alice", "bob"]),
        (
            {"organization_id": "org_acme", "login_hint": "bob@acme.test"},
            ["bob", "alice"],
        ),
    ],
)
def test_routing_lists_selected_users(idp, selectors, expected_users):
    _, challenge = make_pkce()
    response = idp.get(
        "/oauth/authorize", params=authorize_params(challenge, **selectors)
    )
    assert response.status_code == 200, response.text
    _, users = listed_forms(response.text)
    assert users == expected_users


def test_login_hint_preselects_user(idp):
    _, challenge = make_pkce()
    response = idp.get(
        "/oauth/authorize",
        params=authorize_params(challenge, login_hint="bob@acme.test"),
    )
    first_form = response.text.split("<form ")[1]
    assert 'class="preselected"' in first_form
    assert 'value="bob"' in first_form
    assert "autofocus" in first_form


@pytest.mark.parametrize(
    ("selectors", "error"),
    [
        ({"connection_id": "conn_nope"}, "invalid_connection_id"),
        ({"organization_id": "org_nope"}, "invalid_organization_id"),
        ({"domain": "nope.test"}, "domain_not_found"),
        (
            {"connection_id": "conn_nope", "organization_id": "org_acme"},
            "invalid_connection_id",
        ),
    ],
)
def test_routing_rejects_unknown_selector(idp, selectors, error):
    _, challenge = make_pkce()
    params = authorize_params(challenge, **selectors)
    _, query = redirect_query(idp.get("/oauth/authorize", params=params))
    assert query["error"] == error
    assert query["state"] == params["state"]


def test_login_rejects_user_not_listed(idp):
    _, challenge = make_pkce()
    page = idp.get(
        "/oauth/authorize",
        params=authorize_params(challenge, organization_id="org_globex"),
    )
    txns, _ = listed_forms(page.text)
    response = idp.post(
        "/oauth/authorize/login", data={"txn": txns[0], "user": "alice"}
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")


def test_login_rejects_unknown_txn(idp):
    response = idp.post(
        "/oauth/authorize/login", data={"txn": "forged", "user": "alice"}
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")


def test_login_txn_is_single_use(idp):
    _, challenge = make_pkce()
    page = idp.get("/oauth/authorize", params=authorize_params(challenge))
    txns, _ = listed_forms(page.text)
    first = idp.post("/oauth/authorize/login", data={"txn": txns[0], "user": "alice"})
    assert first.status_code == 302
    second = idp.post("/oauth/authorize/login", data={"txn": txns[0], "user": "alice"})
    assert second.status_code == 400


def test_login_page_escapes_login_hint(idp):
    _, challenge = make_pkce()
    hint = '<script>alert("x")</script>@acme.test'
    response = idp.get(
        "/oauth/authorize", params=authorize_params(challenge, login_hint=hint)
    )
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


# --- ID token misbehaviour ----------------------------------------------------------


def misbehaving_id_token(idp, mode):
    idp.misbehave(id_token=mode)
    tokens, login = tokens_for(idp)
    return tokens["id_token"], login


def test_id_token_bad_signature(idp):
    token, _ = misbehaving_id_token(idp, "bad_signature")
    header, _, _, _ = split_jwt(token)
    assert header["alg"] == "RS256"
    with pytest.raises(InvalidSignature):
        verify_rs256(idp, token)


def test_id_token_wrong_aud(idp):
    token, _ = misbehaving_id_token(idp, "wrong_aud")
    claims = verify_rs256(idp, token)
    assert CLIENT_ID not in claims["aud"]


def test_id_token_wrong_iss(idp):
    token, _ = misbehaving_id_token(idp, "wrong_iss")
    claims = verify_rs256(idp, token)
    assert claims["iss"] != idp.issuer


def test_id_token_expired(idp):
    token, _ = misbehaving_id_token(idp, "expired")
    claims = verify_rs256(idp, token)
    assert claims["exp"] < time.time() - 600


def test_id_token_wrong_nonce(idp):
    token, login = misbehaving_id_token(idp, "wrong_nonce")
    claims = verify_rs256(idp, token)
    assert claims["nonce"] != login["params"]["nonce"]


def test_id_token_no_sub(idp):
    token, _ = misbehaving_id_token(idp, "no_sub")
    claims = verify_rs256(idp, token)
    assert "sub" not in claims


def test_id_token_multi_aud_no_azp(idp):
    token, _ = misbehaving_id_token(idp, "multi_aud_no_azp")
    claims = verify_rs256(idp, token)
    assert claims["aud"] == [CLIENT_ID, "other"]
    assert "azp" not in claims


def test_id_token_alg_none(idp):
    token, _ = misbehaving_id_token(idp, "alg_none")
    header, claims, _, signature = split_jwt(token)
    assert header["alg"] == "none"
    assert signature == b""
    assert token.endswith(".")
    assert claims["sub"] == "usr_acme_alice"


def test_id_token_hs256(idp):
    token, _ = misbehaving_id_token(idp, "hs256")
    header, _, signing_input, signature = split_jwt(token)
    assert header["alg"] == "HS256"
    expected = hmac.new(CLIENT_SECRET.encode(), signing_input, hashlib.sha256).digest()
    assert signature == expected


def test_id_token_unknown_kid(idp):
    token, _ = misbehaving_id_token(idp, "unknown_kid")
    header, _, _, signature = split_jwt(token)
    kids = [jwk["kid"] for jwk in idp.get("/keys").json()["keys"]]
    assert header["alg"] == "RS256"
    assert header["kid"].startswith("snk_")
    assert header["kid"] not in kids
    assert len(signature) == 256


def test_id_token_future_iat(idp):
    token, _ = misbehaving_id_token(idp, "future_iat")
    claims = verify_rs256(idp, token)
    assert claims["iat"] > time.time() + 3000
    assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME


def test_id_token_mode_stays_until_reset(idp):
    idp.misbehave(id_token="no_sub")
    first, _ = tokens_for(idp)
    second, _ = tokens_for(idp)
    assert "sub" not in split_jwt(first["id_token"])[1]
    assert "sub" not in split_jwt(second["id_token"])[1]
    idp.control("POST", "/_dev/reset")
    third, _ = tokens_for(idp)
    assert split_jwt(third["id_token"])[1]["sub"] == "usr_acme_alice"


# --- Other misbehaviour -------------------------------------------------------------


def test_authorize_error_redirects_with_state(idp):
    idp.misbehave(
        authorize_error={
            "error": "access_denied",
            "error_description": "denied by test",
        }
    )
    _, challenge = make_pkce()
    params = authorize_params(challenge)
    _, query = redirect_query(idp.get("/oauth/authorize", params=params))
    assert query["error"] == "access_denied"
    assert query["error_description"] == "denied by test"
    assert query["state"] == params["state"]
    assert "code" not in query


def test_token_status_and_body_sent_raw(idp):
    login = sign_in(idp)
    idp.misbehave(token_status=500, token_body="not json {")
    response = exchange(idp, login["code"], login["verifier"])
    assert response.status_code == 500
    assert response.text == "not json {"


def test_token_body_alone_uses_status_200(idp):
    login = sign_in(idp)
    idp.misbehave(token_body='{"token_type": "Bearer"}')
    response = exchange(idp, login["code"], login["verifier"])
    assert response.status_code == 200
    assert response.json() == {"token_type": "Bearer"}


def test_discovery_issuer_override(idp):
    idp.misbehave(discovery_issuer="http://127.0.0.1:1/elsewhere")
    document = idp.get("/.well-known/openid-configuration").json()
    assert document["issuer"] == "http://127.0.0.1:1/elsewhere"
    assert document["token_endpoint"] == idp.issuer + "/oauth/token"


def test_misbehave_merges_changes(idp):
    idp.misbehave(id_token="expired")
    idp.misbehave(token_status=502)
    current = idp.control("GET", "/_dev/misbehave").json()
    assert current == {"id_token": "expired", "token_status": 502}


def test_reset_clears_misbehaviour(idp):
    idp.misbehave(discovery_issuer="http://127.0.0.1:1/x", token_status=503)
    idp.control("POST", "/_dev/reset")
    assert idp.control("GET", "/_dev/misbehave").json() == {}
    assert idp.get("/.well-known/openid-configuration").json()["issuer"] == idp.issuer


@pytest.mark.parametrize(
    "body",
    [
        {"id_token": "not_a_mode"},
        {"token_status": "500"},
        {"token_status": 42},
        {"token_body": 5},
        {"authorize_error": {"error_description": "missing error"}},
        {"unknown_key": 1},
        ["id_token", "expired"],
    ],
)
def test_misbehave_rejects_invalid_body(idp, body):
    response = idp.control("POST", "/_dev/misbehave", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert idp.control("GET", "/_dev/misbehave").json() == {}


def test_misbehave_rejects_malformed_json(idp):
    response = idp.control("POST", "/_dev/misbehave", data="{not json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- Recordings and key rotation ----------------------------------------------------


def test_requests_records_token_form(idp):
    login = sign_in(idp)
    exchange(idp, login["code"], login["verifier"])
    recorded = idp.control("GET", "/_dev/requests").json()
    paths = [entry["path"] for entry in recorded]
    assert paths == ["/oauth/authorize", "/oauth/authorize/login", "/oauth/token"]

    authorize_entry = recorded[0]
    assert authorize_entry["method"] == "GET"
    assert authorize_entry["query"]["code_challenge_method"] == "S256"
    assert authorize_entry["query"]["state"] == login["params"]["state"]
    assert authorize_entry["form"] == {}

    token_entry = recorded[2]
    assert token_entry["method"] == "POST"
    assert token_entry["query"] == {}
    assert token_entry["form"]["grant_type"] == "authorization_code"
    assert token_entry["form"]["code"] == login["code"]
    assert token_entry["form"]["code_verifier"] == login["verifier"]
    assert token_entry["form"]["client_secret"] == CLIENT_SECRET
    assert token_entry["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert abs(token_entry["time"] - time.time()) < 30


def test_dev_requests_are_not_recorded(idp):
    idp.control("GET", "/_dev/counts")
    idp.control("GET", "/_dev/misbehave")
    idp.get("/keys")
    assert [entry["path"] for entry in idp.control("GET", "/_dev/requests").json()] == [
        "/keys"
    ]


def test_counts_per_path(idp):
    idp.get("/keys")
    idp.get("/keys")
    idp.get("/.well-known/openid-configuration")
    idp.get("/no-such-path")
    counts = idp.control("GET", "/_dev/counts").json()
    assert counts == {
        "/keys": 2,
        "/.well-known/openid-configuration": 1,
        "/no-such-path": 1,
    }


def test_reset_clears_recordings(idp):
    idp.get("/keys")
    idp.control("POST", "/_dev/reset")
    assert idp.control("GET", "/_dev/requests").json() == []
    assert idp.control("GET", "/_dev/counts").json() == {}


def test_rotate_keys_replaces_jwks(idp):
    old_kid = idp.get("/keys").json()["keys"][0]["kid"]
    response = idp.control("POST", "/_dev/rotate-keys")
    assert response.status_code == 200
    keys = idp.get("/keys").json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kid"] != old_kid
    assert keys[0]["kid"] == response.json()["kid"]
    assert keys[0]["kid"].startswith("snk_")

    tokens, _ = tokens_for(idp)
    assert split_jwt(tokens["id_token"])[0]["kid"] == keys[0]["kid"]
    verify_rs256(idp, tokens["id_token"])


# --- Logout -------------------------------------------------------------------------


def test_logout_redirects_with_state(idp):
    params = {"post_logout_redirect_uri": "http://127.0.0.1:8080/", "state": "bye"}
    location, query = redirect_query(idp.get("/oidc/logout", params=params))
    assert location.startswith("http://127.0.0.1:8080/?")
    assert query["state"] == "bye"


def test_logout_without_target_shows_page(idp):
    response = idp.get("/oidc/logout")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Signed out" in response.text


def test_logout_rejects_foreign_target(idp):
    response = idp.get(
        "/oidc/logout", params={"post_logout_redirect_uri": "https://evil.example/"}
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


# --- Robustness ---------------------------------------------------------------------


def send_raw(idp, data):
    with socket.create_connection(("127.0.0.1", idp.port), timeout=10) as connection:
        connection.sendall(data)
        # Half-close so that a body shorter than its Content-Length ends in EOF
        # instead of waiting for the server's idle timeout.
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "raw_request",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 9\r\n\r\ncode=%ff%",
        b"GET /oauth/authorize?client_id=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /oauth/authorize/login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab",
    ],
)
def test_bad_request_gets_400_without_traceback(idp, raw_request):
    reply = send_raw(idp, raw_request)
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] == b"400"
    assert b"Traceback" not in reply
    assert idp.get("/keys").status_code == 200


def test_parallel_logins_succeed(idp):
    users = ["alice", "bob", "carol"] * 4
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        results = list(pool.map(lambda user: tokens_for(idp, user)[0], users))
    subs = [verify_rs256(idp, tokens["id_token"])["sub"] for tokens in results]
    assert subs == [USER_SUBS[user] for user in users]


def test_unknown_path_returns_404_json(idp):
    response = idp.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_wrong_method_returns_405(idp):
    response = idp.post("/keys")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_stderr_logs_error_reason(idp):
    login = sign_in(idp)
    other_verifier, _ = make_pkce()
    exchange(idp, login["code"], other_verifier)
    log = idp.stderr_text()
    assert "POST /oauth/token 400 invalid_grant" in log
    assert other_verifier not in log


def test_stderr_omits_secrets_and_codes(idp):
    tokens, login = tokens_for(idp)
    log = idp.stderr_text()
    assert "POST /oauth/token 200" in log
    assert CLIENT_SECRET not in log
    assert login["code"] not in log
    assert login["verifier"] not in log
    assert tokens["access_token"] not in log
    assert tokens["id_token"] not in log


# --- Command line and other configurations ------------------------------------------


def test_exact_redirect_uris_when_registered():
    registered = "http://127.0.0.1:8081/app/callback"
    idp = DevIdp(
        ["--redirect-uri", registered, "--redirect-uri", "http://localhost:8081/cb"]
    )
    try:
        _, challenge = make_pkce()
        accepted = idp.get(
            "/oauth/authorize",
            params=authorize_params(challenge, redirect_uri=registered),
        )
        assert accepted.status_code == 200
        rejected = idp.get(
            "/oauth/authorize",
            params=authorize_params(challenge, redirect_uri=REDIRECT_URI),
        )
        assert rejected.status_code == 400
        login = sign_in(idp, redirect_uri="http://localhost:8081/cb")
        assert login["code"]
    finally:
        idp.cleanup()


def test_issuer_with_path_prefix():
    idp = DevIdp(issuer_path="/tenant")
    try:
        document = idp.get("/.well-known/openid-configuration").json()
        assert document["issuer"] == idp.base + "/tenant"
        assert document["token_endpoint"] == idp.base + "/tenant/oauth/token"
        page = idp.get("/oauth/authorize", params=authorize_params(make_pkce()[1]))
        assert 'action="/tenant/oauth/authorize/login"' in page.text
        tokens, _ = tokens_for(idp)
        assert verify_rs256(idp, tokens["id_token"])["iss"] == idp.base + "/tenant"
    finally:
        idp.cleanup()


def test_sigterm_stops_cleanly():
    idp = DevIdp()
    try:
        assert idp.stop() == 0
        assert "stopped" in idp.stderr_text()
        assert "Traceback" not in idp.stderr_text()
    finally:
        idp.cleanup()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_non_loopback_host_is_rejected(host):
    result = subprocess.run(
        [
            PYTHON,
            str(DEV_IDP),
            "--port",
            "0",
            "--host",
            host,
            "--client-id",
            "c",
            "--client-secret",
            "s",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert result.stdout == ""


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
