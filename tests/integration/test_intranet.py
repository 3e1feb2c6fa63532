"""Per-directory SSO routing, Require rules and entry points of an intranet tree.

Every directory under /sso/ gets its Scalekit settings from a real .htaccess file (see
sso_site.SSO_TREE). The tests check what reaches the dev provider, who gets in, what
a visitor without a session gets, and the login link, IdP-initiated login and claim
header paths.
"""

import concurrent.futures
import re
import urllib.parse

import pytest
import requests

import scalekit_harness as harness
import sso_site

SERVER_CONFIG = (
    "ScalekitLogoutRedirectAllowed "
    f"{sso_site.ALLOWED_HOST_WITH_PORT} {sso_site.ALLOWED_HOST_ANY_PORT}\n"
)

SELECTORS = ("connection_id", "organization_id", "domain", "login_hint")

SUBS = {
    "alice": "usr_acme_alice",
    "bob": "conn_acme_okta;00u-bob|42",
    "carol": "usr_globex_carol",
}

# A state parameter of the module: a slot digit, then base64url random text.
STATE_PATTERN = re.compile(r"^[0-9a-f][A-Za-z0-9_-]{20,}$")
STATE_COOKIE_PATTERN = re.compile(r"^scalekit_state_[0-9a-f]$")


@pytest.fixture(scope="module")
def site(dev_idp, client_secret, secret_ledger):
    server = sso_site.start_site(dev_idp, client_secret, secret_ledger, SERVER_CONFIG)
    yield server
    problems = sso_site.stop_site(server, secret_ledger)
    if problems:
        pytest.fail("httpd of test_intranet.py:\n" + "\n".join(problems))


@pytest.fixture
def browser():
    """A browser limited to 127.0.0.1 (replaces the fixture of conftest.py)."""
    with sso_site.browser() as session:
        yield session


@pytest.fixture(scope="module")
def signed_in(site, dev_idp, secret_ledger):
    """One browser per test user, each logged in through /sso/open/.

    Tests must not log these browsers out, because the other tests reuse them.
    """
    browsers = {}
    for user in SUBS:
        session = sso_site.browser()
        sso_site.login(session, site.url("/sso/open/"), user, secret_ledger)
        browsers[user] = session
    yield browsers
    for session in browsers.values():
        session.close()


def authorize_query(provider, response, context):
    """Assert a redirect to the authorization endpoint and return its query."""
    location = response.headers.get("Location", "")
    assert response.status_code == 302, (
        f"{context}: expected 302 to the provider, got {response.status_code}, "
        f"Location {location!r}: {response.text[:300]}"
    )
    assert location.startswith(
        provider.url("/oauth/authorize?")
    ), f"{context}: Location {location!r} is not the authorization endpoint"
    return harness.query_of(location)


def assert_selectors(query, expected, context):
    for name in SELECTORS:
        assert query.get(name) == expected.get(name), (
            f"{context}: {name} is {query.get(name)!r}, expected "
            f"{expected.get(name)!r} (query: {query})"
        )


def offered_users(page):
    parser = harness.LoginFormParser()
    parser.feed(page)
    return [form["fields"].get("user") for form in parser.forms]


