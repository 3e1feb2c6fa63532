"""A docroot of .htaccess-configured directories, its httpd, and session cookies.

test_intranet.py, test_logout.py and test_session_lifetime.py each start their own
httpd from start_site(), because they need server-wide settings (allowed logout hosts,
short session times, userinfo, the session store) that the shared httpd fixture of
conftest.py does not have. The directories under /sso/ get their Scalekit settings
from real .htaccess files (AllowOverride AuthConfig).

seal_session() and open_session() read and write the module's session cookie with the
test's own copy of ScalekitSessionSecret, so tests can check what the module stored
and present sessions with claims the dev provider never issues (nested objects,
backdated times). The format follows src/session.c and src/sk_crypto.c: JSON sealed
with AES-256-GCM (version byte 1, 12-byte nonce, ciphertext, 16-byte tag, base64url
without padding), the key derived with HKDF-SHA256 from the secret (salt
"mod_auth_scalekit", info "session cookie v1"), and the cookie name as additional data.
"""

import base64
import json
import os
import secrets
import shutil
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import scalekit_harness as harness

# Maximum number of httpd starts, each on a newly picked port, when another process
# takes the port first (as in conftest.py).
BIND_ATTEMPTS = 3

# Hosts that ScalekitLogoutRedirectAllowed lists on the sites of these tests. Nothing
# is sent to them: the tests only read the Location headers that name them.
ALLOWED_HOST_WITH_PORT = "partner.example:8443"
ALLOWED_HOST_ANY_PORT = "docs.example"

# .htaccess text of each directory under htdocs/sso, keyed by its path there. None
# means the directory has no .htaccess and inherits everything from its parent.
SSO_TREE = {
    "open": "AuthType Scalekit\nRequire valid-user\n",
    # Nested routing: organization, then connection, then domain, and a sibling.
    "org": "AuthType Scalekit\nRequire valid-user\nScalekitOrganizationID org_acme\n",
    "org/conn": "ScalekitConnectionID conn_acme_okta\n",
    "org/conn/dom": "ScalekitDomain globex.test\n",
    "org/conn/deeper": None,
    "org/sibling": None,
    "org/hint": "ScalekitLoginHint bob@acme.test\n",
    # Several selectors in one file: only the most specific one goes out.
    "all-selectors": (
        "AuthType Scalekit\nRequire valid-user\n"
        "ScalekitDomain globex.test\nScalekitOrganizationID org_globex\n"
        "ScalekitConnectionID conn_acme_okta\n"
    ),
    "org-and-domain": (
        "AuthType Scalekit\nRequire valid-user\n"
        "ScalekitDomain acme.test\nScalekitOrganizationID org_globex\n"
    ),
    "globex": (
        "AuthType Scalekit\nRequire valid-user\nScalekitOrganizationID org_globex\n"
    ),
    "hint-on": "AuthType Scalekit\nRequire valid-user\nScalekitAllowLoginHint On\n",
    "hint-on/off": "ScalekitAllowLoginHint Off\n",
    "hint-off": "AuthType Scalekit\nRequire valid-user\n",
    # Require providers and their combinations.
    "require/exact": (
        "AuthType Scalekit\nRequire scalekit-claim email:alice@acme.test\n"
    ),
    "require/regex": "AuthType Scalekit\nRequire scalekit-claim email~^(alice|carol)@\n",
    "require/array": "AuthType Scalekit\nRequire scalekit-claim amr:conn_globex_entra\n",
    "require/boolean": "AuthType Scalekit\nRequire scalekit-claim email_verified:true\n",
    "require/any-argument": (
        "AuthType Scalekit\n"
        "Require scalekit-claim email:nobody@acme.test email:bob@acme.test\n"
    ),
    "require/nested": "AuthType Scalekit\nRequire scalekit-claim address.country:DE\n",
    "require/org": "AuthType Scalekit\nRequire scalekit-org org_globex\n",
    "require/org-list": "AuthType Scalekit\nRequire scalekit-org org_initech org_acme\n",
    "require/all": (
        "AuthType Scalekit\n<RequireAll>\n"
        "    Require scalekit-org org_acme\n"
        "    Require scalekit-claim email:bob@acme.test\n"
        "</RequireAll>\n"
    ),
    "require/any": (
        "AuthType Scalekit\n<RequireAny>\n"
        "    Require scalekit-claim email:carol@globex.test\n"
        "    Require scalekit-claim email:bob@acme.test\n"
        "</RequireAny>\n"
    ),
    "require/not": (
        "AuthType Scalekit\n<RequireAll>\n"
        "    Require valid-user\n"
        "    Require not scalekit-claim email:alice@acme.test\n"
        "</RequireAll>\n"
    ),
    "require/org-but-not-alice": (
        "AuthType Scalekit\n<RequireAll>\n"
        "    Require scalekit-org org_acme\n"
        "    <RequireNone>\n"
        "        Require scalekit-claim email~^alice@\n"
        "    </RequireNone>\n"
        "</RequireAll>\n"
    ),
    # ScalekitUnauthAction.
    "unauth-401": "AuthType Scalekit\nRequire valid-user\nScalekitUnauthAction 401\n",
    "unauth-401/auth": "ScalekitUnauthAction auth\n",
    "unauth-403": "AuthType Scalekit\nRequire valid-user\nScalekitUnauthAction 403\n",
    "unauth-pass": (
        "AuthType Scalekit\nRequire all granted\nScalekitUnauthAction pass\n"
    ),
    # Claims as request headers only.
    "headers": "AuthType Scalekit\nRequire valid-user\nScalekitPassClaimsAs headers\n",
}

