"""Hostile input: forged and malformed ID tokens, misbehaving provider responses, forged
callbacks, tampered cookies, odd claims, spoofed claim headers and open redirects.

Every case must end in a clear 4xx or 5xx page, or a clean rejection with an
error-log line that names the cause, and never in a crash, a hang or protected
content. Crashes show in the error log (FATAL_LOG_PATTERN), and every request has a
timeout.

Two setups run here:
- the shared httpd with the dev provider (fixtures httpd and provider). The dev
  provider signs only its own fixed claims, so forged tokens reach the module through
  its misbehave "token_body" and fail at the signature check;
- a second httpd with hostile_idp.HostileIdp, which signs any header and payload with
  a key of its JWKS. Its JWKS has two RSA keys among EC, oct, OKP and RSA "enc" keys,
  it can answer late, and it can put any claim in the ID token, so the checks after
  the signature, the session cookie chunks and the claim export get real input.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import shutil
import urllib.parse

import pytest
import requests

import scalekit_harness as harness
from hostile_idp import HostileIdp, b64url, b64url_json, compact_jws

SPOOFED_EMAIL = "spoofed@evil.example"
SPOOFED_USER = "spoofed-admin"
HOSTILE_SUB = "usr_hostile"
HOSTILE_EMAIL = "hostile@example.test"

# Seconds the module waits for the provider on the hostile site (ScalekitHTTPTimeout),
# and how long the hostile provider delays its token response in the timeout test.
HOSTILE_HTTP_TIMEOUT = 2
SLOW_TOKEN_DELAY = 5

# Prints the CGI variables that the tests look at as JSON, values as hex of their
# bytes, so that control characters and invalid UTF-8 arrive unchanged.
ENV_CGI = """#!/usr/bin/python3
import json
import os

prefixes = (b"SCALEKIT_", b"HTTP_", b"REMOTE_USER", b"AUTH_TYPE")
variables = {
    name.decode("latin-1"): value.hex()
    for name, value in os.environb.items()
    if name.startswith(prefixes)
}
print("Content-Type: application/json\\r\\nCache-Control: no-store\\r\\n\\r\\n"
      + json.dumps(variables))
"""

HOSTILE_EXTRA_CONFIG = """
# No authentication: spoofed headers must not become trusted values here either.
<Directory "{root}/htdocs/public">
    Options +ExecCGI
    AddHandler cgi-script .cgi
    Require all granted
</Directory>

# Claims as request headers and as environment variables.
<Directory "{root}/htdocs/headers">
    AuthType Scalekit
    Require valid-user
    ScalekitPassClaimsAs both
    Options +ExecCGI
    AddHandler cgi-script .cgi
</Directory>

# Login optional: the session is exported when there is one.
<Directory "{root}/htdocs/optional">
    AuthType Scalekit
    ScalekitUnauthAction pass
    Require all granted
    Options +ExecCGI
    AddHandler cgi-script .cgi
</Directory>
"""

CGI_DIRECTORIES = ("intranet", "public", "headers", "optional")


# --- Helpers -------------------------------------------------------------------------


def error_log_line(text, pattern):
    """Return the first auth_scalekit line of text that matches pattern, or None."""
    for line in text.splitlines():
        if "[auth_scalekit:" in line and re.search(pattern, line, re.IGNORECASE):
            return line
    return None


def assert_logged(server, mark, pattern, step):
    text = server.wait_for_log(mark, pattern)
    assert (
        error_log_line(text, pattern) is not None
    ), f"{step}: no auth_scalekit error-log line matches {pattern!r}:\n{text[-3000:]}"


def assert_error_page(response, statuses, step):
    """Check a rejection page: the status, HTML, no session and no protected data."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    assert (
        response.status_code in statuses
    ), f"{step}: expected {statuses}, got {response.status_code}: {response.text[:500]}"
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith(
        "text/html"
    ), f"{step}: the page's Content-Type is {content_type!r}, expected text/html"
    assert (
        harness.find_set_cookie(response, harness.SESSION_COOKIE) is None
    ), f"{step}: the rejection sets a session cookie"
    assert (
        HOSTILE_SUB not in response.text and "SCALEKIT_CLAIM" not in response.text
    ), f"{step}: the rejection page shows protected content: {response.text[:500]}"


def env_of(response, step):
    """Return the variables that env.cgi printed, as {name: bytes}."""
    assert (
        response.status_code == 200
    ), f"{step}: env.cgi returned {response.status_code}: {response.text[:500]}"
    assert response.headers.get("Content-Type", "").startswith(
        "application/json"
    ), f"{step}: the response is not env.cgi's JSON: {response.text[:300]}"
    return {name: bytes.fromhex(value) for name, value in response.json().items()}


def get(url, **kwargs):
    kwargs.setdefault("allow_redirects", False)
    kwargs.setdefault("timeout", harness.HTTP_TIMEOUT_SECONDS)
    return requests.get(url, **kwargs)


def is_authorize_redirect(response, issuer):
    location = response.headers.get("Location", "")
    return response.status_code == 302 and location.startswith(issuer)


# --- Hostile provider site -----------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_idp():
    provider = HostileIdp(harness.CLIENT_ID)
    provider.start()
    yield provider
    provider.stop()


def install_cgi(root):
    for directory in CGI_DIRECTORIES:
        folder = root / "htdocs" / directory
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
        harness.install_file(folder / "env.cgi", ENV_CGI, 0o755)