def without_parameter(url, name):
    """Return url without the query parameter name."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query)
        if key != name
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def navigate(session, url):
    return session.get(url, allow_redirects=False)


def assert_no_cookies(response, context):
    assert (
        harness.set_cookie_headers(response) == []
    ), f"{context}: the response sets cookies: {harness.set_cookie_headers(response)}"


def assert_no_authorize_request(provider, context):
    authorize = provider.requests_to("/oauth/authorize")
    assert authorize == [], (
        f"{context}: {len(authorize)} authorization request(s) reached the provider, "
        "expected none"
    )


def assert_error_page(response, status, context):
    """Assert an error page with status, without a redirect and without a new login."""
    assert response.status_code == status, (
        f"{context}: expected {status}, got {response.status_code}: "
        f"{response.text[:200]}"
    )
    assert (
        "Location" not in response.headers
    ), f"{context}: the {status} carries Location {response.headers.get('Location')!r}"
    assert (
        sso_site.state_cookie_names(response) == []
    ), f"{context}: the {status} starts a login: {harness.set_cookie_headers(response)}"


# --- Routing ------------------------------------------------------------------------

# Path -> (selectors of the authorization request, users the login page offers).
ROUTING = {
    "/sso/org/": ({"organization_id": "org_acme"}, ["alice", "bob"]),
    "/sso/org/conn/": ({"connection_id": "conn_acme_okta"}, ["alice", "bob"]),
    "/sso/org/conn/dom/": ({"domain": "globex.test"}, ["carol"]),
    "/sso/org/conn/deeper/": ({"connection_id": "conn_acme_okta"}, ["alice", "bob"]),
    "/sso/org/sibling/": ({"organization_id": "org_acme"}, ["alice", "bob"]),
    "/sso/org/hint/": (
        {"organization_id": "org_acme", "login_hint": "bob@acme.test"},
        ["bob", "alice"],
    ),
    "/sso/all-selectors/": ({"connection_id": "conn_acme_okta"}, ["alice", "bob"]),
    "/sso/org-and-domain/": ({"organization_id": "org_globex"}, ["carol"]),
    "/sso/open/": ({}, ["alice", "bob", "carol"]),
}


@pytest.mark.parametrize("path", list(ROUTING))
def test_routing_reaches_provider(site, provider, browser, path):
    expected, users = ROUTING[path]

    response = navigate(browser, site.url(path))
    query = authorize_query(provider, response, f"GET {path}")
    assert_selectors(query, expected, f"Location of GET {path}")

    page = browser.get(response.headers["Location"], allow_redirects=False)
    assert page.status_code == 200, (
        f"the provider rejected the authorization request of {path}: "
        f"{page.status_code} {page.headers.get('Location')} {page.text[:300]}"
    )
    recorded = provider.requests_to("/oauth/authorize")
    assert len(recorded) == 1, f"the provider recorded {len(recorded)} requests"
    assert_selectors(recorded[0]["query"], expected, f"provider's record of {path}")
    assert (
        offered_users(page.text) == users
    ), f"the login page of {path} offers {offered_users(page.text)}, expected {users}"


def test_routing_login_lands_in_child(site, provider, browser, secret_ledger):
    steps = sso_site.login(
        browser, site.url("/sso/org/conn/dom/"), "carol", secret_ledger
    )
    page = sso_site.json_page(steps.final, "/sso/org/conn/dom/ after login")

    assert (
        page.get("REMOTE_USER") == SUBS["carol"]
    ), f"REMOTE_USER is {page.get('REMOTE_USER')!r}, expected carol's sub"


# (path with the visitor's query, login_hint expected in the authorization request)
LOGIN_HINTS = {
    "allowed": ("/sso/hint-on/?login_hint=carol%40globex.test", "carol@globex.test"),
    "allowed_not_email": ("/sso/hint-on/?login_hint=not-an-email", None),
    "allowed_with_angle": ("/sso/hint-on/?login_hint=%3Cx%3E%40globex.test", None),
    "child_turns_off": ("/sso/hint-on/off/?login_hint=carol%40globex.test", None),
    "default_off": ("/sso/hint-off/?login_hint=carol%40globex.test", None),
    "off_keeps_configured": (
        "/sso/org/hint/?login_hint=carol%40globex.test",
        "bob@acme.test",
    ),
}


@pytest.mark.parametrize("case", list(LOGIN_HINTS))
def test_allow_login_hint(site, provider, browser, case):
    path, expected = LOGIN_HINTS[case]

    query = authorize_query(provider, navigate(browser, site.url(path)), f"GET {path}")

    assert (
        query.get("login_hint") == expected
    ), f"GET {path}: login_hint is {query.get('login_hint')!r}, expected {expected!r}"


# --- Require rules --------------------------------------------------------------------

# (directory under /sso/require/, user, expected status)
REQUIRE_CASES = [
    ("exact", "alice", 200),
    ("exact", "bob", 403),
    ("regex", "alice", 200),
    ("regex", "carol", 200),
    ("regex", "bob", 403),
    ("array", "carol", 200),
    ("array", "alice", 403),
    ("boolean", "alice", 200),
    ("any-argument", "bob", 200),
    ("any-argument", "alice", 403),
    ("org", "carol", 200),
    ("org", "alice", 403),
    ("org-list", "alice", 200),
    ("org-list", "carol", 403),
    ("all", "bob", 200),
    ("all", "alice", 403),
    ("all", "carol", 403),
    ("any", "bob", 200),
    ("any", "carol", 200),
    ("any", "alice", 403),
    ("not", "bob", 200),
    ("not", "alice", 403),
    ("org-but-not-alice", "bob", 200),
    ("org-but-not-alice", "alice", 403),
    ("org-but-not-alice", "carol", 403),
]


@pytest.mark.parametrize(
    "directory,user,status",
    REQUIRE_CASES,
    ids=[f"{d}-{u}-{s}" for d, u, s in REQUIRE_CASES],
)
def test_require(site, provider, signed_in, directory, user, status):
    path = f"/sso/require/{directory}/"
    context = f"{user} GET {path}"

    response = navigate(signed_in[user], site.url(path))

    if status == 200:
        page = sso_site.json_page(response, context)
        assert (
            page.get("REMOTE_USER") == SUBS[user]
        ), f"{context}: REMOTE_USER is {page.get('REMOTE_USER')!r}"
        return
    assert_error_page(response, 403, context)
    assert (
        "not allowed" in response.text
    ), f"{context}: the 403 is not the module's page: {response.text[:300]}"
    assert (
        "WWW-Authenticate" not in response.headers
    ), f"{context}: the 403 carries WWW-Authenticate"
    assert_no_authorize_request(provider, context)


def test_require_denied_xhr_403(site, provider, signed_in):
    response = signed_in["bob"].get(
        site.url("/sso/require/exact/"),
        headers={"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"},
        allow_redirects=False,
    )

    assert_error_page(response, 403, "bob's XHR to /sso/require/exact/")


def test_require_without_session_logs_in(site, provider, browser):
    response = navigate(browser, site.url("/sso/require/not/"))

    authorize_query(provider, response, "GET /sso/require/not/ without a session")


# Claims of presented sessions -> expected status of /sso/require/nested/, which has
# "Require scalekit-claim address.country:DE". The dev provider issues no nested
# claims, so these sessions are sealed by the test.
NESTED_CLAIMS = {
    "object": ({"address": {"country": "DE"}}, 200),
    "object_other_value": ({"address": {"country": "US"}}, 403),
    "array_in_object": ({"address": {"country": ["US", "DE"]}}, 200),
    "not_an_object": ({"address": "DE"}, 403),
    "missing": ({}, 403),
    "dotted_name": ({"address.country": "DE"}, 200),
}


@pytest.mark.parametrize("case", list(NESTED_CLAIMS))
def test_require_nested_claim(site, provider, case):
    extra, status = NESTED_CLAIMS[case]
    claims = dict({"sub": "usr_sealed", "oid": "org_acme"}, **extra)
    document = sso_site.session_document(claims)
    cookies = sso_site.session_cookies(site.site.session_secret, document)

    response = requests.get(
        site.url("/sso/require/nested/"),
        headers={
            "Accept": harness.BROWSER_ACCEPT,
            "Cookie": sso_site.cookie_header(cookies),
        },
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    context = f"session with {extra} at /sso/require/nested/"
    if status == 200:
        page = sso_site.json_page(response, context)
        assert page.get("REMOTE_USER") == "usr_sealed", f"{context}: {page}"
    else:
        assert_error_page(response, 403, context)


# --- Organization switch --------------------------------------------------------------


# (user of the session, directory with another organization, its organization)
ORG_SWITCHES = [
    ("alice", "/sso/globex/", "org_globex"),
    ("carol", "/sso/org/", "org_acme"),
    ("carol", "/sso/org/sibling/", "org_acme"),
    ("alice", "/sso/org-and-domain/", "org_globex"),
]


@pytest.mark.parametrize(
    "user,path,organization",
    ORG_SWITCHES,
    ids=[f"{u}-{p}" for u, p, _ in ORG_SWITCHES],
)
def test_org_switch_redirects(site, provider, signed_in, user, path, organization):
    context = f"{user}'s session at {path}"

    response = navigate(signed_in[user], site.url(path))

    query = authorize_query(provider, response, context)
    assert_selectors(query, {"organization_id": organization}, context)
    assert (
        len(sso_site.state_cookie_names(response)) == 1
    ), f"{context}: state cookies set: {sso_site.state_cookie_names(response)}"


def test_org_switch_alice_403(site, provider, browser, secret_ledger):
    sso_site.login(browser, site.url("/sso/open/"), "alice", secret_ledger)
    old_session = browser.cookies.get(harness.SESSION_COOKIE)
    start = navigate(browser, site.url("/sso/globex/"))
    authorize_query(provider, start, "alice's session at /sso/globex/")

    # The provider offers only org_globex users for organization_id=org_globex. Without
    # that parameter it offers every user, as a provider would that lets the user pick
    # another organization.
    unrouted = without_parameter(start.headers["Location"], "organization_id")
    _, posted = harness.sign_in_at_provider(browser, unrouted, "alice")
    mark = site.log_mark()
    callback = browser.get(posted.headers["Location"], allow_redirects=False)

    assert_error_page(callback, 403, "callback of alice's login for org_globex")
    assert harness.find_set_cookie(callback, harness.SESSION_COOKIE) is None, (
        "the rejected callback sets a session cookie: "
        f"{harness.set_cookie_headers(callback)}"
    )
    log = site.wait_for_log(mark, r"yielded organization org_acme")
    assert re.search(
        r"yielded organization org_acme.*requires org_globex", log
    ), f"the error log does not explain the 403:\n{log}"
    assert (
        browser.cookies.get(harness.SESSION_COOKIE) == old_session
    ), "the rejected login changed alice's session cookie"


def test_org_switch_carol_allowed(site, provider, browser, secret_ledger):
    sso_site.login(browser, site.url("/sso/open/"), "alice", secret_ledger)

    steps = sso_site.login(browser, site.url("/sso/globex/"), "carol", secret_ledger)

    assert steps.callback.headers["Location"] == site.url(
        "/sso/globex/"
    ), f"carol's callback goes to {steps.callback.headers['Location']!r}"
    page = sso_site.json_page(steps.final, "/sso/globex/ after carol's login")
    assert (
        page.get("REMOTE_USER") == SUBS["carol"]
    ), f"REMOTE_USER is {page.get('REMOTE_USER')!r}, expected carol's sub"
    assert (
        page.get("SCALEKIT_CLAIM_oid") == "org_globex"
    ), f"SCALEKIT_CLAIM_oid is {page.get('SCALEKIT_CLAIM_oid')!r}"


def test_org_switch_xhr_403(site, provider, signed_in):
    response = signed_in["alice"].get(
        site.url("/sso/globex/"),
        headers={"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"},
        allow_redirects=False,
    )

    assert_error_page(response, 403, "alice's XHR to /sso/globex/")
    assert_no_authorize_request(provider, "alice's XHR to /sso/globex/")


# --- Requests without a session -------------------------------------------------------

# (method, headers) of requests that are not a browser navigation.
NOT_NAVIGATIONS = {
    "xhr": ("GET", {"Accept": "*/*", "X-Requested-With": "XMLHttpRequest"}),
    "fetch": ("GET", {"Accept": "*/*", "Sec-Fetch-Mode": "cors"}),
    "json": ("GET", {"Accept": "application/json"}),
    "cors_preflight": (
        "OPTIONS",
        {
            "Accept": "*/*",
            "Origin": "http://127.0.0.1:9",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-requested-with",
        },
    ),
    "head": ("HEAD", {"Accept": harness.BROWSER_ACCEPT}),
    "post": ("POST", {"Accept": harness.BROWSER_ACCEPT}),
}


@pytest.mark.parametrize("case", list(NOT_NAVIGATIONS))
def test_no_session_request_401(site, provider, case):
    method, headers = NOT_NAVIGATIONS[case]
    context = f"{case} {method} /sso/org/ without a session"

    response = requests.request(
        method,
        site.url("/sso/org/"),
        headers=headers,
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 401, f"{context}: got {response.status_code}"
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith(
        "Scalekit realm="
    ), f"{context}: WWW-Authenticate is {challenge!r}"
    assert_no_cookies(response, context)


def test_unauth_401_navigation(site, provider, browser):
    response = navigate(browser, site.url("/sso/unauth-401/"))

    assert (
        response.status_code == 401
    ), f"navigation to /sso/unauth-401/ returned {response.status_code}, expected 401"
    assert response.headers.get("WWW-Authenticate", "").startswith(
        "Scalekit realm="
    ), f"WWW-Authenticate is {response.headers.get('WWW-Authenticate')!r}"
    assert_no_cookies(response, "/sso/unauth-401/")
    assert_no_authorize_request(provider, "/sso/unauth-401/")


def test_unauth_child_back_to_auth(site, provider, browser):
    response = navigate(browser, site.url("/sso/unauth-401/auth/"))

    authorize_query(provider, response, "GET /sso/unauth-401/auth/")


def test_unauth_403_navigation(site, provider, browser):
    response = navigate(browser, site.url("/sso/unauth-403/"))

    assert (
        response.status_code == 403
    ), f"navigation to /sso/unauth-403/ returned {response.status_code}, expected 403"
    assert (
        "WWW-Authenticate" not in response.headers
    ), "the 403 of ScalekitUnauthAction 403 carries WWW-Authenticate"
    assert_no_cookies(response, "/sso/unauth-403/")


def test_unauth_401_with_session(site, provider, signed_in):
    response = navigate(signed_in["alice"], site.url("/sso/unauth-401/"))

    page = sso_site.json_page(response, "alice at /sso/unauth-401/")
    assert page.get("REMOTE_USER") == SUBS["alice"], f"page variables: {page}"


def test_unauth_pass_without_session(site, provider, browser):
    response = navigate(browser, site.url("/sso/unauth-pass/"))

    page = sso_site.json_page(response, "/sso/unauth-pass/ without a session")
    assert page == {}, f"the handler got user or claim variables: {page}"
    assert_no_cookies(response, "/sso/unauth-pass/")


def test_unauth_pass_with_session(site, provider, signed_in):
    response = navigate(signed_in["alice"], site.url("/sso/unauth-pass/"))

    page = sso_site.json_page(response, "alice at /sso/unauth-pass/")
    assert (
        page.get("SCALEKIT_CLAIM_email") == "alice@acme.test"
    ), f"the claims of alice's session were not exported: {page}"
    assert (
        page.get("REMOTE_USER") == SUBS["alice"]
    ), f"REMOTE_USER is {page.get('REMOTE_USER')!r}"


# --- State cookies --------------------------------------------------------------------

PARALLEL_NAVIGATIONS = 20


def test_state_cookie_cap(site, provider, browser, secret_ledger):
    def open_page(_):
        return navigate(browser, site.url("/sso/open/"))

    with concurrent.futures.ThreadPoolExecutor(
        max_workers=PARALLEL_NAVIGATIONS
    ) as pool:
        responses = list(pool.map(open_page, range(PARALLEL_NAVIGATIONS)))

    names = set()
    for response in responses:
        query = authorize_query(provider, response, "parallel navigation")
        state = query.get("state", "")
        assert STATE_PATTERN.match(state), f"state {state!r} has an unexpected form"
        cookies = sso_site.state_cookie_names(response)
        assert cookies == [
            harness.state_cookie_name(state)
        ], f"state {state[:8]}... set cookies {cookies}, expected the one of its slot"
        names.update(cookies)
    assert (
        len(names) <= 16
    ), f"{PARALLEL_NAVIGATIONS} logins used {len(names)} state cookies: {sorted(names)}"
    for name in names:
        assert STATE_COOKIE_PATTERN.match(name), f"unexpected state cookie {name}"
    jar_names = {
        cookie.name
        for cookie in browser.cookies
        if cookie.name.startswith(harness.STATE_COOKIE_PREFIX)
    }
    assert len(jar_names) <= 16, f"the browser holds {len(jar_names)} state cookies"

    # One more login with every slot's cookie in the jar still completes.
    steps = sso_site.login(browser, site.url("/sso/open/"), "alice", secret_ledger)
    assert steps.final.status_code == 200, (
        f"the login after {PARALLEL_NAVIGATIONS} pending ones ended with "
        f"{steps.final.status_code}"
    )


# --- Login link -----------------------------------------------------------------------

# return_to of /scalekit/login -> selectors of the authorization request.
LOGIN_LINK_ROUTING = {
    "/sso/org/conn/": {"connection_id": "conn_acme_okta"},
    "/sso/globex/?tab=1": {"organization_id": "org_globex"},
    "/sso/org/sibling/env.cgi": {"organization_id": "org_acme"},
    "/sso/org/hint/": {"organization_id": "org_acme", "login_hint": "bob@acme.test"},
    "/": {},
}


@pytest.mark.parametrize("return_to", list(LOGIN_LINK_ROUTING))
def test_login_link_routing(site, provider, browser, return_to):
    response = browser.get(
        site.url("/scalekit/login"),
        params={"return_to": return_to},
        allow_redirects=False,
    )

    query = authorize_query(provider, response, f"login link to {return_to}")
    assert_selectors(query, LOGIN_LINK_ROUTING[return_to], f"login link to {return_to}")
    assert (
        len(sso_site.state_cookie_names(response)) == 1
    ), f"the login link set state cookies {sso_site.state_cookie_names(response)}"


def test_login_link_absolute_same_origin(site, provider, browser):
    target = site.url("/sso/org/")

    response = browser.get(
        site.url("/scalekit/login"), params={"return_to": target}, allow_redirects=False
    )

    query = authorize_query(provider, response, f"login link to {target}")
    assert_selectors(query, {"organization_id": "org_acme"}, f"login link to {target}")


def test_login_link_returns_to_target(site, provider, browser, secret_ledger):
    link = site.url("/scalekit/login?return_to=%2Fsso%2Forg%2Fconn%2F")

    steps = sso_site.login(browser, link, "alice", secret_ledger)

    assert steps.callback.headers["Location"] == site.url(
        "/sso/org/conn/"
    ), f"the callback went to {steps.callback.headers['Location']!r}"
    page = sso_site.json_page(steps.final, "/sso/org/conn/ after the login link")
    assert page.get("REMOTE_USER") == SUBS["alice"], f"page variables: {page}"


def test_login_link_keeps_required_org(site, provider, browser, secret_ledger):
    start = browser.get(
        site.url("/scalekit/login"),
        params={"return_to": "/sso/org/"},
        allow_redirects=False,
    )
    authorize_query(provider, start, "login link to /sso/org/")

    # As in test_org_switch_alice_403: without organization_id carol is offered too.
    unrouted = without_parameter(start.headers["Location"], "organization_id")
    _, posted = harness.sign_in_at_provider(browser, unrouted, "carol")
    callback = browser.get(posted.headers["Location"], allow_redirects=False)

    assert_error_page(callback, 403, "carol's login through a link to /sso/org/")
    assert (
        harness.find_set_cookie(callback, harness.SESSION_COOKIE) is None
    ), "the rejected login link set a session cookie"


FOREIGN_RETURN_TO = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "https:evil.example",
    "http://127.0.0.1:1/",
]


@pytest.mark.parametrize("return_to", FOREIGN_RETURN_TO)
def test_login_link_foreign_400(site, provider, browser, return_to):
    context = f"login link to {return_to!r}"

    response = browser.get(
        site.url("/scalekit/login"),
        params={"return_to": return_to},
        allow_redirects=False,
    )

    assert_error_page(response, 400, context)
    assert_no_cookies(response, context)
    assert_no_authorize_request(provider, context)


def test_login_link_logout_host_400(site, provider, browser):
    target = f"https://{sso_site.ALLOWED_HOST_WITH_PORT}/after"

    response = browser.get(
        site.url("/scalekit/login"), params={"return_to": target}, allow_redirects=False
    )

    assert response.status_code == 400, (
        f"login link to {target} (a logout host, not this origin) returned "
        f"{response.status_code}, Location {response.headers.get('Location')!r}"
    )


def test_login_link_signed_in(site, provider, signed_in):
    response = signed_in["alice"].get(
        site.url("/scalekit/login"),
        params={"return_to": "/sso/org/?x=1"},
        allow_redirects=False,
    )

    assert response.status_code == 302, f"got {response.status_code}, expected 302"
    assert response.headers.get("Location") == site.url(
        "/sso/org/?x=1"
    ), f"Location is {response.headers.get('Location')!r}, expected the target"
    assert_no_authorize_request(provider, "login link with a session")


# --- IdP-initiated login --------------------------------------------------------------


def mint_idp_initiated(provider, **options):
    response = requests.post(
        provider.url("/_dev/idp-initiated"),
        json=options,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, f"/_dev/idp-initiated: {response.text}"
    return response.json()["idp_initiated_login"]


IDP_INITIATED_PATHS = ["/scalekit/callback", "/scalekit/login"]


@pytest.mark.parametrize("path", IDP_INITIATED_PATHS)
def test_idp_initiated_starts_login(site, provider, browser, path):
    token = mint_idp_initiated(
        provider,
        connection_id="conn_globex_entra",
        login_hint="carol@globex.test",
        relay_state="/sso/open/?from=idp",
    )

    response = browser.get(
        site.url(path), params={"idp_initiated_login": token}, allow_redirects=False
    )

    query = authorize_query(provider, response, f"IdP-initiated login at {path}")
    assert_selectors(
        query,
        {"connection_id": "conn_globex_entra", "login_hint": "carol@globex.test"},
        f"IdP-initiated login at {path}",
    )
    state = query.get("state", "")
    assert STATE_PATTERN.match(state), f"state {state!r} is not one the module makes"
    assert state not in token, "the state was taken from the token"
    assert sso_site.state_cookie_names(response) == [
        harness.state_cookie_name(state)
    ], f"state cookies set: {sso_site.state_cookie_names(response)}"
    assert harness.find_set_cookie(response, harness.SESSION_COOKIE) is None, (
        "the IdP-initiated request set a session cookie: "
        f"{harness.set_cookie_headers(response)}"
    )
    after = navigate(browser, site.url("/sso/open/"))
    assert after.status_code == 302, (
        "the IdP-initiated request logged the browser in: /sso/open/ returned "
        f"{after.status_code}"
    )


def test_idp_initiated_fresh_state(site, provider, browser):
    token = mint_idp_initiated(provider, organization_id="org_acme")
    url = site.url("/scalekit/callback")

    first = browser.get(
        url, params={"idp_initiated_login": token}, allow_redirects=False
    )
    second = browser.get(
        url, params={"idp_initiated_login": token}, allow_redirects=False
    )

    first_query = authorize_query(provider, first, "first IdP-initiated request")
    second_query = authorize_query(provider, second, "second IdP-initiated request")
    assert_selectors(first_query, {"organization_id": "org_acme"}, "organization token")
    assert (
        first_query["state"] != second_query["state"]
    ), "two IdP-initiated requests with one token got the same state"


@pytest.mark.parametrize(
    "relay_state,landing",
    [("/sso/open/?from=idp", "/sso/open/?from=idp"), ("https://evil.example/x", "/")],
    ids=["local", "foreign"],
)
def test_idp_initiated_relay_state(
    site, provider, browser, secret_ledger, relay_state, landing
):
    token = mint_idp_initiated(
        provider, connection_id="conn_globex_entra", relay_state=relay_state
    )
    url = site.url("/scalekit/callback?idp_initiated_login=" + token)

    steps = sso_site.login(browser, url, "carol", secret_ledger)

    assert steps.callback.headers["Location"] == site.url(landing), (
        f"relay_state {relay_state!r}: the callback went to "
        f"{steps.callback.headers['Location']!r}, expected {site.url(landing)!r}"
    )


def test_idp_initiated_relay_logout_host(site, provider, browser, secret_ledger):
    relay_state = f"https://{sso_site.ALLOWED_HOST_WITH_PORT}/x"
    token = mint_idp_initiated(
        provider, connection_id="conn_globex_entra", relay_state=relay_state
    )
    url = site.url("/scalekit/callback?idp_initiated_login=" + token)

    steps = sso_site.login(browser, url, "carol", secret_ledger)

    assert steps.callback.headers["Location"] == site.url("/"), (
        f"relay_state {relay_state!r} on a logout host was followed: the callback "
        f"went to {steps.callback.headers['Location']!r}"
    )


@pytest.mark.parametrize("path", IDP_INITIATED_PATHS)
@pytest.mark.parametrize("defect", ["expired", "bad_signature", "not_a_jwt"])
def test_idp_initiated_invalid_400(site, provider, browser, path, defect):
    if defect == "not_a_jwt":
        token = "not-a-jwt"
    else:
        token = mint_idp_initiated(
            provider, connection_id="conn_globex_entra", **{defect: True}
        )
    context = f"{defect} IdP-initiated token at {path}"
    mark = site.log_mark()

    response = browser.get(
        site.url(path), params={"idp_initiated_login": token}, allow_redirects=False
    )

    assert_error_page(response, 400, context)
    assert_no_cookies(response, context)
    assert_no_authorize_request(provider, context)
    log = site.wait_for_log(mark, "IdP-initiated login rejected")
    assert (
        "IdP-initiated login rejected" in log
    ), f"{context}: the error log does not name the rejection:\n{log}"


# --- Claims as request headers --------------------------------------------------------


def test_claims_as_headers(site, provider, signed_in):
    response = navigate(signed_in["alice"], site.url("/sso/headers/env.cgi"))

    page = sso_site.json_page(response, "alice at /sso/headers/env.cgi")
    expected = {
        "HTTP_SCALEKIT_CLAIM_EMAIL": "alice@acme.test",
        "HTTP_SCALEKIT_CLAIM_OID": "org_acme",
        "HTTP_SCALEKIT_CLAIM_EMAIL_VERIFIED": "true",
        "REMOTE_USER": SUBS["alice"],
    }
    for name, value in expected.items():
        assert (
            page.get(name) == value
        ), f"{name} is {page.get(name)!r}, expected {value!r}"
    env_claims = [name for name in page if name.startswith("SCALEKIT_CLAIM_")]
    assert (
        env_claims == []
    ), f"ScalekitPassClaimsAs headers also set environment variables: {env_claims}"


SPOOF_HEADERS = [
    "Scalekit-Claim-Email",
    "SCALEKIT-CLAIM-EMAIL",
    "SCALEKIT_CLAIM_EMAIL",
    "scalekit_claim_email",
    "Scalekit_Claim-Email",
]
SPOOF_VALUE = "mallory@evil.example"

# (page, user or None) that a spoofing client requests.
SPOOF_TARGETS = [
    ("/sso/headers.php", None),
    ("/sso/unauth-pass/headers.php", None),
    ("/sso/headers/headers.php", "alice"),
    ("/sso/open/headers.php", "alice"),
]


def claim_headers(headers):
    """Return the headers whose names start with Scalekit-Claim- in any spelling."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower().replace("_", "-").startswith("scalekit-claim-")
    }


