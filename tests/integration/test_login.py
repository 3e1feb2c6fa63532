"""Successful logins through mod_auth_scalekit and the dev identity provider.

Covers what PHP and CGI receive after a login, the authorization and token requests
that the module sends, and the attributes of its cookies.
"""

import urllib.parse

import scalekit_harness as harness


def assert_variables(variables, expected, page):
    for name, value in expected.items():
        assert name in variables, f"{page}: {name} is not set; variables: {variables}"
        assert (
            variables[name] == value
        ), f"{page}: {name} is {variables[name]!r}, expected {value!r}"


ALICE = {
    "REMOTE_USER": "usr_acme_alice",
    "AUTH_TYPE": "Scalekit",
    "SCALEKIT_CLAIM_email": "alice@acme.test",
    "SCALEKIT_CLAIM_oid": "org_acme",
}


def test_public_page_needs_no_login(httpd, provider, browser):
    response = browser.get(httpd.url("/"), allow_redirects=False)

    assert (
        response.status_code == 200
    ), f"GET / returned {response.status_code}, expected the public page"
    assert "Public start page" in response.text, "GET / did not serve index.html"
    assert (
        harness.set_cookie_headers(response) == []
    ), f"the public page set cookies: {harness.set_cookie_headers(response)}"
    assert (
        provider.recorded_requests() == []
    ), "the public page caused requests to the identity provider"


def test_login_alice_php_page(httpd, provider, browser, login):
    final = login(browser, httpd.url("/intranet/"))

    assert (
        final.status_code == 200
    ), f"/intranet/ after login returned {final.status_code}: {final.text[:500]}"
    assert (
        urllib.parse.urlsplit(final.url).path == "/intranet/"
    ), f"the login ended on {final.url}, expected /intranet/"
    assert (
        "Intranet (PHP)" in final.text
    ), f"/intranet/ was not run by PHP: {final.text[:500]}"
    assert_variables(harness.page_variables(final.text), ALICE, "index.php")


def test_login_session_reaches_cgi(httpd, provider, browser, login):
    login(browser, httpd.url("/intranet/"))
    response = browser.get(httpd.url("/intranet/claims.cgi"), allow_redirects=False)

    assert response.status_code == 200, (
        f"claims.cgi with a session returned {response.status_code}: "
        f"{response.text[:500]}"
    )
    assert (
        "Intranet (CGI)" in response.text
    ), f"claims.cgi was not run as CGI: {response.text[:500]}"
    assert_variables(harness.page_variables(response.text), ALICE, "claims.cgi")


def test_session_reused_without_provider(httpd, provider, browser, login):
    login(browser, httpd.url("/intranet/"))
    provider.reset()

    for path in ("/intranet/", "/intranet/claims.cgi", "/intranet/index.php"):
        response = browser.get(httpd.url(path), allow_redirects=False)
        assert (
            response.status_code == 200
        ), f"GET {path} with a session returned {response.status_code}"
    assert provider.recorded_requests() == [], (
        "requests with a valid session went to the identity provider: "
        f"{[entry['path'] for entry in provider.recorded_requests()]}"
    )


def test_login_bob_sub_with_separators(httpd, provider, browser, login):
    final = login(browser, httpd.url("/intranet/claims.cgi"), user="bob")
    variables = harness.page_variables(final.text)

    assert (
        final.status_code == 200
    ), f"claims.cgi after bob's login returned {final.status_code}"
    assert variables.get("REMOTE_USER") == "conn_acme_okta;00u-bob|42", (
        f"REMOTE_USER is {variables.get('REMOTE_USER')!r}, expected bob's sub "
        "'conn_acme_okta;00u-bob|42' unchanged"
    )
    assert (
        variables.get("SCALEKIT_CLAIM_sub") == "conn_acme_okta;00u-bob|42"
    ), f"SCALEKIT_CLAIM_sub is {variables.get('SCALEKIT_CLAIM_sub')!r}"


def test_login_claim_value_formats(httpd, provider, browser, login):
    final = login(browser, httpd.url("/intranet/claims.cgi"))
    variables = harness.page_variables(final.text)

    # Arrays of strings are joined with ",", booleans and numbers are JSON text.
    assert_variables(
        variables,
        {
            "SCALEKIT_CLAIM_amr": "conn_acme_okta",
            "SCALEKIT_CLAIM_aud": harness.CLIENT_ID,
            "SCALEKIT_CLAIM_email_verified": "true",
            "SCALEKIT_CLAIM_iss": provider.issuer,
            "SCALEKIT_CLAIM_name": "Alice Archer",
        },
        "claims.cgi",
    )
    assert variables.get("SCALEKIT_CLAIM_exp", "").isdigit(), (
        f"SCALEKIT_CLAIM_exp is {variables.get('SCALEKIT_CLAIM_exp')!r}, expected "
        "a number"
    )


def test_login_htaccess_directory(httpd, provider, browser, login):
    unauthenticated = browser.get(httpd.url("/team/claims.cgi"), allow_redirects=False)
    assert unauthenticated.status_code == 302, (
        f"/team/ (protected by .htaccess) returned {unauthenticated.status_code} "
        "without a session, expected 302 to the provider"
    )

    final = login(browser, httpd.url("/team/claims.cgi"), user="carol")

    assert (
        final.status_code == 200
    ), f"/team/claims.cgi after login returned {final.status_code}"
    assert_variables(
        harness.page_variables(final.text),
        {
            "REMOTE_USER": "usr_globex_carol",
            "AUTH_TYPE": "Scalekit",
            "SCALEKIT_CLAIM_oid": "org_globex",
        },
        "/team/claims.cgi",
    )