@pytest.fixture(scope="module")
def hostile_site(hostile_idp, client_secret, secret_ledger):
    """An httpd whose ScalekitIssuer is the hostile provider, on a free port."""
    root = harness.make_tree("mod-auth-scalekit-hostile-")
    server = None
    for attempt in range(3):
        site = harness.SiteConfig(hostile_idp.issuer, client_secret)
        site.extra_server_config = f"ScalekitHTTPTimeout {HOSTILE_HTTP_TIMEOUT}"
        site.extra_config = HOSTILE_EXTRA_CONFIG.format(root=root)
        secret_ledger.add("session secret", site.session_secret)
        server = harness.Httpd(root, site)
        install_cgi(root)
        try:
            server.start()
            break
        except harness.PortInUseError:
            if attempt == 2:
                raise
        except BaseException:
            server.stop()
            raise
    yield server

    server.stop()
    fatal = server.new_fatal_log_lines()
    shutil.rmtree(root)
    if fatal:
        pytest.fail("hostile site error log has fatal lines:\n" + "\n".join(fatal))


@pytest.fixture
def hostile(hostile_idp, hostile_site):
    """The hostile provider, reset around the test. A crash fails the test."""
    hostile_idp.reset()
    yield hostile_idp
    hostile_idp.reset()
    fatal = hostile_site.new_fatal_log_lines()
    assert fatal == [], "the hostile site's error log has fatal lines:\n" + "\n".join(
        fatal
    )


def hostile_callback(session, site, path="/intranet/env.cgi"):
    """Start a login at path and return the module's response to the callback."""
    start = session.get(site.url(path), allow_redirects=False)
    assert (
        start.status_code == 302
    ), f"GET {path} without a session returned {start.status_code}, expected 302"
    at_provider = session.get(start.headers["Location"], allow_redirects=False)
    assert (
        at_provider.status_code == 302
    ), f"the hostile provider returned {at_provider.status_code}, expected 302"
    return session.get(at_provider.headers["Location"], allow_redirects=False)


def hostile_login(session, site, path="/intranet/env.cgi"):
    """Log in through the hostile provider and return the callback's 302."""
    callback = hostile_callback(session, site, path)
    assert callback.status_code == 302, (
        f"the login through the hostile provider failed: {callback.status_code}: "
        f"{callback.text[:500]}"
    )
    return callback


# --- ID tokens -----------------------------------------------------------------------


def header_of(provider, **changes):
    fields = {"alg": "RS256", "typ": "JWT", "kid": provider.keys[0].kid}
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not None}


def hs256_token(provider, claims, client_secret):
    signing_input = b64url_json(header_of(provider, alg="HS256")) + "." + b64url_json(claims)
    mac = hmac.new(client_secret.encode(), signing_input.encode(), hashlib.sha256)
    return signing_input + "." + b64url(mac.digest())


def duplicate_sub_payload(claims):
    text = json.dumps(claims, separators=(",", ":"))
    return text[:-1].encode() + b',"sub":"usr_other"}'


def with_segment(token, index, change):
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


# name: (build(provider, claims, client_secret) -> token, log pattern of the cause,
#        what an IdP-initiated login with it does: "rejected" or "login").
# IdP-initiated tokens only start a normal login, so the module checks their
# signature, iss and exp, not aud or iat: those cases start a login.
TOKEN_CASES = {
    "alg_none": (
        lambda p, c, s: b64url_json({"alg": "none", "typ": "JWT"}) + "." + b64url_json(c) + ".",
        "algorithm",
        "rejected",
    ),
    "hs256_client_secret": (hs256_token, "algorithm", "rejected"),
    "kid_absent_two_keys": (
        lambda p, c, s: p.sign(c, kid=None),
        r"no kid",
        "rejected",
    ),
    "kid_path": (lambda p, c, s: p.sign(c, kid="../../../../etc/passwd"), r"\bkid\b", "rejected"),
    "kid_sql": (lambda p, c, s: p.sign(c, kid="x' OR '1'='1'; --"), r"\bkid\b", "rejected"),
    "kid_of_other_key": (
        lambda p, c, s: p.sign(c, key_index=1, kid=p.keys[0].kid),
        "signature",
        "rejected",
    ),
    "payload_not_json": (
        lambda p, c, s: compact_jws(p.keys[0], header_of(p), b"this is not JSON"),
        "payload",
        "rejected",
    ),
    "payload_duplicate_keys": (
        lambda p, c, s: compact_jws(p.keys[0], header_of(p), duplicate_sub_payload(c)),
        "payload",
        "rejected",
    ),
    "exp_as_string": (lambda p, c, s: p.sign(dict(c, exp=str(c["exp"]))), r"\bexp\b", "rejected"),
    "iat_as_string": (lambda p, c, s: p.sign(dict(c, iat=str(c["iat"]))), r"\biat\b", "login"),
    "exp_milliseconds": (lambda p, c, s: p.sign(dict(c, exp=c["exp"] * 1000)), r"\bexp\b", "login"),
    "exp_after_2038": (lambda p, c, s: p.sign(dict(c, exp=2**31 + 86400)), r"\bexp\b", "login"),
    "iat_future": (lambda p, c, s: p.sign(dict(c, iat=c["iat"] + 3600)), "future", "login"),
    "aud_number": (lambda p, c, s: p.sign(dict(c, aud=12345)), "audience", "login"),
    "aud_object": (lambda p, c, s: p.sign(dict(c, aud={"id": c["aud"]})), "audience", "login"),
    "aud_array_with_number": (
        lambda p, c, s: p.sign(dict(c, aud=[c["aud"], 7])),
        "audience",
        "login",
    ),
    "size_100kb": (
        lambda p, c, s: p.sign(dict(c, padding="x" * 100_000)),
        "limit",
        "rejected",
    ),
    "b64_padding": (
        lambda p, c, s: with_segment(p.sign(c), 0, lambda part: part + "="),
        "base64url",
        "rejected",
    ),
    "b64_whitespace": (
        lambda p, c, s: with_segment(p.sign(c), 0, lambda part: part[:8] + " " + part[8:]),
        "base64url",
        "rejected",
    ),
    "b64_invalid_chars": (
        lambda p, c, s: with_segment(p.sign(c), 2, lambda part: "+/" + part[2:]),
        "base64url",
        "rejected",
    ),
    "jwe_five_parts": (
        lambda p, c, s: b64url_json({"alg": "RSA-OAEP", "enc": "A256GCM"}) + ".a.b.c.d",
        "three parts",
        "rejected",
    ),
}


