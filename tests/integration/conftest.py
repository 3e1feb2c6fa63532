"""Fixtures that run the dev identity provider and httpd with mod_auth_scalekit.

Both servers start once per pytest session on free 127.0.0.1 ports and stop at its
end. Run the suite with Debian's interpreter:

    /usr/bin/python3 -m pytest tests/integration

MOD_AUTH_SCALEKIT_SO selects another build of the module than src/.libs.
"""

import secrets
import shutil

import pytest

import scalekit_harness as harness

HTTPD_KEY = pytest.StashKey()
# Maximum number of httpd starts, each on a newly picked port, when another process
# takes the port first.
BIND_ATTEMPTS = 3


@pytest.fixture(scope="session")
def secret_ledger():
    """Every secret value seen during the run, for the check that logs contain none."""
    return harness.SecretLedger()


@pytest.fixture(scope="session")
def client_secret(secret_ledger):
    value = "sks_test_" + secrets.token_urlsafe(24)
    secret_ledger.add("client secret", value)
    return value


@pytest.fixture(scope="session")
def dev_idp(tmp_path_factory, client_secret, secret_ledger):
    if not harness.DEV_IDP_SCRIPT.exists():
        pytest.fail(f"the dev identity provider is missing: {harness.DEV_IDP_SCRIPT}")
    provider = harness.DevIdp(
        tmp_path_factory.mktemp("devidp"), client_secret, secret_ledger
    )
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def httpd(request, dev_idp, client_secret, secret_ledger):
    module = harness.module_path()
    if not module.exists():
        pytest.fail(
            f"{module} is missing; build it with autoreconf -fi && ./configure && make"
        )

    root = harness.make_tree("mod-auth-scalekit-it-")
    for attempt in range(BIND_ATTEMPTS):
        site = harness.SiteConfig(dev_idp.issuer, client_secret)
        secret_ledger.add("session secret", site.session_secret)
        server = harness.Httpd(root, site)
        try:
            server.start()
            break
        except harness.PortInUseError:
            if attempt == BIND_ATTEMPTS - 1:
                raise
        except BaseException:
            server.stop()
            raise
    request.config.stash[HTTPD_KEY] = server
    yield server

    server.stop()
    del request.config.stash[HTTPD_KEY]
    fatal = server.new_fatal_log_lines()
    if fatal:
        pytest.fail("httpd error log has fatal lines at stop:\n" + "\n".join(fatal))
    shutil.rmtree(root)


@pytest.fixture(autouse=True, scope="module")
def error_log_check(request):
    """Fail a test module whose requests left fatal lines in the httpd error log."""
    yield
    server = request.config.stash.get(HTTPD_KEY, None)
    if server is None:
        return
    fatal = server.new_fatal_log_lines()
    if fatal:
        pytest.fail(
            f"httpd error log has fatal lines after {request.module.__name__}:\n"
            + "\n".join(fatal)
        )


@pytest.fixture
def provider(dev_idp):
    """The dev identity provider, reset before and after the test."""
    dev_idp.reset()
    yield dev_idp
    dev_idp.reset()


@pytest.fixture
def browser():
    with harness.browser() as session:
        yield session


@pytest.fixture
def login_steps(httpd, secret_ledger):
    """Return follow_login(session, url, user="alice") -> LoginSteps for this server."""

    def run(session, url, user="alice"):
        return harness.follow_login(session, url, user, secret_ledger)

    return run


@pytest.fixture
def login(login_steps):
    """Return login(session, url, user="alice") -> the response after the login."""

    def run(session, url, user="alice"):
        steps = login_steps(session, url, user)
        assert steps.callback.status_code == 302, (
            f"callback: expected 302 back to {url}, got {steps.callback.status_code}: "
            f"{steps.callback.text[:500]}"
        )
        return steps.final

    return run