# Prints the user, the auth type and every variable with SCALEKIT in its name as JSON.
# CGI turns a request header Scalekit-Claim-Email into HTTP_SCALEKIT_CLAIM_EMAIL.
ENV_CGI = """#!/usr/bin/python3
import json
import os

variables = {
    name: value
    for name, value in os.environ.items()
    if name in ("REMOTE_USER", "AUTH_TYPE") or "SCALEKIT" in name.upper()
}
print("Content-Type: application/json\\r\\nCache-Control: no-store\\r\\n\\r\\n", end="")
print(json.dumps(variables, sort_keys=True))
"""

# Lists the request headers as httpd stores them. CGI cannot show headers whose names
# contain "_", because httpd leaves them out of the CGI environment, but PHP's
# apache_request_headers() can.
HEADERS_PHP = """<?php
header('Content-Type: application/json');
header('Cache-Control: no-store');
echo json_encode(array('headers' => apache_request_headers(),
                       'remote_user' => isset($_SERVER['REMOTE_USER'])
                                        ? $_SERVER['REMOTE_USER'] : null));
"""


def sso_directory_config(root):
    """Return the <Directory> block that lets .htaccess files under /sso/ configure
    Scalekit and run env.cgi and headers.php."""
    return f"""
<Directory "{root}/htdocs/sso">
    Options +ExecCGI
    AllowOverride AuthConfig
    AddHandler cgi-script .cgi
    DirectoryIndex env.cgi
    <FilesMatch "\\.php$">
        SetHandler application/x-httpd-php
    </FilesMatch>
</Directory>
"""


def write_sso_tree(htdocs):
    """Create htdocs/sso with env.cgi and headers.php in every directory of SSO_TREE."""
    sso = htdocs / "sso"
    directories = [sso] + [sso / path for path in SSO_TREE]
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        harness.install_file(directory / "env.cgi", ENV_CGI, 0o755)
        harness.install_file(directory / "headers.php", HEADERS_PHP, 0o644)
    for path, htaccess in SSO_TREE.items():
        if htaccess is not None:
            harness.install_file(sso / path / ".htaccess", htaccess, 0o644)


def start_site(dev_idp, client_secret, secret_ledger, server_config=""):
    """Start an httpd with the /sso/ tree and server_config in the main server.

    Returns the running harness.Httpd. Call stop_site() to stop it.
    """
    root = harness.make_tree("mod-auth-scalekit-sso-")
    for attempt in range(BIND_ATTEMPTS):
        site = harness.SiteConfig(dev_idp.issuer, client_secret)
        site.extra_server_config = server_config
        site.extra_config = sso_directory_config(root)
        secret_ledger.add("session secret", site.session_secret)
        server = harness.Httpd(root, site)
        write_sso_tree(root / "htdocs")
        try:
            server.start()
            return server
        except harness.PortInUseError:
            if attempt == BIND_ATTEMPTS - 1:
                shutil.rmtree(root)
                raise
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")


def stop_site(server, secret_ledger):
    """Stop server, then return the problems found in its logs (empty when none).

    The tree is removed only when the logs are clean, so that the logs of a failed
    run stay for inspection.
    """
    server.stop()
    problems = server.new_fatal_log_lines()
    logs = server.read_error_log() + server.read_access_log()
    leaked = secret_ledger.find_in(logs)
    if leaked:
        problems.append(f"the logs under {server.root} contain: {', '.join(leaked)}")
    if not problems:
        shutil.rmtree(server.root)
    return problems


# --- Browser helpers -----------------------------------------------------------------


class LoopbackBrowser(harness.BrowserSession):
    """A browser session that sends requests to 127.0.0.1 only.

    It never follows redirects (tests follow each one themselves), and it raises
    AssertionError before sending a request to any other host, so a module that
    redirects off this machine fails the test and no traffic leaves it.
    """

    def request(self, method, url, **kwargs):
        # Session.get() and friends pass allow_redirects=True explicitly.
        kwargs["allow_redirects"] = False
        return super().request(method, url, **kwargs)

    def send(self, request, **kwargs):
        # requests.Session sends followed redirects through send(), not request().
        assert is_loopback_url(
            request.url
        ), f"the test would send {request.method} {request.url} off 127.0.0.1"
        return super().send(request, **kwargs)


def browser():
    """Return a LoopbackBrowser that sends the Accept header of a navigation."""
    session = LoopbackBrowser()
    session.headers["Accept"] = harness.BROWSER_ACCEPT
    return session