@pytest.mark.parametrize("case", sorted(TOKEN_CASES))
def test_token_rejected_hostile(hostile, hostile_site, client_secret, case):
    build, cause, _ = TOKEN_CASES[case]
    hostile.token_builder = lambda provider, claims: build(provider, claims, client_secret)
    mark = hostile_site.log_mark()

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)
        after = session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False)

    assert_error_page(callback, 502, f"ID token {case}")
    assert_logged(hostile_site, mark, "ID token rejected: .*" + cause, f"ID token {case}")
    assert (
        after.status_code == 302
    ), f"ID token {case}: the next request got {after.status_code}, expected 302 to log in"


@pytest.mark.parametrize("case", sorted(TOKEN_CASES))
def test_token_rejected_devidp(httpd, provider, client_secret, case):
    build, _, _ = TOKEN_CASES[case]
    # A key the dev provider never published signs the token.
    forger = HostileIdp(harness.CLIENT_ID)
    forger.issuer = provider.issuer

    with harness.browser() as session:
        start = session.get(httpd.url("/intranet/"), allow_redirects=False)
        nonce = harness.query_of(start.headers["Location"])["nonce"]
        token = build(forger, forger.valid_claims(nonce), client_secret)
        provider.misbehave(
            token_body=json.dumps(
                {"access_token": "x" * 20, "id_token": token, "token_type": "Bearer"}
            )
        )
        _, posted = harness.sign_in_at_provider(session, start.headers["Location"], "alice")
        mark = httpd.log_mark()
        callback = session.get(posted.headers["Location"], allow_redirects=False)

    assert_error_page(callback, 502, f"ID token {case} from the dev provider")
    assert_logged(httpd, mark, "ID token rejected", f"ID token {case} from the dev provider")


@pytest.mark.parametrize("case", sorted(TOKEN_CASES))
def test_idp_initiated_token_hostile(hostile, hostile_site, client_secret, case):
    build, _, outcome = TOKEN_CASES[case]
    token = build(hostile, hostile.valid_claims("unused"), client_secret)
    query = urllib.parse.urlencode({"idp_initiated_login": token})
    mark = hostile_site.log_mark()

    response = get(hostile_site.url(f"/scalekit/callback?{query}"))

    if case == "size_100kb":
        # The request line is over httpd's LimitRequestLine, so httpd's core responds.
        assert (
            response.status_code == 414
        ), f"IdP-initiated {case}: expected 414 from httpd, got {response.status_code}"
    elif outcome == "login":
        assert is_authorize_redirect(response, hostile.issuer), (
            f"IdP-initiated {case}: expected a plain login start (302 to the provider), "
            f"got {response.status_code} {response.headers.get('Location')}"
        )
        assert (
            harness.find_set_cookie(response, harness.SESSION_COOKIE) is None
        ), f"IdP-initiated {case}: a session cookie was set before any login"
    else:
        assert_error_page(response, 400, f"IdP-initiated {case}")
        assert_logged(hostile_site, mark, "IdP-initiated login rejected", f"IdP-initiated {case}")


def test_hostile_login_mixed_jwks(hostile, hostile_site):
    # The JWKS contains EC, oct, OKP and RSA "enc" keys besides the two signing keys.
    with harness.browser() as session:
        hostile_login(session, hostile_site)
        variables = env_of(
            session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False),
            "login with a mixed JWKS",
        )

    assert (
        variables.get("REMOTE_USER") == HOSTILE_SUB.encode()
    ), f"REMOTE_USER is {variables.get('REMOTE_USER')!r}, expected {HOSTILE_SUB!r}"


def test_hostile_second_key_accepted(hostile, hostile_site):
    hostile.token_builder = lambda provider, claims: provider.sign(claims, key_index=1)

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)

    assert callback.status_code == 302, (
        f"a token of the JWKS's second RSA key was rejected: {callback.status_code}: "
        f"{callback.text[:300]}"
    )


# --- Provider responses --------------------------------------------------------------

TOKEN_RESPONSES = {
    "html": ({"token_body": "<!DOCTYPE html><html><body>Bad gateway</body></html>"}, "not a JSON object"),
    "truncated_json": ({"token_body": '{"access_token":"abc","id_token":"eyJhbGciOi'}, "not a JSON object"),
    "http_500": ({"token_status": 500}, "HTTP status 500"),
    "error_json": (
        {"token_status": 400, "token_body": json.dumps({"error": "invalid_grant", "error_description": "<b>no</b>"})},
        "invalid_grant",
    ),
    "no_id_token": ({"token_body": json.dumps({"access_token": "a", "token_type": "Bearer"})}, "no id_token"),
}


