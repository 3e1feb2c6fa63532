"""Claims reach applications behind mod_proxy: PHP-FPM and a plain HTTP backend.

An httpd of its own loads mod_proxy, mod_proxy_fcgi and mod_proxy_http next to the
module. /fpm/ hands .php files to a PHP-FPM master that the tests start on a 127.0.0.1
port with a config file in a temporary directory (not Debian's php8.2-fpm service), and
the FPM tests skip when /usr/sbin/php-fpm8.2 is missing. /headers/, /both/ and /env/
are proxied to a Python HTTP server in this process that responds with the request
headers it received, as JSON.
"""

import http.server
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

import scalekit_harness as harness

PHP_FPM = "/usr/sbin/php-fpm8.2"
BIND_ATTEMPTS = 3

ALICE_CLAIMS = {
    "sub": "usr_acme_alice",
    "email": "alice@acme.test",
    "oid": "org_acme",
}

# A PHP page that reports its SAPI and the variables that the module sets, as JSON.
FPM_PAGE = """<?php
$variables = [];
foreach ($_SERVER as $name => $value) {
    if (in_array($name, ['REMOTE_USER', 'AUTH_TYPE'], true)
        || str_starts_with($name, 'SCALEKIT_CLAIM_')
        || str_starts_with($name, 'HTTP_SCALEKIT_CLAIM_')) {
        $variables[$name] = $value;
    }
}
header('Content-Type: application/json');
echo json_encode(['sapi' => php_sapi_name(), 'variables' => $variables]);
"""


# --- Header echo backend -------------------------------------------------------------


class HeaderEchoHandler(http.server.BaseHTTPRequestHandler):
    """Respond to every GET with {"path": ..., "headers": [[name, value], ...]}."""

    def do_GET(self):
        self.server.requests.append(self.path)
        body = json.dumps(
            {"path": self.path, "headers": [list(item) for item in self.headers.items()]}
        ).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def echo_backend():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HeaderEchoHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def headers_seen(response):
    """Return the headers that the echo backend received, as {lower-case name: value}."""
    assert response.status_code == 200, (
        f"{response.url}: expected the echo backend's 200, got "
        f"{response.status_code}: {response.text[:300]}"
    )
    return {name.lower(): value for name, value in response.json()["headers"]}


# --- PHP-FPM -------------------------------------------------------------------------


def wait_for_port(port, process, log_path):
    deadline = time.monotonic() + harness.STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"php-fpm exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"php-fpm does not listen on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def fpm_port():
    return harness.free_port()


