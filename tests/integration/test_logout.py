"""Logout at /scalekit/logout: the end-session redirect, return_to checks, and the
end of the session for cookie sessions (also chunked ones) and cache sessions."""

import base64
import json

import pytest

import scalekit_harness as harness
import sso_site

ALLOWED_HOSTS = (
    "ScalekitLogoutRedirectAllowed "
    f"{sso_site.ALLOWED_HOST_WITH_PORT} {sso_site.ALLOWED_HOST_ANY_PORT}\n"
)
LOGOUT_PATH = "/scalekit/logout"


def start(dev_idp, client_secret, secret_ledger, server_config):
    return sso_site.start_site(dev_idp, client_secret, secret_ledger, server_config)


def stop(server, secret_ledger):
    problems = sso_site.stop_site(server, secret_ledger)
    if problems:
        pytest.fail("httpd of test_logout.py:\n" + "\n".join(problems))


@pytest.fixture(scope="module")
def site(dev_idp, client_secret, secret_ledger):
    """Sessions in the cookie (the default store)."""
    server = start(dev_idp, client_secret, secret_ledger, ALLOWED_HOSTS)
    yield server
    stop(server, secret_ledger)


@pytest.fixture(scope="module")
def cache_site(dev_idp, client_secret, secret_ledger):
    """Sessions in ScalekitSessionCache. The cookie contains only the session id."""
    config = ALLOWED_HOSTS + "ScalekitSessionStore cache\n"
    server = start(dev_idp, client_secret, secret_ledger, config)
    yield server
    stop(server, secret_ledger)


@pytest.fixture
def browser():
    """A browser limited to 127.0.0.1 (replaces the fixture of conftest.py)."""
    with sso_site.browser() as session:
        yield session