@pytest.mark.parametrize("case", sorted(TOKEN_RESPONSES))
def test_token_response_rejected(httpd, provider, secret_ledger, case):
    changes, cause = TOKEN_RESPONSES[case]
    provider.misbehave(**changes)

    with harness.browser() as session:
        start = session.get(httpd.url("/intranet/"), allow_redirects=False)
        _, posted = harness.sign_in_at_provider(session, start.headers["Location"], "alice")
        secret_ledger.add("authorization code", harness.query_of(posted.headers["Location"]).get("code"))
        mark = httpd.log_mark()
        callback = session.get(posted.headers["Location"], allow_redirects=False)

    assert_error_page(callback, 502, f"token response {case}")
    assert_logged(httpd, mark, "token request .*" + cause, f"token response {case}")


def test_token_response_timeout(hostile, hostile_site):
    hostile.token_delay = SLOW_TOKEN_DELAY
    mark = hostile_site.log_mark()

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)

    assert_error_page(callback, 502, "token endpoint slower than ScalekitHTTPTimeout")
    assert (
        callback.elapsed.total_seconds() < SLOW_TOKEN_DELAY
    ), f"the callback took {callback.elapsed}, so the {HOSTILE_HTTP_TIMEOUT} s timeout did not apply"
    assert_logged(hostile_site, mark, "token request failed", "slow token endpoint")


def test_token_response_2mb_502(hostile, hostile_site):
    # Over the 1 MiB that the module reads of a provider response (SK_HTTP_MAX_BODY).
    hostile.token_body = json.dumps({"id_token": "a" * (2 * 1024 * 1024)}).encode()
    mark = hostile_site.log_mark()

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)

    assert_error_page(callback, 502, "token response of 2 MiB")
    assert_logged(hostile_site, mark, "larger than", "token response of 2 MiB")


def test_discovery_other_issuer_503(dev_idp, provider, client_secret):
    # A server of its own: the shared one has cached the discovery document already.
    provider.misbehave(discovery_issuer="https://other-issuer.example.test")
    root = harness.make_tree("mod-auth-scalekit-discovery-")
    server = harness.Httpd(root, harness.SiteConfig(dev_idp.issuer, client_secret))
    try:
        server.start()
        mark = server.log_mark()
        response = get(server.url("/intranet/"), headers={"Accept": harness.BROWSER_ACCEPT})
        log = server.wait_for_log(mark, "not the configured issuer")
        fatal = server.new_fatal_log_lines()
    finally:
        server.stop()
        shutil.rmtree(root)

    assert_error_page(response, 503, "discovery with another issuer")
    assert (
        error_log_line(log, "discovery.*not the configured issuer") is not None
    ), f"no log line names the issuer mismatch:\n{log}"
    assert fatal == [], "fatal error-log lines:\n" + "\n".join(fatal)


# --- Callback requests ---------------------------------------------------------------

CALLBACK_QUERIES = {
    "no_state": ("code=abc", "no state parameter"),
    "empty_state": ("state=&code=abc", "no state parameter"),
    "state_twice": ("state=0aaaa&state=0bbbb&code=abc", "repeated"),
    "code_twice": ("state=0aaaa&code=abc&code=def", "repeated"),
    "state_not_ours": ("state=Zzzz&code=abc", "not made by this module"),
    "bad_percent_escape": ("state=%zz&code=%", "state"),
}


@pytest.mark.parametrize("case", sorted(CALLBACK_QUERIES))
def test_callback_query_400(httpd, provider, case):
    query, cause = CALLBACK_QUERIES[case]
    mark = httpd.log_mark()

    response = get(httpd.url(f"/scalekit/callback?{query}"))

    assert_error_page(response, 400, f"callback {case}")
    assert_logged(httpd, mark, cause, f"callback {case}")
    assert provider.requests_to("/oauth/token") == [], f"callback {case} redeemed a code"


def test_callback_replay_400(hostile, hostile_site):
    with harness.browser() as session:
        start = session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False)
        at_provider = session.get(start.headers["Location"], allow_redirects=False)
        callback_url = at_provider.headers["Location"]
        first = session.get(callback_url, allow_redirects=False)
        mark = hostile_site.log_mark()
        replay = session.get(callback_url, allow_redirects=False)

    assert first.status_code == 302, f"the first callback failed: {first.status_code}"
    assert_error_page(replay, 400, "replayed callback URL")
    assert_logged(hostile_site, mark, "state", "replayed callback URL")
    assert hostile.token_requests == 1, "the replayed callback redeemed the code again"


def test_callback_other_iss_400(hostile, hostile_site):
    with harness.browser() as session:
        start = session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False)
        at_provider = session.get(start.headers["Location"], allow_redirects=False)
        forged = re.sub(
            r"([?&]iss=)[^&]*",
            r"\g<1>" + urllib.parse.quote("https://evil.example", safe=""),
            at_provider.headers["Location"],
        )
        mark = hostile_site.log_mark()
        response = session.get(forged, allow_redirects=False)

    assert_error_page(response, 400, "callback with another issuer's iss")
    assert_logged(hostile_site, mark, "iss parameter", "callback with another iss")
    assert hostile.token_requests == 0, "the module redeemed a code of another issuer"


def test_callback_error_description_escaped(hostile, hostile_site):
    description = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"quoted\""
    with harness.browser() as session:
        start = session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False)
        state = harness.query_of(start.headers["Location"])["state"]
        query = urllib.parse.urlencode(
            {"state": state, "error": "access_denied", "error_description": description}
        )
        mark = hostile_site.log_mark()
        response = session.get(hostile_site.url(f"/scalekit/callback?{query}"), allow_redirects=False)

    assert_error_page(response, 403, "provider error with HTML in error_description")
    assert "<script>" not in response.text, "the page contains the <script> unescaped"
    assert "<img" not in response.text, "the page contains the <img> unescaped"
    assert "&lt;script&gt;" in response.text, f"the description is not shown escaped: {response.text}"
    assert_logged(hostile_site, mark, "identity provider returned error", "provider error")