@pytest.fixture(scope="module")
def php_fpm(fpm_port, tmp_path_factory):
    """A php-fpm master on 127.0.0.1:fpm_port whose workers run as www-data."""
    if not shutil.which(PHP_FPM):
        pytest.skip(
            f"{PHP_FPM} is missing: install the Debian package php8.2-fpm to run the "
            "PHP-FPM tests"
        )
    directory = tmp_path_factory.mktemp("php-fpm")
    log_path = directory / "php-fpm.log"
    config = directory / "php-fpm.conf"
    config.write_text(
        "[global]\n"
        f"pid = {directory}/php-fpm.pid\n"
        f"error_log = {log_path}\n"
        "daemonize = no\n"
        "[scalekit_test]\n"
        f"listen = 127.0.0.1:{fpm_port}\n"
        "listen.allowed_clients = 127.0.0.1\n"
        "user = www-data\n"
        "group = www-data\n"
        "pm = static\n"
        "pm.max_children = 2\n"
        "catch_workers_output = yes\n"
    )
    process = subprocess.Popen(
        [PHP_FPM, "--nodaemonize", "--fpm-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(fpm_port, process, log_path)
        yield process
    finally:
        # SIGQUIT is php-fpm's graceful stop.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=harness.STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- httpd with mod_proxy ------------------------------------------------------------


def proxy_config(root, fpm_port, backend_port):
    backend = f"http://127.0.0.1:{backend_port}"
    return f"""
<Directory "{root}/htdocs/fpm">
    AuthType Scalekit
    Require valid-user
    DirectoryIndex index.php
    <FilesMatch "\\.php$">
        SetHandler "proxy:fcgi://127.0.0.1:{fpm_port}"
    </FilesMatch>
</Directory>

<Location /headers/>
    AuthType Scalekit
    Require valid-user
    ScalekitPassClaimsAs headers
    ProxyPass {backend}/headers/
</Location>

<Location /both/>
    AuthType Scalekit
    Require valid-user
    ScalekitPassClaimsAs both
    ProxyPass {backend}/both/
</Location>

<Location /env/>
    AuthType Scalekit
    Require valid-user
    ProxyPass {backend}/env/
</Location>
"""


@pytest.fixture(scope="module")
def proxy_httpd(dev_idp, client_secret, secret_ledger, echo_backend, fpm_port):
    root = harness.make_tree("mod-auth-scalekit-backends-")
    fpm_dir = root / "htdocs" / "fpm"
    server = None
    try:
        for attempt in range(BIND_ATTEMPTS):
            site = harness.SiteConfig(dev_idp.issuer, client_secret)
            secret_ledger.add("session secret", site.session_secret)
            site.extra_modules = [
                ("proxy_module", "mod_proxy.so"),
                ("proxy_fcgi_module", "mod_proxy_fcgi.so"),
                ("proxy_http_module", "mod_proxy_http.so"),
            ]
            site.extra_config = proxy_config(
                root, fpm_port, echo_backend.server_address[1]
            )
            server = harness.Httpd(root, site)
            fpm_dir.mkdir(exist_ok=True)
            fpm_dir.chmod(0o755)
            harness.install_file(fpm_dir / "variables.php", FPM_PAGE, 0o644)
            harness.install_copy(
                harness.EXAMPLE_INTRANET / "index.php", fpm_dir / "index.php", 0o644
            )
            try:
                server.start()
                break
            except harness.PortInUseError:
                if attempt == BIND_ATTEMPTS - 1:
                    raise
        yield server
        fatal = server.new_fatal_log_lines()
        assert fatal == [], "httpd error log has fatal lines:\n" + "\n".join(fatal)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root)


@pytest.fixture
def logged_in(proxy_httpd, dev_idp, secret_ledger):
    """Return a browser session of alice on proxy_httpd, logged in through /env/."""
    dev_idp.reset()
    session = harness.browser()
    steps = harness.follow_login(
        session, proxy_httpd.url("/env/"), "alice", secret_ledger
    )
    assert steps.callback.status_code == 302, (
        f"callback: expected 302, got {steps.callback.status_code}: "
        f"{steps.callback.text[:300]}"
    )
    yield session
    session.close()
    dev_idp.reset()


# --- PHP-FPM through proxy_fcgi ------------------------------------------------------


def test_fpm_receives_claims(php_fpm, proxy_httpd, logged_in):
    response = logged_in.get(proxy_httpd.url("/fpm/variables.php"), allow_redirects=False)

    assert response.status_code == 200, (
        f"variables.php through PHP-FPM returned {response.status_code}: "
        f"{response.text[:300]}"
    )
    page = response.json()
    variables = page["variables"]
    assert page["sapi"] == "fpm-fcgi", f"the page ran in {page['sapi']}, not PHP-FPM"
    assert variables.get("REMOTE_USER") == ALICE_CLAIMS["sub"], f"{variables}"
    assert variables.get("AUTH_TYPE") == "Scalekit", f"{variables}"
    for claim, value in ALICE_CLAIMS.items():
        name = f"SCALEKIT_CLAIM_{claim}"
        assert variables.get(name) == value, f"{name}: {variables.get(name)!r}"


def test_fpm_example_page(php_fpm, proxy_httpd, logged_in):
    response = logged_in.get(proxy_httpd.url("/fpm/"), allow_redirects=False)

    assert response.status_code == 200, f"/fpm/ returned {response.status_code}"
    assert "Intranet (PHP)" in response.text, f"/fpm/: {response.text[:300]}"
    variables = harness.page_variables(response.text)
    assert variables.get("REMOTE_USER") == ALICE_CLAIMS["sub"], f"{variables}"
    assert variables.get("SCALEKIT_CLAIM_oid") == ALICE_CLAIMS["oid"], f"{variables}"


def test_fpm_spoofed_claim_header(php_fpm, proxy_httpd, logged_in):
    response = logged_in.get(
        proxy_httpd.url("/fpm/variables.php"),
        headers={"Scalekit-Claim-oid": "org_evil", "Scalekit_Claim_Admin": "true"},
        allow_redirects=False,
    )

    assert response.status_code == 200, f"variables.php returned {response.status_code}"
    variables = response.json()["variables"]
    spoofed = [name for name in variables if name.startswith("HTTP_SCALEKIT_CLAIM_")]
    assert spoofed == [], f"client claim headers reached PHP: {spoofed}"
    assert variables.get("SCALEKIT_CLAIM_oid") == ALICE_CLAIMS["oid"], f"{variables}"


def test_fpm_without_session(php_fpm, proxy_httpd):
    with harness.browser() as session:
        response = session.get(
            proxy_httpd.url("/fpm/variables.php"), allow_redirects=False
        )

    assert (
        response.status_code == 302
    ), f"variables.php without a session returned {response.status_code}"
    location = urllib.parse.urlsplit(response.headers["Location"])
    assert location.path == "/oauth/authorize", f"redirected to {location}"


# --- HTTP backend through proxy_http -------------------------------------------------


def test_backend_receives_claim_headers(proxy_httpd, logged_in):
    headers = headers_seen(
        logged_in.get(proxy_httpd.url("/headers/page"), allow_redirects=False)
    )

    for claim, value in ALICE_CLAIMS.items():
        name = f"scalekit-claim-{claim}"
        assert headers.get(name) == value, f"{name}: {headers.get(name)!r}"


def test_backend_header_name_dashes(proxy_httpd, logged_in):
    # The dev provider's ID token has email_verified, and '_' becomes '-' in a header
    # name.
    headers = headers_seen(
        logged_in.get(proxy_httpd.url("/headers/page"), allow_redirects=False)
    )
    names = sorted(name for name in headers if name.startswith("scalekit-claim-"))

    assert "scalekit-claim-email-verified" in names, f"claim headers: {names}"
    assert all("_" not in name for name in names), f"claim headers: {names}"


def test_backend_spoofed_claim_header(proxy_httpd, logged_in):
    response = logged_in.get(
        proxy_httpd.url("/headers/page"),
        headers={
            "Scalekit-Claim-email": "mallory@evil.test",
            "scalekit_claim_admin": "true",
        },
        allow_redirects=False,
    )
    headers = headers_seen(response)

    assert headers.get("scalekit-claim-email") == ALICE_CLAIMS["email"], f"{headers}"
    assert "scalekit-claim-admin" not in headers, f"{headers}"
    assert "scalekit_claim_admin" not in headers, f"{headers}"


def test_backend_both_sends_headers(proxy_httpd, logged_in):
    headers = headers_seen(
        logged_in.get(proxy_httpd.url("/both/page"), allow_redirects=False)
    )

    assert headers.get("scalekit-claim-sub") == ALICE_CLAIMS["sub"], f"{headers}"


def test_backend_env_sends_no_headers(proxy_httpd, logged_in):
    headers = headers_seen(
        logged_in.get(proxy_httpd.url("/env/page"), allow_redirects=False)
    )
    claim_headers = [name for name in headers if name.startswith("scalekit-claim")]

    assert claim_headers == [], f"ScalekitPassClaimsAs env sent {claim_headers}"


def test_backend_without_session(proxy_httpd, echo_backend):
    before = len(echo_backend.requests)
    with harness.browser() as session:
        response = session.get(proxy_httpd.url("/headers/page"), allow_redirects=False)

    assert (
        response.status_code == 302
    ), f"/headers/ without a session returned {response.status_code}"
    assert (
        len(echo_backend.requests) == before
    ), "the backend received a request without a session"
