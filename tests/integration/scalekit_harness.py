"""Processes and HTTP helpers for the mod_auth_scalekit integration tests.

The tests run the dev identity provider (tools/devidp/scalekit_dev_idp.py) and a
private Apache httpd, both on 127.0.0.1 ports picked at start, and drive them with
requests. conftest.py turns these classes into pytest fixtures.
"""

import base64
import hashlib
import html.parser
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import requests

REPOSITORY = Path(__file__).resolve().parents[2]
DEV_IDP_SCRIPT = REPOSITORY / "tools" / "devidp" / "scalekit_dev_idp.py"
EXAMPLE_INTRANET = REPOSITORY / "conf" / "example" / "intranet"
DEFAULT_MODULE = REPOSITORY / "src" / ".libs" / "mod_auth_scalekit.so"

# Debian's interpreter has python3-cryptography, which the dev provider needs. The
# pyenv python3 on PATH does not.
PYTHON = "/usr/bin/python3"
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = Path("/usr/lib/apache2/modules")

CLIENT_ID = "skc_test"
CALLBACK_PATH = "/scalekit/callback"
SESSION_COOKIE = "scalekit_session"
STATE_COOKIE_PREFIX = "scalekit_state_"


def state_cookie_name(state):
    """Name of the state cookie of a login: the module keeps pending logins in 16
    slots, and the first character of the state is the slot's hexadecimal digit."""
    return STATE_COOKIE_PREFIX + state[0]

STARTUP_TIMEOUT_SECONDS = 20
STOP_TIMEOUT_SECONDS = 20
HTTP_TIMEOUT_SECONDS = 15

# A typical Accept header of a browser's top-level navigation.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# Error-log markers of a crashed child or a fatal condition.
FATAL_LOG_PATTERN = re.compile(
    r"\[(?:[a-z_]+:)?(?:crit|emerg|alert)\]|Segmentation fault|exit signal"
)

# A compact JWS: base64url JSON header ("{" encodes to "eyJ"), payload and signature.
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