def test_callback_long_query_400(httpd, provider):
    # Under httpd's LimitRequestLine (8190 bytes), so the module parses it.
    query = "state=0" + "a" * 8000 + "&code=" + "b" * 100
    mark = httpd.log_mark()

    response = get(httpd.url(f"/scalekit/callback?{query}"))

    assert_error_page(response, 400, "callback with an 8 KB state")
    assert_logged(httpd, mark, "state", "callback with an 8 KB state")


def test_callback_query_over_limit_414(httpd, provider):
    query = "state=0" + "a" * 9000 + "&code=abc"

    response = get(httpd.url(f"/scalekit/callback?{query}"))

    assert (
        response.status_code == 414
    ), f"a 9 KB request line returned {response.status_code}, expected 414 from httpd"


# --- Session cookies -----------------------------------------------------------------


def session_cookies(response):
    """Return {name: value} of the session cookie and its chunks that response sets,
    in order, without the ID token cookie of the logout path."""
    pattern = re.compile(re.escape(harness.SESSION_COOKIE) + r"(_[0-9]+)?")
    cookies = {}
    for header in harness.set_cookie_headers(response):
        name, _, rest = header.partition("=")
        if pattern.fullmatch(name):
            cookies[name] = rest.split(";", 1)[0]
    return cookies


def cookie_header(pairs):
    return "; ".join(f"{name}={value}" for name, value in pairs)


# About 3.8 KB of claims: the sealed session then needs two chunk cookies (more than
# 3800 bytes) and stays under the 7000 bytes that the module writes at most.
TWO_CHUNK_GROUPS = [f"group-{i:03d}-two-chunks" for i in range(165)]


@pytest.fixture
def chunked_session(hostile, hostile_site):
    """Log in with a session of two chunk cookies. Returns its cookies in order."""
    hostile.extra_claims = {"groups": TWO_CHUNK_GROUPS}
    with harness.browser() as session:
        callback = hostile_login(session, hostile_site)
    cookies = session_cookies(callback)
    base = cookies.get(harness.SESSION_COOKIE, "")
    assert base == "chunks:2", (
        f"the test session should take two chunks, the base cookie is {base[:40]!r}; "
        "adjust TWO_CHUNK_GROUPS"
    )
    return list(cookies.items())


def request_with_cookies(site, header, path="/intranet/env.cgi"):
    return get(site.url(path), headers={"Accept": harness.BROWSER_ACCEPT, "Cookie": header})


def test_chunked_session_intact(hostile_site, chunked_session):
    response = request_with_cookies(hostile_site, cookie_header(chunked_session))

    variables = env_of(response, "intact chunked session")
    assert variables.get("REMOTE_USER") == HOSTILE_SUB.encode(), "the intact chunks were not accepted"


def flip(value, index):
    return value[:index] + ("A" if value[index] != "A" else "B") + value[index + 1 :]


# name: (change of the cookie list, log pattern)
CHUNK_ATTACKS = {
    "tampered_chunk": (lambda c: [c[0], c[1], (c[2][0], flip(c[2][1], 100))], "could not be decrypted"),
    "truncated_chunk": (lambda c: [c[0], (c[1][0], c[1][1][:-10]), c[2]], "could not be decrypted"),
    "reordered_chunks": (lambda c: [c[0], (c[1][0], c[2][1]), (c[2][0], c[1][1])], "could not be decrypted"),
    "missing_chunk": (lambda c: [c[0], c[1]], "missing or invalid chunk"),
    "empty_chunk": (lambda c: [c[0], c[1], (c[2][0], "")], "missing or invalid chunk"),
    "count_99999999": (lambda c: [(c[0][0], "chunks:99999999"), c[1], c[2]], "missing or invalid chunk"),
    "count_0": (lambda c: [(c[0][0], "chunks:0"), c[1], c[2]], "missing or invalid chunk"),
    "count_1": (lambda c: [(c[0][0], "chunks:1"), c[1], c[2]], "could not be decrypted"),
    "count_negative": (lambda c: [(c[0][0], "chunks:-1"), c[1], c[2]], "missing or invalid chunk"),
    "chunk_twice_bad_first": (lambda c: [c[0], (c[1][0], "AAAA"), c[1], c[2]], "could not be decrypted"),
}


@pytest.mark.parametrize("case", sorted(CHUNK_ATTACKS))
def test_chunked_session_attack(hostile_site, chunked_session, case):
    change, cause = CHUNK_ATTACKS[case]
    mark = hostile_site.log_mark()

    response = request_with_cookies(hostile_site, cookie_header(change(chunked_session)))

    assert is_authorize_redirect(response, hostile_site.site.issuer), (
        f"session cookie {case}: expected 302 to log in again, got {response.status_code}: "
        f"{response.text[:300]}"
    )
    assert HOSTILE_SUB not in response.text, f"session cookie {case}: protected content sent"
    assert_logged(hostile_site, mark, cause, f"session cookie {case}")


def test_session_over_header_limit_500(hostile, hostile_site):
    # About 10 KB of claims, more than fits httpd's default LimitRequestFieldSize of
    # 8190 bytes for the Cookie header, so the module rejects the session at login.
    hostile.extra_claims = {"groups": [f"group-{i:03d}-three-chunks" for i in range(400)]}
    mark = hostile_site.log_mark()

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)
        after = session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False)

    assert_error_page(callback, 500, "session over the Cookie header limit")
    assert_logged(hostile_site, mark, "bytes sealed", "session over the Cookie header limit")
    assert after.status_code == 302, (
        f"the request after the refused login got {after.status_code}, expected 302 "
        "to log in (not httpd's 400 for an oversized Cookie header)"
    )


