"""Requests that mod_auth_scalekit must reject, invalid configurations, and log hygiene.

test_logs_contain_no_secrets reads the logs that every earlier test of the session
wrote, so it stays the last test of this file, and this file sorts after
test_login.py.
"""

import base64
import json
import re
import secrets
import shutil
import urllib.parse

import pytest
import requests

import scalekit_harness as harness

# ID token misbehaviour of the dev provider, and a word that the module's error-log
# line must contain to name the cause.
INVALID_ID_TOKENS = [
    ("bad_signature", "signature"),
    ("wrong_aud", "audience"),
    ("wrong_iss", "issuer"),
    ("expired", "expired"),
    ("wrong_nonce", "nonce"),
    ("alg_none", "algorithm"),
    ("hs256", "algorithm"),
    ("no_sub", r"\bsub\b"),
    ("multi_aud_no_azp", "azp"),
    ("unknown_kid", "kid"),
    ("future_iat", "future"),
]

# (headers, method) of requests without a session that are not a browser navigation.
NOT_NAVIGATIONS = {
    "accept_json": ({"Accept": "application/json"}, "GET"),
    "accept_json_and_any": ({"Accept": "application/json, */*"}, "GET"),
    "x_requested_with": (
        {"Accept": "*/*", "X-Requested-With": "XMLHttpRequest"},
        "GET",
    ),
    "fetch_mode_cors": ({"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, "GET"),
    "head": ({"Accept": harness.BROWSER_ACCEPT}, "HEAD"),
    "head_fetch_mode_navigate": (
        {"Accept": harness.BROWSER_ACCEPT, "Sec-Fetch-Mode": "navigate"},
        "HEAD",
    ),
    "post": ({"Accept": harness.BROWSER_ACCEPT}, "POST"),
}

# Headers of requests without a session that count as a browser navigation. A None
# value makes requests send no such header.
NAVIGATIONS = {
    "accept_html": {"Accept": harness.BROWSER_ACCEPT},
    "accept_absent": {"Accept": None},
    "accept_any": {"Accept": "*/*"},
    "fetch_mode_navigate": {"Accept": "application/json", "Sec-Fetch-Mode": "navigate"},
}


def error_log_line(text, pattern):
    """Return the first auth_scalekit line of text that matches pattern, or None."""
    for line in text.splitlines():
        if "[auth_scalekit:" in line and re.search(pattern, line, re.IGNORECASE):
            return line
    return None


def assert_error_page(response, status, step):
    assert (
        response.status_code == status
    ), f"{step}: expected {status}, got {response.status_code}: {response.text[:500]}"
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith(
        "text/html"
    ), f"{step}: error page Content-Type is {content_type!r}, expected text/html"
    assert re.search(
        r"<title>[^<]*Error", response.text
    ), f"{step}: the error page title does not contain 'Error': {response.text[:300]}"
    assert (
        harness.find_set_cookie(response, harness.SESSION_COOKIE) is None
    ), f"{step}: the error response sets a session cookie"


def assert_logged(httpd, mark, pattern, step):
    text = httpd.wait_for_log(mark, pattern)
    assert (
        error_log_line(text, pattern) is not None
    ), f"{step}: no auth_scalekit error-log line matches {pattern!r}:\n{text}"


def start_login(session, httpd):
    """Request /intranet/ without a session and return the module's 302."""
    response = session.get(httpd.url("/intranet/"), allow_redirects=False)
    assert (
        response.status_code == 302
    ), f"GET /intranet/ without a session returned {response.status_code}, expected 302"
    return response


def callback_for(session, httpd, secret_ledger, user="alice"):
    """Start a login and sign in at the provider.

    Returns the module's 302 to the provider and the callback URL with the code.
    """
    start = start_login(session, httpd)
    secret_ledger.add_cookies(start)
    _, posted = harness.sign_in_at_provider(session, start.headers["Location"], user)
    callback_url = posted.headers["Location"]
    secret_ledger.add("authorization code", harness.query_of(callback_url).get("code"))
    return start, callback_url


def fail_login_at_callback(httpd, browser, secret_ledger):
    """Run a login to the callback and return the module's callback response."""
    _, callback_url = callback_for(browser, httpd, secret_ledger)
    callback = browser.get(callback_url, allow_redirects=False)
    secret_ledger.add_cookies(callback)
    return callback


# --- Requests without a session ------------------------------------------------------


@pytest.mark.parametrize("case", sorted(NOT_NAVIGATIONS))
def test_no_session_non_navigation_401(httpd, provider, case):
    headers, method = NOT_NAVIGATIONS[case]
    response = requests.request(
        method,
        httpd.url("/intranet/"),
        headers=headers,
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 401, (
        f"{method} {headers} without a session returned {response.status_code}, "
        "expected 401"
    )
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith(
        "Scalekit realm="
    ), f"WWW-Authenticate is {challenge!r}, expected 'Scalekit realm=\"...\"'"
    assert (
        harness.set_cookie_headers(response) == []
    ), f"the 401 sets cookies: {harness.set_cookie_headers(response)}"


@pytest.mark.parametrize("case", sorted(NAVIGATIONS))
def test_no_session_navigation_302(httpd, provider, case):
    response = requests.get(
        httpd.url("/intranet/"),
        headers=NAVIGATIONS[case],
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 302, (
        f"GET with {NAVIGATIONS[case]} without a session returned "
        f"{response.status_code}, expected 302 to the provider"
    )
    location = response.headers.get("Location", "")
    assert location.startswith(
        provider.url("/oauth/authorize?")
    ), f"Location {location!r} is not the provider's authorization endpoint"


# --- Session cookie ------------------------------------------------------------------


def test_tampered_session_cookie_ignored(httpd, provider, browser, login):
    login(browser, httpd.url("/intranet/"))
    value = browser.cookies.get(harness.SESSION_COOKIE)
    middle = len(value) // 2
    flipped = "B" if value[middle] == "A" else "A"
    tampered = value[:middle] + flipped + value[middle + 1 :]

    intact = requests.get(
        httpd.url("/intranet/"),
        headers={
            "Accept": harness.BROWSER_ACCEPT,
            "Cookie": f"{harness.SESSION_COOKIE}={value}",
        },
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )
    assert (
        intact.status_code == 200
    ), f"the untouched session cookie was not accepted: {intact.status_code}"

    mark = httpd.log_mark()
    response = requests.get(
        httpd.url("/intranet/"),
        headers={
            "Accept": harness.BROWSER_ACCEPT,
            "Cookie": f"{harness.SESSION_COOKIE}={tampered}",
        },
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 302, (
        f"a tampered session cookie gave {response.status_code}, expected 302 to "
        "the provider (no session)"
    )
    assert response.headers.get("Location", "").startswith(
        provider.url("/oauth/authorize?")
    ), f"Location {response.headers.get('Location')!r} is not the provider"
    assert_logged(httpd, mark, "session cookie", "tampered session cookie")


# --- Callback state ------------------------------------------------------------------


def test_callback_without_state_cookie_400(httpd, provider, browser, secret_ledger):
    _, callback_url = callback_for(browser, httpd, secret_ledger)
    mark = httpd.log_mark()

    # The callback comes from a client without cookies, like a login that started in
    # another browser.
    response = requests.get(
        callback_url, allow_redirects=False, timeout=harness.HTTP_TIMEOUT_SECONDS
    )

    assert_error_page(response, 400, "callback without its state cookie")
    assert_logged(httpd, mark, "state", "callback without its state cookie")
    assert (
        provider.requests_to("/oauth/token") == []
    ), "the module redeemed the code although the state check failed"


def test_callback_unknown_state_400(httpd, provider, browser):
    start_login(browser, httpd)
    state = "unknown" + secrets.token_urlsafe(16)

    response = browser.get(
        httpd.url(f"/scalekit/callback?code=abc&state={state}"), allow_redirects=False
    )

    assert_error_page(response, 400, "callback with an unknown state")


def test_callback_missing_state_400(httpd, provider, browser):
    start_login(browser, httpd)

    response = browser.get(
        httpd.url("/scalekit/callback?code=abc"), allow_redirects=False
    )

    assert_error_page(response, 400, "callback without a state parameter")


def test_callback_other_attempt_cookie_400(httpd, provider, secret_ledger):
    # Two login attempts in two browsers. The callback of attempt A arrives with the
    # state cookie value of attempt B under A's cookie name.
    with harness.browser() as first, harness.browser() as second:
        start_a, callback_url = callback_for(first, httpd, secret_ledger)
        start_b = start_login(second, httpd)
        secret_ledger.add_cookies(start_b)
    state_a = harness.query_of(start_a.headers["Location"])["state"]
    state_b = harness.query_of(start_b.headers["Location"])["state"]
    header_b = harness.find_set_cookie(start_b, harness.state_cookie_name(state_b))
    value_b, _ = harness.cookie_attributes(header_b)
    mark = httpd.log_mark()

    response = requests.get(
        callback_url,
        headers={"Cookie": f"{harness.state_cookie_name(state_a)}={value_b}"},
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    assert_error_page(response, 400, "callback with another attempt's state cookie")
    assert_logged(httpd, mark, "state", "callback with another attempt's state cookie")
    assert provider.requests_to("/oauth/token") == [], (
        "the module redeemed the code although the state cookie belongs to another "
        "attempt"
    )


def test_callback_replay_400(httpd, provider, browser, login_steps):
    steps = login_steps(browser, httpd.url("/intranet/"))
    assert (
        steps.callback.status_code == 302
    ), f"the first callback failed: {steps.callback.status_code}"
    mark = httpd.log_mark()

    replay = browser.get(steps.callback_url, allow_redirects=False)

    assert_error_page(replay, 400, "replayed callback URL")
    assert_logged(httpd, mark, "state", "replayed callback URL")
    assert (
        len(provider.requests_to("/oauth/token")) == 1
    ), "the replayed callback sent the code to the token endpoint again"


def test_callback_other_issuer_400(httpd, provider, browser, secret_ledger):
    _, callback_url = callback_for(browser, httpd, secret_ledger)
    other_issuer = urllib.parse.quote("https://other-issuer.example.test", safe="")
    forged_url = re.sub(r"([?&]iss=)[^&]*", r"\g<1>" + other_issuer, callback_url)
    assert forged_url != callback_url, f"the callback URL has no iss: {callback_url}"

    response = browser.get(forged_url, allow_redirects=False)

    assert_error_page(response, 400, "callback with another issuer's iss (RFC 9207)")
    assert (
        provider.requests_to("/oauth/token") == []
    ), "the module redeemed a code that came with another issuer's iss"


# --- Provider errors -----------------------------------------------------------------


def test_provider_error_403_escaped(httpd, provider, browser):
    description = "<script>alert('x')</script> & access was denied"
    provider.misbehave(
        authorize_error={"error": "access_denied", "error_description": description}
    )
    start = start_login(browser, httpd)
    at_provider = browser.get(start.headers["Location"], allow_redirects=False)
    assert (
        at_provider.status_code == 302
    ), f"the misbehaving provider returned {at_provider.status_code}, expected 302"
    mark = httpd.log_mark()

    response = browser.get(at_provider.headers["Location"], allow_redirects=False)

    assert_error_page(response, 403, "provider error access_denied")
    assert (
        "&lt;script&gt;" in response.text
    ), f"the error page does not show the HTML-escaped description: {response.text}"
    assert (
        "<script>" not in response.text
    ), "the error page contains the provider's <script> unescaped"
    assert_logged(
        httpd, mark, "identity provider returned error", "provider error access_denied"
    )


def test_provider_server_error_502(httpd, provider, browser):
    provider.misbehave(
        authorize_error={
            "error": "temporarily_unavailable",
            "error_description": "busy",
        }
    )
    start = start_login(browser, httpd)
    at_provider = browser.get(start.headers["Location"], allow_redirects=False)

    response = browser.get(at_provider.headers["Location"], allow_redirects=False)

    assert_error_page(response, 502, "provider error temporarily_unavailable")


@pytest.mark.parametrize(
    "mode, cause", INVALID_ID_TOKENS, ids=[mode for mode, _ in INVALID_ID_TOKENS]
)
def test_invalid_id_token_502(httpd, provider, browser, secret_ledger, mode, cause):
    provider.misbehave(id_token=mode)
    mark = httpd.log_mark()

    callback = fail_login_at_callback(httpd, browser, secret_ledger)

    assert_error_page(callback, 502, f"ID token {mode}")
    assert_logged(httpd, mark, cause, f"ID token {mode}")


def test_token_endpoint_500_gives_502(httpd, provider, browser, secret_ledger):
    provider.misbehave(token_status=500)
    mark = httpd.log_mark()

    callback = fail_login_at_callback(httpd, browser, secret_ledger)

    assert_error_page(callback, 502, "token endpoint 500")
    assert_logged(httpd, mark, "token request", "token endpoint 500")


def test_forged_token_response_502(httpd, provider, browser, secret_ledger):
    # Known token values, so the log check below can look for them verbatim.
    def segment(value):
        return (
            base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
        )

    id_token = ".".join(
        [
            segment({"alg": "RS256", "kid": "snk_forged", "typ": "JWT"}),
            segment(
                {"iss": provider.issuer, "sub": "usr_forged", "aud": harness.CLIENT_ID}
            ),
            base64.urlsafe_b64encode(secrets.token_bytes(256)).rstrip(b"=").decode(),
        ]
    )
    access_token = "forged_access_" + secrets.token_urlsafe(24)
    secret_ledger.add("forged ID token", id_token)
    secret_ledger.add("forged access token", access_token)
    provider.misbehave(
        token_status=200,
        token_body=json.dumps(
            {
                "access_token": access_token,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": 300,
            }
        ),
    )
    mark = httpd.log_mark()

    callback = fail_login_at_callback(httpd, browser, secret_ledger)

    assert_error_page(callback, 502, "ID token with an unknown kid")
    assert_logged(httpd, mark, "kid", "ID token with an unknown kid")


# --- Configuration test (apache2 -t) --------------------------------------------------


def configtest(tmp_site_root, **overrides):
    site = harness.SiteConfig("http://127.0.0.1:9", "configtest-client-secret")
    for name, value in overrides.items():
        setattr(site, name, value)
    conf = harness.write_site(tmp_site_root, site)
    return harness.run_configtest(conf)


@pytest.fixture
def site_root():
    root = harness.make_tree("mod-auth-scalekit-configtest-")
    yield root
    shutil.rmtree(root)


def test_configtest_short_session_secret(site_root):
    result = configtest(site_root, session_secret="s" * 31)

    assert (
        result.returncode != 0
    ), f"apache2 -t accepted a 31-byte ScalekitSessionSecret:\n{result.stdout}"
    assert (
        "ScalekitSessionSecret" in result.stdout
    ), f"the apache2 -t error does not name ScalekitSessionSecret:\n{result.stdout}"


def test_configtest_32_byte_session_secret(site_root):
    result = configtest(site_root, session_secret="s" * 32)

    assert (
        result.returncode == 0
    ), f"apache2 -t rejected a 32-byte ScalekitSessionSecret:\n{result.stdout}"


@pytest.mark.parametrize(
    "issuer",
    [
        "idp.example.test",
        "http://idp.example.test",
        "https://idp.example.test/?tenant=1",
        "https://idp.example.test/#top",
    ],
)
def test_configtest_invalid_issuer(site_root, issuer):
    result = configtest(site_root, issuer=issuer)

    assert (
        result.returncode != 0
    ), f"apache2 -t accepted ScalekitIssuer {issuer}:\n{result.stdout}"
    assert (
        "ScalekitIssuer" in result.stdout
    ), f"the apache2 -t error does not name ScalekitIssuer:\n{result.stdout}"


# --- Log hygiene: keep this test last ------------------------------------------------


def test_logs_contain_no_secrets(httpd, provider, browser, login, secret_ledger):
    # A login of its own, so that the check has a code and a session cookie to look
    # for even when this test runs alone.
    login(browser, httpd.url("/intranet/"))
    provider.harvest_secrets()
    kinds = " ".join(secret_ledger.values.values())
    for kind in (
        "client secret",
        "session secret",
        "authorization code",
        "session cookie",
    ):
        assert kind in kinds, f"the ledger has no {kind}, so the check would be void"

    logs = {"error log": httpd.read_error_log(), "access log": httpd.read_access_log()}
    for log_name, text in logs.items():
        assert text, f"the {log_name} is empty, so the check would be void"
        found = secret_ledger.find_in(text)
        assert found == [], f"the {log_name} contains: {', '.join(found)}"
        tokens = harness.JWT_PATTERN.findall(text)
        assert tokens == [], f"the {log_name} contains a JWT (ID or access token)"