# httpd modules besides the module under test. log_config and unixd are built into
# Debian's apache2, so the config loads them only where they are not.
APACHE_MODULE_FILES = [
    ("mpm_prefork_module", "mod_mpm_prefork.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    # Provides "Require valid-user".
    ("authz_user_module", "mod_authz_user.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("alias_module", "mod_alias.so"),
    ("cgi_module", "mod_cgi.so"),
    ("php_module", "libphp8.2.so"),
    ("log_config_module", "mod_log_config.so"),
    ("env_module", "mod_env.so"),
    ("setenvif_module", "mod_setenvif.so"),
    ("headers_module", "mod_headers.so"),
    # The default ScalekitCache.
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("unixd_module", "mod_unixd.so"),
]
BUILT_IN_ON_DEBIAN = {"log_config_module", "unixd_module"}


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def base64url_sha256(text):
    """Return the PKCE S256 challenge of a code verifier (RFC 7636, section 4.2)."""
    digest = hashlib.sha256(text.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def module_path():
    """Return the module under test: env MOD_AUTH_SCALEKIT_SO or the libtool build."""
    return Path(os.environ.get("MOD_AUTH_SCALEKIT_SO", DEFAULT_MODULE)).resolve()


# --- Secrets that must never reach a log ---------------------------------------------


class SecretLedger:
    """Secret values that the tests saw during the run, keyed by a description."""

    # Shorter values could match log text by chance. Every secret the tests collect
    # (codes, verifiers, cookies, tokens, the configured secrets) is longer.
    MIN_LENGTH = 16

    def __init__(self):
        self.values = {}

    def add(self, description, value):
        if value and len(value) >= self.MIN_LENGTH:
            self.values.setdefault(value, description)

    def add_cookies(self, response):
        """Record the value of every Scalekit cookie that response sets."""
        for header in set_cookie_headers(response):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if name == SESSION_COOKIE or name.startswith(SESSION_COOKIE + "_"):
                self.add(f"session cookie {name}", value)
            elif name.startswith(STATE_COOKIE_PREFIX):
                self.add(f"state cookie {name}", value)

    def find_in(self, text):
        """Return the descriptions of the recorded secrets that occur in text."""
        return sorted({desc for value, desc in self.values.items() if value in text})


# --- Dev identity provider ----------------------------------------------------------


class DevIdp:
    """A running scalekit_dev_idp.py process and its /_dev/ control API."""

    def __init__(self, workdir, client_secret, ledger):
        self.client_secret = client_secret
        self.ledger = ledger
        self.stderr_path = Path(workdir) / "devidp.stderr"
        self.process = None
        self.issuer = None

    def start(self):
        # Port 0 lets the provider bind a free port itself, so no other process can
        # take the port between picking and binding it.
        command = [
            PYTHON,
            str(DEV_IDP_SCRIPT),
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            self.client_secret,
        ]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        line = self._read_ready_line()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line or "")
        if match is None:
            self.stop()
            raise RuntimeError(
                f"dev identity provider did not print its listening line "
                f"(got {line!r}); stderr:\n{self.stderr_text()}"
            )
        self.issuer = match.group(1)

    def _read_ready_line(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                line = self.process.stdout.readline()
                if line:
                    return line.strip()
            if self.process.poll() is not None:
                return None
        return None

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def url(self, path):
        return self.issuer + path

    def _request_control(self, method, path, **kwargs):
        response = requests.request(
            method, self.url(path), timeout=HTTP_TIMEOUT_SECONDS, **kwargs
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"dev identity provider: {method} {path} returned "
                f"{response.status_code}: {response.text}"
            )
        return response.json()

    def recorded_requests(self):
        return self._request_control("GET", "/_dev/requests")

    def requests_to(self, path, method=None):
        return [
            entry
            for entry in self.recorded_requests()
            if entry["path"] == path and (method is None or entry["method"] == method)
        ]

    def misbehave(self, **changes):
        return self._request_control("POST", "/_dev/misbehave", json=changes)

    def reset(self):
        """Save the recorded secrets to the ledger, then clear the provider state."""
        self.harvest_secrets()
        self._request_control("POST", "/_dev/reset")

    def harvest_secrets(self):
        """Add the codes, verifiers and tokens of the recordings to the ledger."""
        for entry in self.recorded_requests():
            form = entry.get("form", {})
            query = entry.get("query", {})
            if entry["path"] == "/oauth/token":
                self.ledger.add("authorization code", form.get("code"))
                self.ledger.add("PKCE code verifier", form.get("code_verifier"))
            if entry["path"] == "/oauth/authorize/login":
                self.ledger.add("login transaction", form.get("txn"))
            if "code" in query:
                self.ledger.add("authorization code", query["code"])
            authorization = entry.get("headers", {}).get("Authorization", "")
            if authorization.lower().startswith("bearer "):
                self.ledger.add("access token", authorization[7:].strip())


# --- Apache httpd --------------------------------------------------------------------


class SiteConfig:
    """Settings of one generated httpd configuration.

    The configtest tests change its attributes before they call write_site().
    """

    def __init__(self, issuer, client_secret, port=None, session_secret=None):
        self.issuer = issuer
        self.client_secret = client_secret
        self.port = port or free_port()
        self.session_secret = session_secret or secrets.token_urlsafe(36)
        self.module = module_path()
        # MPM and process settings; tests that need more children replace them.
        self.mpm_settings = (
            "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\n"
            "MaxRequestWorkers 16"
        )
        # (module name, file in /usr/lib/apache2/modules) loaded before the module.
        self.extra_modules = []
        # Server-wide directives added after the Scalekit client settings.
        self.extra_server_config = ""
        # Text appended at the end of httpd.conf (more <Directory> blocks, ...).
        self.extra_config = ""


def make_tree(prefix):
    """Create a fresh directory that the www-data children can traverse."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def write_site(root, site):
    """Write httpd.conf, the docroot and the secret file under root, return the conf.

    Directories are mode 755 and content files 644 (755 for CGI programs), because the
    children run as www-data while the tests run as root. httpd.conf and the client
    secret file are 600, because only the root parent reads them.
    """
    root = Path(root)
    for name in ("conf", "logs", "run", "htdocs", "htdocs/intranet", "htdocs/team"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name).chmod(0o755)

    secret_file = root / "conf" / "client_secret"
    secret_file.touch(mode=0o600)
    secret_file.chmod(0o600)
    secret_file.write_text(site.client_secret + "\n")

    (root / "conf" / "mime.types").write_text("text/html html htm\ntext/plain txt\n")

    htdocs = root / "htdocs"
    install_file(htdocs / "index.html", PUBLIC_INDEX_HTML, 0o644)
    install_copy(
        EXAMPLE_INTRANET / "index.php", htdocs / "intranet" / "index.php", 0o644
    )
    install_copy(
        EXAMPLE_INTRANET / "claims.cgi", htdocs / "intranet" / "claims.cgi", 0o755
    )
    install_copy(EXAMPLE_INTRANET / "claims.cgi", htdocs / "team" / "claims.cgi", 0o755)
    install_file(htdocs / "team" / ".htaccess", TEAM_HTACCESS, 0o644)

    # Only the root parent reads the config, which contains the session secret.
    conf = root / "conf" / "httpd.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    conf.write_text(render_httpd_conf(root, site))
    return conf


def install_file(path, text, mode):
    path.write_text(text)
    path.chmod(mode)


def install_copy(source, target, mode):
    shutil.copyfile(source, target)
    target.chmod(mode)


PUBLIC_INDEX_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Public start page</title></head>
<body><h1>Public start page</h1><p>No login needed here.</p></body>
</html>
"""

TEAM_HTACCESS = "AuthType Scalekit\nRequire valid-user\n"


def render_load_modules(site):
    lines = []
    for name, filename in APACHE_MODULE_FILES:
        load = f'LoadModule {name} "{APACHE_MODULES / filename}"'
        if name in BUILT_IN_ON_DEBIAN:
            lines.append(f"<IfModule !{name}>\n    {load}\n</IfModule>")
        else:
            lines.append(load)
    for name, filename in site.extra_modules:
        lines.append(f'LoadModule {name} "{APACHE_MODULES / filename}"')
    lines.append(f'LoadModule auth_scalekit_module "{site.module}"')
    return "\n".join(lines)


def render_httpd_conf(root, site):
    return f"""# Generated by tests/integration/scalekit_harness.py for one test run.
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Listen 127.0.0.1:{site.port}
ServerName 127.0.0.1:{site.port}

{render_load_modules(site)}

User www-data
Group www-data
{site.mpm_settings}
Timeout 30

TypesConfig "{root}/conf/mime.types"
ErrorLog "{root}/logs/error.log"
# core:notice keeps the "child pid ... exit signal" line that reports a crashed child.
LogLevel warn core:notice auth_scalekit:debug
# %U is the path without the query string: the callback's query carries the
# authorization code, which must not be written to a log.
LogFormat "%h %l %u %t \\"%m %U %H\\" %>s %b" path_only
CustomLog "{root}/logs/access.log" path_only

ScalekitIssuer {site.issuer}
ScalekitClientID {CLIENT_ID}
ScalekitClientSecret "file:{root}/conf/client_secret"
ScalekitSessionSecret "{site.session_secret}"
ScalekitSSLVerify Off
{site.extra_server_config}

DocumentRoot "{root}/htdocs"

<Directory />
    Options None
    AllowOverride None
    Require all denied
</Directory>

<Directory "{root}/htdocs">
    Options None
    AllowOverride None
    Require all granted
    DirectoryIndex index.html
</Directory>

<Directory "{root}/htdocs/intranet">
    AuthType Scalekit
    Require valid-user
    Options +ExecCGI
    AddHandler cgi-script .cgi
    DirectoryIndex index.php
    <FilesMatch "\\.php$">
        SetHandler application/x-httpd-php
    </FilesMatch>
</Directory>

# Protected only by its .htaccess file.
<Directory "{root}/htdocs/team">
    AllowOverride AuthConfig
    Options +ExecCGI
    AddHandler cgi-script .cgi
</Directory>
{site.extra_config}
"""


def run_configtest(conf):
    """Run `apache2 -t` on conf and return the CompletedProcess (output in .stdout)."""
    return subprocess.run(
        [APACHE, "-t", "-f", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


class PortInUseError(RuntimeError):
    """Another process took the port between free_port() and httpd's bind."""


class Httpd:
    """An httpd started from a generated config, with access to its logs."""

    def __init__(self, root, site):
        self.root = Path(root)
        self.site = site
        self.conf = write_site(self.root, site)
        self.base = f"http://127.0.0.1:{site.port}"
        self.error_log = self.root / "logs" / "error.log"
        self.access_log = self.root / "logs" / "access.log"
        self.pid_file = self.root / "run" / "httpd.pid"
        self.checked_offset = 0
        self.pid = None

    def url(self, path):
        return self.base + path

    @property
    def callback_url(self):
        return self.url(CALLBACK_PATH)

    def start(self):
        check = run_configtest(self.conf)
        if check.returncode != 0:
            raise RuntimeError(f"apache2 -t rejected {self.conf}:\n{check.stdout}")

        started = subprocess.run(
            [APACHE, "-f", str(self.conf), "-k", "start"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )
        if started.returncode != 0:
            if "Address already in use" in started.stdout:
                raise PortInUseError(f"port {self.site.port}: {started.stdout}")
            raise RuntimeError(
                f"apache2 -k start failed ({started.returncode}):\n{started.stdout}\n"
                f"error log:\n{self.read_error_log()}"
            )
        try:
            self._wait_for_port()
        finally:
            self.pid = self._read_pid()

    def _wait_for_port(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.site.port), 0.5):
                    if self.pid_file.exists():
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"httpd did not listen on 127.0.0.1:{self.site.port} within "
            f"{STARTUP_TIMEOUT_SECONDS} s; error log:\n{self.read_error_log()}"
        )

    def _read_pid(self):
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self):
        """Stop httpd with -k stop and wait until the parent process is gone."""
        if self.pid is None:
            return
        subprocess.run(
            [APACHE, "-f", str(self.conf), "-k", "stop"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not process_exists(self.pid):
                self.pid = None
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"httpd parent {self.pid} still runs {STOP_TIMEOUT_SECONDS} s after -k stop"
        )

    def read_error_log(self):
        if not self.error_log.exists():
            return ""
        return self.error_log.read_text(errors="replace")

    def read_access_log(self):
        if not self.access_log.exists():
            return ""
        return self.access_log.read_text(errors="replace")

    def log_mark(self):
        """Return the current end of the error log, for error_log_since()."""
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def error_log_since(self, mark):
        with open(self.error_log, "rb") as log:
            log.seek(mark)
            return log.read().decode("utf-8", errors="replace")

    def wait_for_log(self, mark, pattern, timeout=3.0):
        """Return the error log since mark once it matches pattern (regex, any case).

        The module logs before it sends the response, so the line is usually there at
        once. The wait covers a line that a child writes later. On timeout the text
        read so far is returned.
        """
        deadline = time.monotonic() + timeout
        while True:
            text = self.error_log_since(mark)
            if re.search(pattern, text, re.IGNORECASE):
                return text
            if time.monotonic() >= deadline:
                return text
            time.sleep(0.05)

    def new_fatal_log_lines(self):
        """Return fatal error-log lines written since the previous call."""
        if not self.error_log.exists():
            return []
        with open(self.error_log, "rb") as log:
            log.seek(self.checked_offset)
            data = log.read()
        self.checked_offset += len(data)
        text = data.decode("utf-8", errors="replace")
        return [line for line in text.splitlines() if FATAL_LOG_PATTERN.search(line)]


def process_exists(pid):
    """Return whether pid is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the parenthesised command name, which may contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z"


# --- Browser steps -------------------------------------------------------------------


class BrowserSession(requests.Session):
    """A requests.Session with a default timeout, so a hung server fails the test."""

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", HTTP_TIMEOUT_SECONDS)
        return super().request(method, url, **kwargs)


def browser():
    """Return a session that sends the Accept header of a browser navigation."""
    session = BrowserSession()
    session.headers["Accept"] = BROWSER_ACCEPT
    return session


def set_cookie_headers(response):
    """Return the raw Set-Cookie header values of response, in order."""
    return response.raw.headers.getlist("Set-Cookie")


def find_set_cookie(response, name):
    """Return the raw Set-Cookie header for cookie name, or None."""
    for header in set_cookie_headers(response):
        if header.split("=", 1)[0] == name:
            return header
    return None


def cookie_attributes(header):
    """Split a Set-Cookie value into (value, {lower-case attribute: value or True})."""
    parts = [part.strip() for part in header.split(";")]
    value = parts[0].split("=", 1)[1]
    attributes = {}
    for part in parts[1:]:
        key, has_value, attribute_value = part.partition("=")
        attributes[key.lower()] = attribute_value if has_value else True
    return value, attributes


class LoginFormParser(html.parser.HTMLParser):
    """Collect each <form>'s action and hidden inputs from the dev provider's page."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.current = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.current = {"action": attributes.get("action", ""), "fields": {}}
            self.forms.append(self.current)
        elif tag == "input" and self.current is not None:
            if attributes.get("type") == "hidden" and "name" in attributes:
                self.current["fields"][attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None


def login_form(page, user):
    """Return (action, fields) of the login page's form for user."""
    parser = LoginFormParser()
    parser.feed(page)
    for form in parser.forms:
        if form["fields"].get("user") == user:
            return form["action"], form["fields"]
    offered = [form["fields"].get("user") for form in parser.forms]
    raise AssertionError(
        f"login page has no form for {user!r}; users offered: {offered}"
    )


def query_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


class LoginSteps:
    """The responses of one login, from the protected page to the page after login."""

    def __init__(self):
        self.start = None  # the module's 302 to the authorization endpoint
        self.login_page = None  # the dev provider's page with one form per user
        self.login_post = None  # the provider's 302 to the callback
        self.callback = None  # the module's 302 back to the original URL
        self.final = None  # the original URL, now with a session

    @property
    def authorize_url(self):
        return self.start.headers["Location"]

    @property
    def callback_url(self):
        return self.login_post.headers["Location"]

    @property
    def state(self):
        return query_of(self.authorize_url)["state"]


def sign_in_at_provider(session, authorize_url, user):
    """Open the login page and submit user's form.

    Returns the login page and the provider's 302 to the callback.
    """
    page = session.get(
        authorize_url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
    )
    assert page.status_code == 200, (
        f"authorization endpoint: expected the login page (200), got "
        f"{page.status_code}, Location {page.headers.get('Location')}: "
        f"{page.text[:500]}"
    )

    action, fields = login_form(page.text, user)
    posted = session.post(
        urllib.parse.urljoin(page.url, action),
        data={"txn": fields["txn"], "user": fields["user"]},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert posted.status_code == 302, (
        f"login form post: expected 302 to the callback, got "
        f"{posted.status_code}: {posted.text[:500]}"
    )
    return page, posted


def follow_login(session, url, user, ledger):
    """Log in as user through the dev provider, starting at url. Returns LoginSteps.

    Each step asserts the status it expects, so a failure names the step that broke.
    """
    steps = LoginSteps()
    steps.start = session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
    ledger.add_cookies(steps.start)
    assert steps.start.status_code == 302, (
        f"GET {url} without a session: expected 302 to the provider, "
        f"got {steps.start.status_code}: {steps.start.text[:500]}"
    )

    steps.login_page, steps.login_post = sign_in_at_provider(
        session, steps.authorize_url, user
    )
    ledger.add("authorization code", query_of(steps.callback_url).get("code"))

    steps.callback = session.get(
        steps.callback_url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
    )
    ledger.add_cookies(steps.callback)
    if steps.callback.status_code != 302:
        return steps

    steps.final = session.get(
        urllib.parse.urljoin(steps.callback_url, steps.callback.headers["Location"]),
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    ledger.add_cookies(steps.final)
    return steps


class PageTableParser(html.parser.HTMLParser):
    """Read the <th>name</th><td>value</td> rows of the sample pages into a dict."""

    def __init__(self):
        super().__init__()
        self.rows = {}
        self.cell = None
        self.name = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self.cell = tag
            self.text = []

    def handle_data(self, data):
        if self.cell is not None:
            self.text.append(data)

    def handle_endtag(self, tag):
        if tag != self.cell:
            return
        if tag == "th":
            self.name = "".join(self.text)
        else:
            self.rows[self.name] = "".join(self.text)
        self.cell = None


def page_variables(page):
    """Return the variables that index.php or claims.cgi listed, unescaped."""
    parser = PageTableParser()
    parser.feed(page)
    parser.close()
    return parser.rows