def test_oversized_session_500(hostile, hostile_site):
    # 40 KB of claims, far over the 7000 sealed bytes that the module writes to cookies.
    hostile.extra_claims = {"bio": "x" * 40_000}
    mark = hostile_site.log_mark()

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)

    assert_error_page(callback, 500, "session too large for cookies")
    assert_logged(hostile_site, mark, "bytes sealed", "session too large for cookies")


@pytest.fixture
def small_session(hostile, hostile_site):
    with harness.browser() as session:
        callback = hostile_login(session, hostile_site)
    value = session_cookies(callback).get(harness.SESSION_COOKIE, "")
    assert value and not value.startswith("chunks:"), "the session should fit one cookie"
    return value


def test_hundreds_of_cookies(hostile_site, small_session):
    pairs = [(f"c{i}", f"v{i}") for i in range(300)] + [(harness.SESSION_COOKIE, small_session)]

    variables = env_of(request_with_cookies(hostile_site, cookie_header(pairs)), "300 cookies")

    assert variables.get("REMOTE_USER") == HOSTILE_SUB.encode(), "the session among 300 cookies was lost"


def test_session_cookie_twice(hostile_site, small_session):
    good_first = [(harness.SESSION_COOKIE, small_session), (harness.SESSION_COOKIE, "garbage")]
    bad_first = list(reversed(good_first))

    good = request_with_cookies(hostile_site, cookie_header(good_first))
    bad = request_with_cookies(hostile_site, cookie_header(bad_first))

    assert (
        env_of(good, "session cookie, then garbage").get("REMOTE_USER") == HOSTILE_SUB.encode()
    ), "session cookie, then garbage: the first (valid) value was not used"
    assert is_authorize_redirect(bad, hostile_site.site.issuer), (
        f"garbage, then the session cookie: expected 302 to log in (the first value "
        f"counts), got {bad.status_code}"
    )


def test_cookie_non_utf8(hostile_site, hostile):
    mark = hostile_site.log_mark()
    header = (harness.SESSION_COOKIE + "=").encode() + b"\xff\xfe\x80\xc0\xaf; x=\xe9t\xe9"

    response = request_with_cookies(hostile_site, header)

    assert is_authorize_redirect(response, hostile.issuer), (
        f"a session cookie of non-UTF-8 bytes gave {response.status_code}, expected 302"
    )
    assert_logged(hostile_site, mark, "session cookie", "non-UTF-8 session cookie")


def test_session_cookie_tampered_single(hostile_site, small_session):
    mark = hostile_site.log_mark()

    response = request_with_cookies(
        hostile_site, cookie_header([(harness.SESSION_COOKIE, flip(small_session, 30))])
    )

    assert is_authorize_redirect(response, hostile_site.site.issuer), (
        f"a tampered session cookie gave {response.status_code}, expected 302"
    )
    assert_logged(hostile_site, mark, "could not be decrypted", "tampered session cookie")


def test_long_url_state_cookie_fits(httpd, provider):
    # Browsers drop a cookie whose name and value exceed 4096 bytes, and the login
    # would then fail at the callback without its state cookie.
    response = get(
        httpd.url("/intranet/?q=" + "a" * 5000), headers={"Accept": harness.BROWSER_ACCEPT}
    )

    assert response.status_code == 302, f"expected 302 to log in, got {response.status_code}"
    state_cookies = [
        header.split(";", 1)[0]
        for header in harness.set_cookie_headers(response)
        if header.startswith(harness.STATE_COOKIE_PREFIX)
    ]
    assert len(state_cookies) == 1, f"expected one state cookie, got {len(state_cookies)}"
    assert len(state_cookies[0]) <= 4096, (
        f"the state cookie is {len(state_cookies[0])} bytes (name=value), more than "
        "the 4096 that browsers keep (RFC 6265, section 6.1)"
    )


# --- Claims --------------------------------------------------------------------------

CONTROL_CLAIMS = {
    "crlf": "line1\r\nInjected-Header: yes",
    "nul": "before\u0000after",
    "escape": "\u001b[31mred\u0007",
    "c1": "a\u0085b\u009bc",
    "del": "a\u007fb",
    "tab": "a\tb",
}


def assert_clean_value(name, value):
    assert all(byte >= 0x20 and byte != 0x7F for byte in value), (
        f"{name} contains a control byte: {value!r}"
    )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        pytest.fail(f"{name} is not valid UTF-8: {value!r}")
    assert not any(0x80 <= ord(ch) <= 0x9F for ch in text), f"{name} has a C1 control: {value!r}"


def test_claims_control_characters(hostile, hostile_site):
    hostile.extra_claims = dict(CONTROL_CLAIMS)
    with harness.browser() as session:
        hostile_login(session, hostile_site, "/headers/env.cgi")
        variables = env_of(
            session.get(hostile_site.url("/headers/env.cgi"), allow_redirects=False),
            "claims with control characters",
        )

    for claim in CONTROL_CLAIMS:
        for name in (f"SCALEKIT_CLAIM_{claim}", f"HTTP_SCALEKIT_CLAIM_{claim.upper()}"):
            assert name in variables, f"{name} is missing; variables: {sorted(variables)}"
            assert_clean_value(name, variables[name])
    assert "HTTP_INJECTED_HEADER" not in variables, "a CR LF in a claim injected a request header"
    assert variables["SCALEKIT_CLAIM_crlf"].startswith(b"line1"), "the CR LF claim lost its text"


