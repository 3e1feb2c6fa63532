"""Issuer spellings: a trailing slash must not double in the discovery URL.

OpenID Connect Discovery 1.0, section 4, removes a terminating "/" of the issuer
before appending /.well-known/openid-configuration, while the issuer comparison keeps
the slash.
"""

import subprocess

import pytest

import scalekit_harness as harness


@pytest.fixture
def slash_provider(tmp_path, client_secret):
    port = harness.free_port()
    issuer = f"http://127.0.0.1:{port}/"
    stderr = open(tmp_path / "devidp.stderr", "wb")
    process = subprocess.Popen(
        [
            harness.PYTHON,
            str(harness.DEV_IDP_SCRIPT),
            "--port",
            str(port),
            "--issuer",
            issuer,
            "--client-id",
            harness.CLIENT_ID,
            "--client-secret",
            client_secret,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    line = process.stdout.readline()
    assert "listening" in line, f"the dev provider did not start: {line!r}"
    yield issuer
    process.terminate()
    process.wait(timeout=10)
    stderr.close()


@pytest.fixture
def slash_httpd(slash_provider, client_secret):
    root = harness.make_tree("mod-auth-scalekit-issuer-")
    server = harness.Httpd(root, harness.SiteConfig(slash_provider, client_secret))
    server.start()
    yield server
    server.stop()
    assert server.new_fatal_log_lines() == [], "httpd logged a crash"


def test_issuer_trailing_slash_login(slash_httpd, secret_ledger):
    with harness.browser() as session:
        steps = harness.follow_login(
            session, slash_httpd.url("/intranet/"), "alice", secret_ledger
        )
        page = session.get(
            slash_httpd.url("/intranet/claims.cgi"),
            timeout=harness.HTTP_TIMEOUT_SECONDS,
        )

    fetches = [
        line
        for line in slash_httpd.read_error_log().splitlines()
        if "fetching discovery document from" in line
    ]

    assert steps.start.status_code == 302, "the login did not start"
    assert page.status_code == 200, f"claims.cgi after login: {page.status_code}"
    assert "usr_acme_alice" in page.text, "the login did not yield alice's session"
    # Python's http.server folds "//" in a path, so only the module's own debug line
    # shows the URL it requested.
    assert fetches, "the error log has no discovery fetch line at debug level"
    assert all("//.well-known" not in line for line in fetches), (
        f"the discovery URL kept the issuer's trailing slash: {fetches}"
    )