@pytest.mark.parametrize("header", SPOOF_HEADERS)
@pytest.mark.parametrize(
    "path,user", SPOOF_TARGETS, ids=[f"{p}-{u}" for p, u in SPOOF_TARGETS]
)
def test_spoofed_claim_header_removed(site, provider, signed_in, path, user, header):
    get = signed_in[user].get if user else requests.get
    mark = site.log_mark()

    response = get(
        site.url(path),
        headers={header: SPOOF_VALUE, "Scalekit-Claim-Role": "admin"},
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )

    seen = sso_site.json_page(response, f"{path} with a spoofed {header}")["headers"]
    received = claim_headers(seen)
    assert SPOOF_VALUE not in received.values(), (
        f"{path} ({user or 'no session'}): the spoofed {header} reached the page: "
        f"{received}"
    )
    assert not any(
        value == "admin" for value in received.values()
    ), f"{path}: the spoofed Scalekit-Claim-Role reached the page: {received}"
    if path.startswith("/sso/headers/"):
        assert (
            received.get("Scalekit-Claim-email") == "alice@acme.test"
        ), f"{path}: the module's own email header is missing or wrong: {received}"
    else:
        assert received == {}, f"{path}: claim headers reached the page: {received}"
    log = site.wait_for_log(mark, "removed the request header " + re.escape(header))
    assert (
        f"removed the request header {header}" in log
    ), f"{path}: the error log does not record removing {header}:\n{log}"


def test_spoofed_header_not_in_cgi(site, provider, signed_in):
    response = signed_in["alice"].get(
        site.url("/sso/headers/env.cgi"),
        headers={"Scalekit-Claim-Email": SPOOF_VALUE, "Scalekit-Claim-Role": "admin"},
        allow_redirects=False,
    )

    page = sso_site.json_page(response, "/sso/headers/env.cgi with spoofed headers")
    assert (
        page.get("HTTP_SCALEKIT_CLAIM_EMAIL") == "alice@acme.test"
    ), f"HTTP_SCALEKIT_CLAIM_EMAIL is {page.get('HTTP_SCALEKIT_CLAIM_EMAIL')!r}"
    assert (
        "HTTP_SCALEKIT_CLAIM_ROLE" not in page
    ), f"the spoofed role reached the CGI: {page.get('HTTP_SCALEKIT_CLAIM_ROLE')!r}"