def test_sub_control_characters(hostile, hostile_site):
    hostile.extra_claims = {"sub": "usr\r\nforged\u0000\u001b[0m"}
    with harness.browser() as session:
        hostile_login(session, hostile_site)
        variables = env_of(
            session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False),
            "sub with control characters",
        )

    assert "REMOTE_USER" in variables, f"REMOTE_USER is not set: {sorted(variables)}"
    assert_clean_value("REMOTE_USER", variables["REMOTE_USER"])
    access_log = hostile_site.read_access_log()
    assert "forged" in access_log, "the access log has no line with the user (%u)"
    assert "\r" not in access_log, "a CR of the sub reached the access log"


def test_claims_non_utf8(hostile, hostile_site):
    def build(provider, claims):
        text = json.dumps(claims, separators=(",", ":"))
        payload = text[:-1].encode() + b',"raw":"a\xff\xfeb\xc0\xafc\xed\xa0\x80d"}'
        return compact_jws(provider.keys[0], header_of(provider), payload)

    hostile.token_builder = build
    with harness.browser() as session:
        hostile_login(session, hostile_site)
        variables = env_of(
            session.get(hostile_site.url("/intranet/env.cgi"), allow_redirects=False),
            "claim with invalid UTF-8",
        )

    assert "SCALEKIT_CLAIM_raw" in variables, f"the claim is missing: {sorted(variables)}"
    assert_clean_value("SCALEKIT_CLAIM_raw", variables["SCALEKIT_CLAIM_raw"])


def test_claims_64kb_token_502(hostile, hostile_site):
    # A 64 KB claim makes the ID token larger than the module's 64 KB limit.
    hostile.extra_claims = {"bio": "x" * 65536}
    mark = hostile_site.log_mark()

    with harness.browser() as session:
        callback = hostile_callback(session, hostile_site)

    assert_error_page(callback, 502, "ID token with a 64 KB claim")
    assert_logged(hostile_site, mark, "limit", "ID token with a 64 KB claim")


ODD_NAMES = {
    "e-mail": "SCALEKIT_CLAIM_e_mail",
    "x.y": "SCALEKIT_CLAIM_x_y",
    "with space": "SCALEKIT_CLAIM_with_space",
    "ün": "SCALEKIT_CLAIM___n",
    "=bad": "SCALEKIT_CLAIM__bad",
}


def test_claims_odd_names(hostile, hostile_site):
    hostile.extra_claims = {name: f"value of {name}" for name in ODD_NAMES}
    with harness.browser() as session:
        hostile_login(session, hostile_site, "/headers/env.cgi")
        variables = env_of(
            session.get(hostile_site.url("/headers/env.cgi"), allow_redirects=False),
            "claims with odd names",
        )

    for claim, variable in ODD_NAMES.items():
        assert (
            variables.get(variable) == f"value of {claim}".encode()
        ), f"claim {claim!r}: {variable} is {variables.get(variable)!r}"
    for name in variables:
        if name.startswith("SCALEKIT_CLAIM_"):
            assert re.fullmatch(r"SCALEKIT_CLAIM_[A-Za-z0-9_]+", name), f"odd variable name {name!r}"


# --- Spoofed claim headers -----------------------------------------------------------

SPOOF_HEADERS = {
    "Scalekit-Claim-Email": SPOOFED_EMAIL,
    "SCALEKIT_CLAIM_EMAIL": SPOOFED_EMAIL,
    "Scalekit_Claim_Email": SPOOFED_EMAIL,
    "scalekit-claim-sub": SPOOFED_USER,
    "X-Remote-User": SPOOFED_USER,
    "Remote-User": SPOOFED_USER,
}


def assert_not_spoofed(variables, step, logged_in):
    for name, value in variables.items():
        if name.startswith("SCALEKIT_CLAIM_") or name in ("REMOTE_USER", "AUTH_TYPE"):
            assert (
                SPOOFED_EMAIL.encode() not in value and SPOOFED_USER.encode() not in value
            ), f"{step}: the spoofed value reached {name}={value!r}"
        if name.startswith("HTTP_SCALEKIT"):
            assert (
                SPOOFED_EMAIL.encode() not in value and SPOOFED_USER.encode() not in value
            ), f"{step}: a spoofed claim header reached the CGI as {name}"
    if logged_in:
        assert variables.get("REMOTE_USER") == HOSTILE_SUB.encode(), f"{step}: REMOTE_USER is wrong"
    else:
        assert "REMOTE_USER" not in variables, f"{step}: REMOTE_USER set without a login"
        assert not any(
            name.startswith("SCALEKIT_CLAIM_") for name in variables
        ), f"{step}: claim variables without a login: {sorted(variables)}"


@pytest.mark.parametrize("path", ["/intranet/env.cgi", "/headers/env.cgi", "/optional/env.cgi", "/public/env.cgi"])
def test_spoofed_headers_logged_in(hostile, hostile_site, path):
    with harness.browser() as session:
        hostile_login(session, hostile_site)
        response = session.get(hostile_site.url(path), headers=SPOOF_HEADERS, allow_redirects=False)

    variables = env_of(response, f"spoofed headers, logged in, {path}")
    assert_not_spoofed(variables, f"logged in, {path}", logged_in=path != "/public/env.cgi")
    if path == "/headers/env.cgi":
        assert (
            variables.get("HTTP_SCALEKIT_CLAIM_EMAIL") == HOSTILE_EMAIL.encode()
        ), "the claim header does not carry the session's email"


@pytest.mark.parametrize("path", ["/optional/env.cgi", "/public/env.cgi"])
def test_spoofed_headers_anonymous(hostile, hostile_site, path):
    response = get(hostile_site.url(path), headers=SPOOF_HEADERS)

    assert_not_spoofed(env_of(response, f"anonymous, {path}"), f"anonymous, {path}", False)