def test_login_returns_to_url_with_query(httpd, provider, browser, login):
    final = login(browser, httpd.url("/intranet/claims.cgi?tab=claims&x=%2F1"))

    assert (
        final.status_code == 200
    ), f"the original URL returned {final.status_code} after login"
    assert final.url == httpd.url(
        "/intranet/claims.cgi?tab=claims&x=%2F1"
    ), f"the login returned to {final.url}, expected the original URL with its query"


def test_authorization_request_parameters(httpd, provider, browser, login):
    login(browser, httpd.url("/intranet/"))
    recorded = provider.requests_to("/oauth/authorize", method="GET")

    assert (
        len(recorded) == 1
    ), f"expected one authorization request, the provider recorded {len(recorded)}"
    query = recorded[0]["query"]
    assert query.get("response_type") == "code", f"response_type: {query}"
    assert query.get("client_id") == harness.CLIENT_ID, f"client_id: {query}"
    assert (
        query.get("redirect_uri") == httpd.callback_url
    ), f"redirect_uri is {query.get('redirect_uri')!r}, expected {httpd.callback_url}"
    assert len(query.get("state", "")) >= 16, f"state missing or short: {query}"
    assert len(query.get("nonce", "")) >= 16, f"nonce missing or short: {query}"
    assert (
        len(query.get("code_challenge", "")) == 43
    ), f"code_challenge is not a base64url SHA-256 (43 characters): {query}"
    assert (
        query.get("code_challenge_method") == "S256"
    ), f"code_challenge_method: {query}"
    assert (
        "openid" in query.get("scope", "").split()
    ), f"scope {query.get('scope')!r} does not contain openid"


def test_token_request_client_secret_post(
    httpd, provider, browser, login_steps, client_secret
):
    steps = login_steps(browser, httpd.url("/intranet/"))
    challenge = provider.requests_to("/oauth/authorize")[0]["query"]["code_challenge"]
    tokens = provider.requests_to("/oauth/token", method="POST")

    assert (
        len(tokens) == 1
    ), f"expected one token request, the provider recorded {len(tokens)}"
    form = tokens[0]["form"]
    headers = {name.lower(): value for name, value in tokens[0]["headers"].items()}
    assert form.get("grant_type") == "authorization_code", f"grant_type: {form}"
    assert (
        form.get("code") == harness.query_of(steps.callback_url)["code"]
    ), "the token request does not carry the code from the callback"
    assert (
        form.get("redirect_uri") == httpd.callback_url
    ), f"redirect_uri {form.get('redirect_uri')!r} differs from the callback URL"
    assert form.get("client_id") == harness.CLIENT_ID, f"client_id: {form}"
    assert (
        form.get("client_secret") == client_secret
    ), "client_secret in the form is not the configured secret (client_secret_post)"
    assert (
        "authorization" not in headers
    ), "the token request also sent an Authorization header"
    assert harness.base64url_sha256(form.get("code_verifier", "")) == challenge, (
        "S256(code_verifier) does not equal the code_challenge of the authorization "
        "request"
    )


def test_session_cookie_attributes(httpd, provider, browser, login_steps):
    steps = login_steps(browser, httpd.url("/intranet/"))
    header = harness.find_set_cookie(steps.callback, harness.SESSION_COOKIE)

    assert header is not None, (
        f"the callback set no {harness.SESSION_COOKIE} cookie; Set-Cookie: "
        f"{harness.set_cookie_headers(steps.callback)}"
    )
    value, attributes = harness.cookie_attributes(header)
    assert value, "the session cookie is empty"
    assert (
        attributes.get("httponly") is True
    ), f"session cookie lacks HttpOnly: {header}"
    assert (
        attributes.get("samesite", "").lower() == "lax"
    ), f"session cookie is not SameSite=Lax: {header}"
    assert attributes.get("path") == "/", f"session cookie Path is not /: {header}"


def test_state_cookie_scoped_to_callback(httpd, provider, browser, login_steps):
    steps = login_steps(browser, httpd.url("/intranet/"))
    name = harness.state_cookie_name(steps.state)
    header = harness.find_set_cookie(steps.start, name)

    assert header is not None, (
        f"the redirect to the provider set no {name} cookie; Set-Cookie: "
        f"{harness.set_cookie_headers(steps.start)}"
    )
    _, attributes = harness.cookie_attributes(header)
    assert (
        attributes.get("path") == harness.CALLBACK_PATH
    ), f"state cookie Path is not {harness.CALLBACK_PATH}: {header}"
    assert attributes.get("httponly") is True, f"state cookie lacks HttpOnly: {header}"
    assert (
        attributes.get("samesite", "").lower() == "lax"
    ), f"state cookie is not SameSite=Lax: {header}"
    assert (
        attributes.get("max-age") == "600"
    ), f"state cookie Max-Age is not 600: {header}"


def test_state_cookie_deleted_on_callback(httpd, provider, browser, login_steps):
    steps = login_steps(browser, httpd.url("/intranet/"))
    name = harness.state_cookie_name(steps.state)
    header = harness.find_set_cookie(steps.callback, name)

    assert header is not None, (
        f"the callback did not delete {name}; Set-Cookie: "
        f"{harness.set_cookie_headers(steps.callback)}"
    )
    value, attributes = harness.cookie_attributes(header)
    assert value == "", f"the deleting Set-Cookie still has a value: {header}"
    assert (
        attributes.get("max-age") == "0"
    ), f"the state cookie is not expired: {header}"
    assert (
        attributes.get("path") == harness.CALLBACK_PATH
    ), f"the deleting Set-Cookie has another Path than the state cookie: {header}"
    assert name not in browser.cookies, f"{name} is still in the client's cookie jar"
