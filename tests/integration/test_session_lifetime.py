"""Session lifetime (ScalekitSessionMaxAge, ScalekitSessionInactivityTimeout) and
ScalekitUserInfo, on servers with short and with default session times.

The maximum age cannot be lower than 60 seconds, so the tests read the session the
module wrote and present sessions sealed with backdated times instead of waiting.
The inactivity tests wait real seconds against a 3-second timeout.
"""

import time

import pytest

import scalekit_harness as harness
import sso_site

SHORT_MAX_AGE = 60
SHORT_INACTIVITY = 3
SHORT_CONFIG = (
    f"ScalekitSessionInactivityTimeout {SHORT_INACTIVITY}\n"
    f"ScalekitSessionMaxAge {SHORT_MAX_AGE}\n"
    "ScalekitUserInfo On\n"
)
DEFAULT_MAX_AGE = 28800
DEFAULT_INACTIVITY = 3600
# The module rewrites the activity time at most every timeout/10 seconds, capped at
# 300 seconds: 300 for the default timeout of 3600.
DEFAULT_REWRITE_INTERVAL = 300

ALICE_CLAIMS = {"sub": "usr_acme_alice", "oid": "org_acme", "email": "alice@acme.test"}


def stop(server, secret_ledger):
    problems = sso_site.stop_site(server, secret_ledger)
    if problems:
        pytest.fail("httpd of test_session_lifetime.py:\n" + "\n".join(problems))


@pytest.fixture(scope="module")
def short_site(dev_idp, client_secret, secret_ledger):
    server = sso_site.start_site(dev_idp, client_secret, secret_ledger, SHORT_CONFIG)
    yield server
    stop(server, secret_ledger)


@pytest.fixture(scope="module")
def default_site(dev_idp, client_secret, secret_ledger):
    server = sso_site.start_site(dev_idp, client_secret, secret_ledger)
    yield server
    stop(server, secret_ledger)


@pytest.fixture
def browser():
    """A browser limited to 127.0.0.1 (replaces the fixture of conftest.py)."""
    with sso_site.browser() as session:
        yield session


def session_of(server, browser):
    value = browser.cookies.get(harness.SESSION_COOKIE)
    assert value, "the browser has no session cookie"
    return sso_site.open_session(server.site.session_secret, value)