@pytest.mark.parametrize("path", ["/intranet/env.cgi", "/headers/env.cgi"])
def test_spoofed_headers_protected_anonymous(hostile, hostile_site, path):
    response = get(hostile_site.url(path), headers=dict(SPOOF_HEADERS, Accept="application/json"))

    assert response.status_code == 401, f"{path} without a session returned {response.status_code}"
    assert SPOOFED_EMAIL not in response.text, "the 401 page shows the spoofed value"


@pytest.mark.parametrize("path", ["/intranet/claims.cgi", "/team/claims.cgi"])
def test_spoofed_headers_example_cgi(httpd, provider, browser, login, path):
    login(browser, httpd.url("/intranet/"))

    response = browser.get(httpd.url(path), headers=SPOOF_HEADERS, allow_redirects=False)

    assert response.status_code == 200, f"{path} returned {response.status_code}"
    variables = harness.page_variables(response.text)
    for name, value in variables.items():
        assert (
            SPOOFED_EMAIL not in value and SPOOFED_USER not in value
        ), f"{path}: the spoofed value reached {name}"
    assert variables.get("REMOTE_USER") == "usr_acme_alice", f"{path}: REMOTE_USER is wrong"


# --- Redirect targets ----------------------------------------------------------------

# Raw values, each percent-encoded once into return_to.
REJECTED_TARGETS = {
    "double_slash": "//evil.example/",
    "slash_backslash": "/\\evil.example/",
    "backslashes": "\\\\evil.example/",
    "tab_inside": "/\t/evil.example/",
    "newline_inside": "/\n/evil.example/",
    "crlf_header": "/\r\nLocation: https://evil.example/",
    "encoded_slashes": "/%2F%2Fevil.example/",
    "encoded_slashes_only": "%2F%2Fevil.example/",
    "encoded_backslash": "/%5Cevil.example/",
    "https_no_slashes": "https:evil.example",
    "https_one_slash": "https:/evil.example",
    "javascript": "javascript:alert(document.cookie)",
    "data": "data:text/html,<script>alert(1)</script>",
    "ftp": "ftp://evil.example/",
    "other_host": "https://evil.example/",
    "userinfo": "https://good@evil.example/",
    "relative": "evil.example/path",
}


def origin_userinfo_target(httpd):
    return f"http://127.0.0.1:{httpd.site.port}@evil.example/"


@pytest.mark.parametrize("endpoint", ["login", "logout"])
@pytest.mark.parametrize("case", sorted(REJECTED_TARGETS) + ["origin_as_userinfo"])
def test_return_to_rejected(httpd, provider, endpoint, case):
    target = origin_userinfo_target(httpd) if case == "origin_as_userinfo" else REJECTED_TARGETS[case]
    query = "return_to=" + urllib.parse.quote(target, safe="")
    mark = httpd.log_mark()

    response = get(httpd.url(f"/scalekit/{endpoint}?{query}"), headers={"Accept": harness.BROWSER_ACCEPT})

    assert_error_page(response, 400, f"{endpoint} return_to {case}")
    assert "Location" not in response.headers, (
        f"{endpoint} return_to {case}: redirects to {response.headers['Location']!r}"
    )
    assert_logged(httpd, mark, "return_to", f"{endpoint} return_to {case}")


# Ports that are not this server's port but equal it modulo 65536, or carry a sign.
INVALID_PORTS = {
    "port_plus_65536": lambda port: str(port + 65536),
    "port_plus_sign": lambda port: f"+{port}",
    "port_negative": lambda port: str(port - 65536),
}


@pytest.mark.parametrize("endpoint", ["login", "logout"])
@pytest.mark.parametrize("case", sorted(INVALID_PORTS))
def test_return_to_invalid_port(httpd, provider, endpoint, case):
    target = f"http://127.0.0.1:{INVALID_PORTS[case](httpd.site.port)}/intranet/"
    query = "return_to=" + urllib.parse.quote(target, safe="")

    response = get(httpd.url(f"/scalekit/{endpoint}?{query}"), headers={"Accept": harness.BROWSER_ACCEPT})

    assert response.status_code == 400, (
        f"{endpoint} return_to {target}: expected 400, got {response.status_code} "
        f"with Location {response.headers.get('Location')!r}"
    )


@pytest.mark.parametrize("endpoint", ["login", "logout"])
def test_return_to_unencoded_slashes(httpd, provider, endpoint):
    # %2F decodes to "/", so the module receives "///evil.example/".
    response = get(httpd.url(f"/scalekit/{endpoint}?return_to=/%2F%2Fevil.example/"))

    assert_error_page(response, 400, f"{endpoint} return_to /%2F%2F")


@pytest.mark.parametrize("endpoint", ["login", "logout"])
@pytest.mark.parametrize("target", ["/intranet/", "/intranet/?a=b&c=%2F", "ORIGIN/intranet/"])
def test_return_to_accepted(httpd, provider, endpoint, target):
    target = target.replace("ORIGIN", httpd.base)
    query = "return_to=" + urllib.parse.quote(target, safe="")

    response = get(httpd.url(f"/scalekit/{endpoint}?{query}"), headers={"Accept": harness.BROWSER_ACCEPT})

    assert response.status_code == 302, f"{endpoint} return_to {target}: got {response.status_code}"
    location = response.headers["Location"]
    if endpoint == "logout":
        expected = target if target.startswith("http") else httpd.base + target
        assert location == expected, f"logout return_to {target}: Location is {location!r}"
    else:
        assert location.startswith(
            provider.url("/oauth/authorize?")
        ), f"login return_to {target}: Location {location!r} is not the provider"