def jwt_payload(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def signed_in_browser(server, browser, ledger, user="alice"):
    """Log browser in at /sso/open/ and return the session cookie value."""
    sso_site.login(browser, server.url("/sso/open/"), user, ledger)
    value = browser.cookies.get(harness.SESSION_COOKIE)
    assert value, "the login left no session cookie in the browser"
    return value


def logout(session, server, return_to=None):
    params = {} if return_to is None else {"return_to": return_to}
    return session.get(server.url(LOGOUT_PATH), params=params)


def assert_session_cookie_deleted(response, context, names=(harness.SESSION_COOKIE,)):
    for name in names:
        header = harness.find_set_cookie(response, name)
        assert header is not None, (
            f"{context}: no Set-Cookie for {name}; Set-Cookie: "
            f"{harness.set_cookie_headers(response)}"
        )
        assert sso_site.is_deletion(
            header
        ), f"{context}: {name} is not deleted: {header}"


def assert_cookie_rejected(server, cookies, context):
    """Assert that a navigation and an XHR with cookies get no access."""
    header = sso_site.cookie_header(cookies)
    with sso_site.browser() as session:
        page = session.get(server.url("/sso/open/"), headers={"Cookie": header})
        xhr = session.get(
            server.url("/sso/open/"),
            headers={
                "Cookie": header,
                "Accept": "application/json",
                "X-Requested-With": "XMLHttpRequest",
            },
        )
    assert page.status_code == 302, (
        f"{context}: a navigation with the old session cookie returned "
        f"{page.status_code}, expected 302 to log in again"
    )
    assert xhr.status_code == 401, (
        f"{context}: an XHR with the old session cookie returned {xhr.status_code}, "
        "expected 401"
    )


def assert_cookie_accepted(server, cookies, context):
    with sso_site.browser() as session:
        page = session.get(
            server.url("/sso/open/"),
            headers={"Cookie": sso_site.cookie_header(cookies)},
        )
    assert page.status_code == 200, (
        f"{context}: a navigation with the session cookie returned {page.status_code}, "
        "expected 200"
    )


# --- End-session redirect ----------------------------------------------------------


def test_logout_end_session_redirect(site, provider, browser, secret_ledger):
    signed_in_browser(site, browser, secret_ledger)

    response = logout(browser, site, "/sso/open/?bye=1")

    location = response.headers.get("Location", "")
    assert response.status_code == 302, f"logout returned {response.status_code}"
    assert location.startswith(
        provider.url("/oidc/logout?")
    ), f"logout redirects to {location!r}, expected the end_session_endpoint"
    query = harness.query_of(location)
    assert query.get("post_logout_redirect_uri") == site.url("/sso/open/?bye=1"), (
        f"post_logout_redirect_uri is {query.get('post_logout_redirect_uri')!r}, "
        f"expected {site.url('/sso/open/?bye=1')!r}"
    )
    assert (
        len(query.get("state", "")) >= 16
    ), f"the state parameter {query.get('state')!r} is missing or short"
    hint = query.get("id_token_hint", "")
    assert harness.JWT_PATTERN.fullmatch(hint), f"id_token_hint {hint[:40]!r} is no JWT"
    claims = jwt_payload(hint)
    assert claims.get("sub") == "usr_acme_alice", f"id_token_hint sub: {claims}"
    assert claims.get("iss") == provider.issuer, f"id_token_hint iss: {claims}"
    assert harness.CLIENT_ID in claims.get("aud", []), f"id_token_hint aud: {claims}"
    assert_session_cookie_deleted(response, "logout")
    assert (
        response.headers.get("Cache-Control") == "no-store"
    ), f"Cache-Control is {response.headers.get('Cache-Control')!r}"


def test_logout_state_differs(site, provider, browser, secret_ledger):
    states = []
    for _ in range(2):
        signed_in_browser(site, browser, secret_ledger)
        location = logout(browser, site, "/").headers.get("Location", "")
        states.append(harness.query_of(location).get("state"))

    assert states[0] != states[1], f"two logouts sent the same state {states[0]!r}"


def test_logout_provider_returns(site, provider, browser, secret_ledger):
    signed_in_browser(site, browser, secret_ledger)
    response = logout(browser, site, "/sso/open/")
    state = harness.query_of(response.headers["Location"])["state"]

    at_provider = browser.get(response.headers["Location"])

    assert at_provider.status_code == 302, (
        f"the provider's end-session endpoint returned {at_provider.status_code}: "
        f"{at_provider.text[:300]}"
    )
    assert at_provider.headers.get("Location") == site.url(
        "/sso/open/?state=" + state
    ), f"the provider sent the browser to {at_provider.headers.get('Location')!r}"
    back = browser.get(at_provider.headers["Location"])
    assert (
        back.status_code == 302
    ), f"/sso/open/ after logout returned {back.status_code}, expected a new login"


def test_logout_old_cookie_rejected(site, provider, browser, secret_ledger):
    old = signed_in_browser(site, browser, secret_ledger)
    assert_cookie_accepted(site, {harness.SESSION_COOKIE: old}, "before logout")
    mark = site.log_mark()

    logout(browser, site, "/")

    assert_cookie_rejected(site, {harness.SESSION_COOKIE: old}, "after logout")
    log = site.wait_for_log(mark, "ended by logout")
    assert "ended by logout" in log, f"the error log does not name the cause:\n{log}"


def test_logout_post(site, provider, browser, secret_ledger):
    old = signed_in_browser(site, browser, secret_ledger)

    response = browser.post(site.url(LOGOUT_PATH))

    assert response.status_code == 302, f"POST logout returned {response.status_code}"
    assert_cookie_rejected(site, {harness.SESSION_COOKIE: old}, "after POST logout")


def test_logout_without_session(site, provider, browser):
    response = logout(browser, site)

    assert response.status_code == 302, f"logout returned {response.status_code}"
    assert response.headers.get("Location") == site.url(
        "/"
    ), f"logout without a session redirects to {response.headers.get('Location')!r}"
    assert (
        provider.recorded_requests() == []
    ), "logout without a session sent requests to the provider"


# --- return_to ----------------------------------------------------------------------

# SITE stands for this server's origin, which is known only when the test runs.
ACCEPTED_RETURN_TO = [
    "/sso/org/?a=b",
    "SITE/sso/open/",
    f"https://{sso_site.ALLOWED_HOST_WITH_PORT}/bye",
    f"https://{sso_site.ALLOWED_HOST_ANY_PORT}:444/after",
]

REJECTED_RETURN_TO = [
    "//evil.example",
    "https://evil.example",
    "/\\evil.example",
    "https:evil.example",
    "/%5Cevil.example",
    "https://partner.example:9443/bye",
    "http://127.0.0.1:1/",
    "javascript:alert(1)",
    "https://127.0.0.1@evil.example/",
]


@pytest.mark.parametrize("return_to", ACCEPTED_RETURN_TO)
def test_logout_return_to_accepted(site, provider, browser, secret_ledger, return_to):
    target = return_to.replace("SITE", site.base)
    expected = site.url(target) if target.startswith("/") else target
    signed_in_browser(site, browser, secret_ledger)

    response = logout(browser, site, target)

    assert response.status_code == 302, (
        f"logout with return_to {target!r} returned {response.status_code}: "
        f"{response.text[:300]}"
    )
    query = harness.query_of(response.headers.get("Location", ""))
    assert query.get("post_logout_redirect_uri") == expected, (
        f"return_to {target!r}: post_logout_redirect_uri is "
        f"{query.get('post_logout_redirect_uri')!r}, expected {expected!r}"
    )


@pytest.mark.parametrize("return_to", REJECTED_RETURN_TO)
def test_logout_return_to_rejected(site, provider, browser, secret_ledger, return_to):
    old = signed_in_browser(site, browser, secret_ledger)
    context = f"logout with return_to {return_to!r}"

    response = logout(browser, site, return_to)

    assert response.status_code == 400, (
        f"{context}: got {response.status_code}, Location "
        f"{response.headers.get('Location')!r}"
    )
    assert "Location" not in response.headers, f"{context}: the 400 carries a Location"
    assert "signed out" in response.text, f"{context}: page: {response.text[:300]}"
    assert_session_cookie_deleted(response, context)
    assert_cookie_rejected(site, {harness.SESSION_COOKIE: old}, context)


# --- Chunked and cache sessions ---------------------------------------------------


def test_logout_clears_every_chunk(site, provider, browser):
    # About 5 KB sealed: two chunk cookies, and one Cookie header under httpd's
    # default LimitRequestFieldSize of 8190 bytes.
    claims = {"sub": "usr_sealed", "oid": "org_acme", "padding": "x" * 3500}
    document = sso_site.session_document(claims)
    cookies = sso_site.session_cookies(site.site.session_secret, document)
    assert len(cookies) == 3, f"expected a base and two chunk cookies: {list(cookies)}"
    assert_cookie_accepted(site, cookies, "chunked session before logout")

    response = browser.get(
        site.url(LOGOUT_PATH), headers={"Cookie": sso_site.cookie_header(cookies)}
    )

    assert response.status_code == 302, f"logout returned {response.status_code}"
    assert_session_cookie_deleted(response, "chunked logout", names=list(cookies))
    assert_cookie_rejected(site, cookies, "chunked session after logout")


def test_cache_session_cookie_is_id(cache_site, provider, browser, secret_ledger):
    value = signed_in_browser(cache_site, browser, secret_ledger)

    assert len(value) == 43, (
        f"with ScalekitSessionStore cache the cookie is {len(value)} characters, "
        "expected a 43-character session id"
    )
    assert_cookie_accepted(cache_site, {harness.SESSION_COOKIE: value}, "cache session")


def test_cache_logout_ends_session(cache_site, provider, browser, secret_ledger):
    old = signed_in_browser(cache_site, browser, secret_ledger)
    mark = cache_site.log_mark()

    response = logout(browser, cache_site, "/")

    assert response.headers.get("Location", "").startswith(
        provider.url("/oidc/logout?")
    ), f"cache logout redirects to {response.headers.get('Location')!r}"
    assert_session_cookie_deleted(response, "cache logout")
    assert_cookie_rejected(cache_site, {harness.SESSION_COOKIE: old}, "cache logout")
    log = cache_site.wait_for_log(mark, "names no session in the session cache")
    assert (
        "names no session in the session cache" in log
    ), f"the error log does not show the removed cache entry:\n{log}"


def test_two_chunk_session_readable(site, provider):
    # The module writes at most 7,000 sealed bytes, two chunks, so that the Cookie
    # header stays under httpd's default LimitRequestFieldSize of 8190 bytes.
    claims = {"sub": "usr_sealed", "oid": "org_acme", "padding": "x" * 3000}
    document = sso_site.session_document(claims)
    cookies = sso_site.session_cookies(site.site.session_secret, document)
    assert (
        len(cookies) == 3
    ), f"expected a base and two chunk cookies: {list(cookies)}"

    assert_cookie_accepted(site, cookies, "session in two chunks")


def test_id_token_kept_for_logout_only(site, provider, browser, secret_ledger):
    # The ID token travels in its own cookie, scoped to the logout path, so the
    # session cookie that every request carries stays small.
    sso_site.login(browser, site.url("/sso/open/"), "alice", secret_ledger)
    hint_name = harness.SESSION_COOKIE + "_logout"
    hint = None
    for cookie in browser.cookies:
        if cookie.name == hint_name:
            hint = cookie
    session_value = browser.cookies.get(harness.SESSION_COOKIE)

    assert hint is not None, f"the login set no {hint_name} cookie"
    assert hint.path == LOGOUT_PATH, f"{hint_name} has Path={hint.path!r}"
    assert session_value, "the login left no session cookie"
    assert len(session_value) < 1500, (
        f"the session cookie is {len(session_value)} bytes; the ID token seems to be "
        "in it"
    )

    response = logout(browser, site, "/")

    hint_header = harness.find_set_cookie(response, hint_name)
    assert hint_header is not None, f"logout did not delete {hint_name}"
    _, attributes = harness.cookie_attributes(hint_header)
    assert attributes.get("max-age") == "0", f"{hint_name} after logout: {hint_header}"