def get_with_session(server, document, xhr=False):
    cookies = sso_site.session_cookies(server.site.session_secret, document)
    headers = {"Cookie": sso_site.cookie_header(cookies)}
    if xhr:
        headers.update(
            {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
        )
    with sso_site.browser() as session:
        return session.get(server.url("/sso/open/"), headers=headers)


# --- Maximum age --------------------------------------------------------------------


@pytest.mark.parametrize(
    "server_name,max_age",
    [("short_site", SHORT_MAX_AGE), ("default_site", DEFAULT_MAX_AGE)],
)
def test_max_age_stored(
    request, provider, browser, secret_ledger, server_name, max_age
):
    server = request.getfixturevalue(server_name)
    sso_site.login(browser, server.url("/sso/open/"), "alice", secret_ledger)

    document = session_of(server, browser)

    assert document["exp"] - document["iat"] == max_age, (
        f"the session lasts {document['exp'] - document['iat']} s, expected "
        f"ScalekitSessionMaxAge {max_age}"
    )
    assert abs(document["iat"] - time.time()) <= 5, f"iat {document['iat']} is not now"


# (age of the presented session in seconds, expected status of a navigation)
MAX_AGE_CASES = {
    "younger": (SHORT_MAX_AGE - 10, 200),
    "older": (SHORT_MAX_AGE + 1, 302),
}


@pytest.mark.parametrize("case", list(MAX_AGE_CASES))
def test_max_age_enforced(short_site, provider, case):
    age, status = MAX_AGE_CASES[case]
    document = sso_site.session_document(ALICE_CLAIMS, age=age, max_age=SHORT_MAX_AGE)

    response = get_with_session(short_site, document)

    assert response.status_code == status, (
        f"a session created {age} s ago (max age {SHORT_MAX_AGE} s, just used) got "
        f"{response.status_code}, expected {status}"
    )


def test_max_age_expired_xhr_401(short_site, provider):
    document = sso_site.session_document(
        ALICE_CLAIMS, age=SHORT_MAX_AGE + 1, max_age=SHORT_MAX_AGE
    )
    mark = short_site.log_mark()

    response = get_with_session(short_site, document, xhr=True)

    assert (
        response.status_code == 401
    ), f"an XHR with an expired session got {response.status_code}, expected 401"
    log = short_site.wait_for_log(mark, "session expired")
    assert "session expired" in log, f"the error log does not name the cause:\n{log}"


def test_activity_keeps_expiry(short_site, provider, browser, secret_ledger):
    sso_site.login(browser, short_site.url("/sso/open/"), "alice", secret_ledger)
    before = session_of(short_site, browser)
    time.sleep(1.1)

    response = browser.get(short_site.url("/sso/open/"))
    after = session_of(short_site, browser)

    assert response.status_code == 200, f"/sso/open/ returned {response.status_code}"
    assert (
        after["seen"] > before["seen"]
    ), f"the activity time stayed {before['seen']}: the request did not rewrite it"
    assert (
        after["exp"] == before["exp"]
    ), f"activity moved the expiry from {before['exp']} to {after['exp']}"
    assert after["sid"] == before["sid"], "activity replaced the session id"


# --- Inactivity ---------------------------------------------------------------------


def test_inactivity_ends_session(short_site, provider, browser, secret_ledger):
    steps = sso_site.login(
        browser, short_site.url("/sso/open/"), "alice", secret_ledger
    )
    assert steps.final.status_code == 200, "the page after login is not 200"
    time.sleep(SHORT_INACTIVITY + 1.2)
    mark = short_site.log_mark()

    xhr = browser.get(
        short_site.url("/sso/open/"),
        headers={"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"},
    )
    page = browser.get(short_site.url("/sso/open/"))

    assert (
        xhr.status_code == 401
    ), f"XHR after {SHORT_INACTIVITY + 1.2} s idle returned {xhr.status_code}"
    assert (
        page.status_code == 302
    ), f"navigation after {SHORT_INACTIVITY + 1.2} s idle returned {page.status_code}"
    log = short_site.wait_for_log(mark, "session inactive")
    assert "session inactive" in log, f"the error log does not name the cause:\n{log}"


def test_activity_extends_session(short_site, provider, browser, secret_ledger):
    sso_site.login(browser, short_site.url("/sso/open/"), "alice", secret_ledger)
    started = time.monotonic()

    # Each gap stays under the timeout, but the whole run lasts longer than it.
    for request_number in range(3):
        time.sleep(1.5)
        response = browser.get(short_site.url("/sso/open/"))
        assert response.status_code == 200, (
            f"request {request_number + 1}, {time.monotonic() - started:.1f} s after "
            f"login with a request every 1.5 s, returned {response.status_code}"
        )
    assert time.monotonic() - started > SHORT_INACTIVITY, "the run was too short"


def test_pass_activity_extends_session(short_site, provider, browser, secret_ledger):
    sso_site.login(browser, short_site.url("/sso/open/"), "alice", secret_ledger)
    started = time.monotonic()

    # As in test_activity_extends_session, but on pages of ScalekitUnauthAction pass,
    # where the session only exports claims.
    for request_number in range(3):
        time.sleep(1.5)
        response = browser.get(short_site.url("/sso/unauth-pass/"))
        page = sso_site.json_page(response, "/sso/unauth-pass/")
        assert page.get("REMOTE_USER") == "usr_acme_alice", (
            f"request {request_number + 1}, {time.monotonic() - started:.1f} s after "
            f"login with a request every 1.5 s, found no session: {page}"
        )


# (seconds since the last recorded activity, expected status, session rewritten)
REWRITE_CASES = {
    "recent": (DEFAULT_REWRITE_INTERVAL - 100, 200, False),
    "due": (DEFAULT_REWRITE_INTERVAL + 10, 200, True),
    "inactive": (DEFAULT_INACTIVITY + 5, 302, False),
}


@pytest.mark.parametrize("case", list(REWRITE_CASES))
def test_activity_rewrite_interval(default_site, provider, case):
    idle, status, rewritten = REWRITE_CASES[case]
    document = sso_site.session_document(ALICE_CLAIMS, age=idle, idle=idle)

    response = get_with_session(default_site, document)

    context = f"a session last used {idle} s ago"
    assert (
        response.status_code == status
    ), f"{context} got {response.status_code}, expected {status}"
    header = harness.find_set_cookie(response, harness.SESSION_COOKIE)
    if not rewritten:
        assert header is None, (
            f"{context}: expected no Set-Cookie for the session (rewrite interval "
            f"{DEFAULT_REWRITE_INTERVAL} s), got {header}"
        )
        return
    assert header is not None, (
        f"{context}: the session cookie was not rewritten after the "
        f"{DEFAULT_REWRITE_INTERVAL} s interval"
    )
    assert not sso_site.is_deletion(
        header
    ), f"{context}: the cookie is deleted: {header}"
    value, _ = harness.cookie_attributes(header)
    stored = sso_site.open_session(default_site.site.session_secret, value)
    assert (
        abs(stored["seen"] - time.time()) <= 5
    ), f"{context}: the rewritten activity time {stored['seen']} is not now"


# --- ScalekitUserInfo ---------------------------------------------------------------


def test_userinfo_requested(short_site, provider, browser, secret_ledger):
    steps = sso_site.login(
        browser, short_site.url("/sso/open/"), "alice", secret_ledger
    )

    calls = provider.requests_to("/userinfo")
    assert len(calls) == 1, f"the login made {len(calls)} userinfo requests, expected 1"
    authorization = calls[0]["headers"].get("Authorization", "")
    assert authorization.startswith(
        "Bearer "
    ), f"the userinfo request has Authorization {authorization[:12]!r}..."
    page = sso_site.json_page(steps.final, "/sso/open/ after a login with userinfo")
    # The dev provider's userinfo claims are all in its ID token too, so the merge
    # shows only as a session that still carries them.
    for name, value in {
        "SCALEKIT_CLAIM_sub": "usr_acme_alice",
        "SCALEKIT_CLAIM_given_name": "Alice",
        "SCALEKIT_CLAIM_email": "alice@acme.test",
    }.items():
        assert (
            page.get(name) == value
        ), f"{name} is {page.get(name)!r}, expected {value!r}"


def test_userinfo_off_not_requested(default_site, provider, browser, secret_ledger):
    sso_site.login(browser, default_site.url("/sso/open/"), "alice", secret_ledger)

    calls = provider.requests_to("/userinfo")

    assert calls == [], f"ScalekitUserInfo Off made {len(calls)} userinfo requests"


def test_userinfo_other_sub_rejected():
    pytest.skip(
        "the dev provider has no misbehaviour that makes /userinfo return another "
        "sub than the ID token, so the sub check cannot be driven from here"
    )