def is_loopback_url(url):
    return urllib.parse.urlsplit(url).hostname == "127.0.0.1"


def login(session, url, user, ledger):
    """Log in as user starting at url and return the LoginSteps, asserting the 302s.

    Unlike harness.follow_login, it follows a redirect only to 127.0.0.1, so a module
    that redirects the browser to another host fails the test without any traffic
    there.
    steps.final stays None when the callback redirects off this machine.
    """
    steps = harness.LoginSteps()
    steps.start = session.get(url, allow_redirects=False)
    ledger.add_cookies(steps.start)
    location = steps.start.headers.get("Location", "")
    assert steps.start.status_code == 302, (
        f"GET {url} without a session: expected 302 to the provider, got "
        f"{steps.start.status_code}: {steps.start.text[:500]}"
    )
    assert is_loopback_url(
        location
    ), f"GET {url} without a session redirects off 127.0.0.1, to {location!r}"

    steps.login_page, steps.login_post = harness.sign_in_at_provider(
        session, steps.authorize_url, user
    )
    ledger.add("authorization code", harness.query_of(steps.callback_url).get("code"))
    assert is_loopback_url(
        steps.callback_url
    ), f"the provider redirected to {steps.callback_url!r}, expected the callback"

    steps.callback = session.get(steps.callback_url, allow_redirects=False)
    ledger.add_cookies(steps.callback)
    target = steps.callback.headers.get("Location", "")
    assert steps.callback.status_code == 302, (
        f"callback of {user}'s login from {url}: expected 302, got "
        f"{steps.callback.status_code}: {steps.callback.text[:500]}"
    )
    if is_loopback_url(target):
        steps.final = session.get(target, allow_redirects=False)
        ledger.add_cookies(steps.final)
    return steps


def state_cookie_names(response):
    """Return the names of the state cookies that response sets (not deletes)."""
    return [
        header.split("=", 1)[0]
        for header in harness.set_cookie_headers(response)
        if header.startswith(harness.STATE_COOKIE_PREFIX) and not is_deletion(header)
    ]


def is_deletion(header):
    """Return whether a raw Set-Cookie header deletes its cookie."""
    value, attributes = harness.cookie_attributes(header)
    return value == "" and attributes.get("max-age") == "0"


def json_page(response, context):
    """Return the JSON body of env.cgi or headers.php, asserting a 200."""
    assert response.status_code == 200, (
        f"{context}: expected 200 from the page, got {response.status_code}: "
        f"{response.text[:500]}"
    )
    return response.json()


# --- Session cookies -----------------------------------------------------------------

SESSION_COOKIE_INFO = b"session cookie v1"
KDF_SALT = b"mod_auth_scalekit"
SEAL_VERSION = 1
NONCE_LENGTH = 12
# Sealed bytes per cookie before the module splits a session into chunk cookies.
CHUNK_SIZE = 3800


def _b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_key(session_secret):
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=KDF_SALT, info=SESSION_COOKIE_INFO
    )
    return hkdf.derive(session_secret.encode("utf-8"))


def seal(session_secret, aad, document):
    nonce = os.urandom(NONCE_LENGTH)
    plain = json.dumps(document, separators=(",", ":")).encode("utf-8")
    sealed = AESGCM(session_key(session_secret)).encrypt(
        nonce, plain, aad.encode("ascii")
    )
    return _b64url_encode(bytes([SEAL_VERSION]) + nonce + sealed)


def open_session(session_secret, value, aad=harness.SESSION_COOKIE):
    """Decrypt a session cookie value and return the session document."""
    data = _b64url_decode(value)
    assert data[0] == SEAL_VERSION, f"sealed value has version {data[0]}, expected 1"
    nonce = data[1 : 1 + NONCE_LENGTH]
    plain = AESGCM(session_key(session_secret)).decrypt(
        nonce, data[1 + NONCE_LENGTH :], aad.encode("ascii")
    )
    return json.loads(plain)


def session_document(claims, age=0, max_age=28800, idle=0, id_token=None):
    """Return a session document created age seconds ago, last used idle seconds ago."""
    now = int(time.time())
    document = {
        "v": 1,
        "sid": secrets.token_urlsafe(16),
        "iat": now - age,
        "seen": now - idle,
        "exp": now - age + max_age,
        "claims": claims,
    }
    if id_token is not None:
        document["idt"] = id_token
    return document


def session_cookies(session_secret, document):
    """Return {cookie name: value} that carry document, in chunks when it is large."""
    sealed = seal(session_secret, harness.SESSION_COOKIE, document)
    if len(sealed) <= CHUNK_SIZE:
        return {harness.SESSION_COOKIE: sealed}
    chunks = [sealed[i : i + CHUNK_SIZE] for i in range(0, len(sealed), CHUNK_SIZE)]
    cookies = {harness.SESSION_COOKIE: f"chunks:{len(chunks)}"}
    for number, chunk in enumerate(chunks, start=1):
        cookies[f"{harness.SESSION_COOKIE}_{number}"] = chunk
    return cookies


def cookie_header(cookies):
    return "; ".join(f"{name}={value}" for name, value in cookies.items())
