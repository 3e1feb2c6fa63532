"""Servers of the benchmark: Apache httpd instances, php-fpm and the dev provider.

Every server listens on 127.0.0.1 only. Each process that this file starts is listed
in WORKDIR/pids ("<pid> <command name>" per line), so that run.sh can stop what is
left when the Python driver dies before its own cleanup.
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
sys.path.insert(0, str(REPOSITORY / "tests" / "integration"))

import scalekit_harness as harness  # noqa: E402

APACHE = harness.APACHE
APACHE_MODULES = harness.APACHE_MODULES
OPENIDC_MODULE = APACHE_MODULES / "mod_auth_openidc.so"
PHP_FPM = "/usr/sbin/php-fpm8.2"
CLIENT_ID = harness.CLIENT_ID

# Paths served by every site. /private/ is protected on the scalekit and openidc sites.
STATIC_PATH = "/file.html"
PHP_PATH = "/page.php"
OPENIDC_CALLBACK_PATH = "/openidc/callback"

STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30

# A small static page: about 1 KiB of HTML.
STATIC_HTML = (
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
    "<title>Benchmark page</title></head>\n<body>\n<h1>Benchmark page</h1>\n"
    + "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 16 + "</p>\n"
    + "</body>\n</html>\n"
)

# The PHP page does the same work behind both modules: it counts the claim variables
# that the module exported (SCALEKIT_CLAIM_* or OIDC_CLAIM_*) and prints REMOTE_USER.
PHP_PAGE = """<?php
$claims = 0;
foreach ($_SERVER as $name => $value) {
    if (str_starts_with($name, 'SCALEKIT_CLAIM_') || str_starts_with($name, 'OIDC_CLAIM_')) {
        $claims++;
    }
}
header('Content-Type: text/plain; charset=utf-8');
echo 'user=', $_SERVER['REMOTE_USER'] ?? '-', "\\n", 'claims=', $claims, "\\n";
"""

# MPM settings. The process and thread counts stay fixed during a run, so that no
# child is started or stopped while wrk measures, and MaxConnectionsPerChild 0 keeps
# every child alive for the memory measurement.
MPM_SETTINGS = {
    # One child only, for the memory measurement: every request reaches the child
    # that is measured.
    "event-one-child": (
        "StartServers 1\nServerLimit 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n"
        "MinSpareThreads 1\nMaxSpareThreads 16\nMaxConnectionsPerChild 0"
    ),
    "event": (
        "StartServers 2\nServerLimit 2\nThreadsPerChild 16\nMaxRequestWorkers 32\n"
        "MinSpareThreads 16\nMaxSpareThreads 48\nMaxConnectionsPerChild 0"
    ),
    "prefork": (
        "StartServers 20\nMinSpareServers 20\nMaxSpareServers 40\nServerLimit 40\n"
        "MaxRequestWorkers 40\nMaxConnectionsPerChild 0"
    ),
}

BASE_MODULES = [
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    ("authz_user_module", "mod_authz_user.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
]


class ProcessLedger:
    """The file that lists every process the benchmark started, for run.sh's trap."""

    def __init__(self, path):
        self.path = Path(path)

    def add(self, pid, name):
        with open(self.path, "a") as ledger:
            ledger.write(f"{pid} {name}\n")


def free_port():
    return harness.free_port()


def wait_for_port(port, timeout, process=None, server_name="server"):
    """Wait until 127.0.0.1:port accepts connections.

    Raises RuntimeError on timeout, or when process (if given) exits first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{server_name} exited with status {process.returncode} "
                               f"before listening on 127.0.0.1:{port}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{server_name} did not listen on 127.0.0.1:{port} within "
                       f"{timeout} s")


def stop_process(process, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_SECONDS):
    """Send sig to a child started with Popen and wait for it, then SIGKILL it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class DevProvider(harness.DevIdp):
    """The dev identity provider of the integration harness, listed in the ledger."""

    def __init__(self, workdir, client_secret, ledger):
        super().__init__(workdir, client_secret, harness.SecretLedger())
        self.process_ledger = ledger

    def start(self):
        super().start()
        self.process_ledger.add(self.process.pid, "python3")


class PhpFpm:
    """A php-fpm pool on 127.0.0.1 for the event MPM, which cannot load mod_php."""

    def __init__(self, root, ledger, children=8):
        self.root = Path(root)
        self.ledger = ledger
        self.port = free_port()
        self.children = children
        self.process = None

    def start(self):
        for name in ("conf", "logs", "run"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        conf = self.root / "conf" / "php-fpm.conf"
        conf.write_text(
            "[global]\n"
            f"pid = {self.root}/run/php-fpm.pid\n"
            f"error_log = {self.root}/logs/php-fpm.log\n"
            "daemonize = no\n"
            "[bench]\n"
            "user = www-data\n"
            "group = www-data\n"
            f"listen = 127.0.0.1:{self.port}\n"
            "listen.allowed_clients = 127.0.0.1\n"
            "pm = static\n"
            f"pm.max_children = {self.children}\n"
        )
        with open(self.root / "logs" / "php-fpm.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                [PHP_FPM, "--nodaemonize", "--fpm-config", str(conf)],
                stdout=subprocess.DEVNULL, stderr=stderr,
            )
        self.ledger.add(self.process.pid, "php-fpm8.2")
        wait_for_port(self.port, STARTUP_TIMEOUT_SECONDS, self.process, "php-fpm")

    def stop(self):
        # SIGQUIT is php-fpm's graceful stop.
        stop_process(self.process, signal.SIGQUIT)


class Site:
    """Settings of one Apache instance.

    kind is "plain" (no authentication module), "scalekit" or "openidc"; mpm is
    "event" or "prefork", and mpm_settings a key of MPM_SETTINGS (default: mpm). With php_fpm_port the event MPM sends .php files to php-fpm,
    and prefork loads mod_php unless php is False.
    """

    def __init__(self, kind, mpm, root, issuer=None, client_secret=None, module=None,
                 php_fpm_port=None, php=True, mpm_settings=None):
        self.kind = kind
        self.mpm = mpm
        self.mpm_settings = MPM_SETTINGS[mpm_settings or mpm]
        self.root = Path(root)
        self.port = free_port()
        self.issuer = issuer
        self.client_secret = client_secret
        self.module = module
        self.php_fpm_port = php_fpm_port
        self.php = php
        self.session_secret = secrets.token_urlsafe(36)
        self.crypto_passphrase = secrets.token_urlsafe(36)
        # Server-wide directives appended at the end of httpd.conf.
        self.extra_config = ""

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base_url + path


def write_site(site):
    """Write the docroot and httpd.conf of site. Returns the path of httpd.conf."""
    root = site.root
    for name in ("conf", "logs", "run", "htdocs", "htdocs/private"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name).chmod(0o755)
    for directory in (root / "htdocs", root / "htdocs" / "private"):
        (directory / STATIC_PATH.lstrip("/")).write_text(STATIC_HTML)
        (directory / PHP_PATH.lstrip("/")).write_text(PHP_PAGE)
        for name in (STATIC_PATH, PHP_PATH):
            (directory / name.lstrip("/")).chmod(0o644)
    (root / "conf" / "mime.types").write_text("text/html html htm\ntext/plain txt\n")

    secret_file = root / "conf" / "client_secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text((site.client_secret or "") + "\n")

    conf = root / "conf" / "httpd.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    conf.write_text(render_httpd_conf(site))
    return conf


def render_modules(site):
    lines = [f'LoadModule mpm_{site.mpm}_module "{APACHE_MODULES}/mod_mpm_{site.mpm}.so"']
    modules = list(BASE_MODULES)
    if site.php_fpm_port is not None:
        modules += [("proxy_module", "mod_proxy.so"),
                    ("proxy_fcgi_module", "mod_proxy_fcgi.so")]
    elif site.mpm == "prefork" and site.php:
        modules.append(("php_module", "libphp8.2.so"))
    for name, filename in modules:
        lines.append(f'LoadModule {name} "{APACHE_MODULES / filename}"')
    if site.kind == "scalekit":
        lines.append(f'LoadModule auth_scalekit_module "{site.module}"')
    elif site.kind == "openidc":
        lines.append(f'LoadModule auth_openidc_module "{OPENIDC_MODULE}"')
    return "\n".join(lines)


def render_php_handler(site):
    if site.php_fpm_port is not None:
        handler = f"proxy:fcgi://127.0.0.1:{site.php_fpm_port}"
    elif site.mpm == "prefork" and site.php:
        handler = "application/x-httpd-php"
    else:
        return ""
    return f'<FilesMatch "\\.php$">\n    SetHandler "{handler}"\n</FilesMatch>'


def render_auth(site):
    root = site.root
    if site.kind == "scalekit":
        # ScalekitUserInfo On: mod_auth_openidc always calls the userinfo endpoint
        # that discovery lists, so both modules make the same provider requests.
        return f"""ScalekitIssuer {site.issuer}
ScalekitClientID {CLIENT_ID}
ScalekitClientSecret "file:{root}/conf/client_secret"
ScalekitSessionSecret "{site.session_secret}"
ScalekitSSLVerify Off
ScalekitUserInfo On
ScalekitSessionInactivityTimeout 3600
ScalekitSessionMaxAge 28800

<Directory "{root}/htdocs/private">
    AuthType Scalekit
    Require valid-user
</Directory>
"""
    if site.kind == "openidc":
        # The settings that differ from mod_auth_openidc's defaults make it do what
        # mod_auth_scalekit does by default: PKCE S256, client_secret_post, these
        # scopes, REMOTE_USER = sub, claims as environment variables only, and the
        # same session lifetimes.
        return f"""OIDCProviderMetadataURL {site.issuer}/.well-known/openid-configuration
OIDCClientID {CLIENT_ID}
OIDCClientSecret "{site.client_secret}"
OIDCRedirectURI {site.url(OPENIDC_CALLBACK_PATH)}
OIDCCryptoPassphrase "{site.crypto_passphrase}"
OIDCSessionType client-cookie
OIDCSSLValidateServer Off
OIDCScope "openid email profile"
OIDCPKCEMethod S256
OIDCProviderTokenEndpointAuth client_secret_post
OIDCRemoteUserClaim sub
OIDCPassClaimsAs environment
OIDCSessionInactivityTimeout 3600
OIDCSessionMaxDuration 28800

<Location "{OPENIDC_CALLBACK_PATH}">
    AuthType openid-connect
    Require valid-user
</Location>

<Directory "{root}/htdocs/private">
    AuthType openid-connect
    Require valid-user
</Directory>
"""
    return ""


def render_httpd_conf(site):
    root = site.root
    return f"""# Generated by bench/servers.py for one benchmark run ({site.kind}, {site.mpm}).
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Listen 127.0.0.1:{site.port}
ServerName 127.0.0.1:{site.port}

{render_modules(site)}

User www-data
Group www-data
{site.mpm_settings}
Timeout 30
KeepAlive On

TypesConfig "{root}/conf/mime.types"
ErrorLog "{root}/logs/error.log"
LogLevel warn
# No access log: writing it would cost every case the same and add disk noise.

DocumentRoot "{root}/htdocs"

# FollowSymLinks as in Debian's apache2.conf: without it, httpd calls lstat() on
# every component of the path of every request.
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>

<Directory "{root}/htdocs">
    Options FollowSymLinks
    AllowOverride None
    Require all granted
</Directory>

{render_php_handler(site)}

{render_auth(site)}
{site.extra_config}
"""


class Httpd:
    """An Apache instance started with `apache2 -k start` from a generated config."""

    def __init__(self, site, ledger):
        self.site = site
        self.ledger = ledger
        self.conf = write_site(site)
        self.pid_file = site.root / "run" / "httpd.pid"
        self.error_log = site.root / "logs" / "error.log"
        self.pid = None

    def start(self):
        check = subprocess.run([APACHE, "-t", "-f", str(self.conf)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=60)
        if check.returncode != 0:
            raise RuntimeError(f"apache2 -t rejected {self.conf}:\n{check.stdout}")
        started = subprocess.run([APACHE, "-f", str(self.conf), "-k", "start"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=60)
        if started.returncode != 0:
            raise RuntimeError(f"apache2 -k start failed for {self.conf}:\n"
                               f"{started.stdout}\n{self.read_error_log()}")
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self.pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = int(self.pid_file.read_text().strip())
        self.ledger.add(self.pid, "apache2")
        wait_for_port(self.site.port, STARTUP_TIMEOUT_SECONDS, server_name="apache2")
        self.wait_for_children()

    def wait_for_children(self):
        """Wait until the MPM has started its StartServers children."""
        match = re.search(r"StartServers (\d+)", self.site.mpm_settings)
        expected = int(match.group(1)) if match else 1
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while len(self.children()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self):
        if self.pid is None:
            return
        subprocess.run([APACHE, "-f", str(self.conf), "-k", "stop"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while harness.process_exists(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if harness.process_exists(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def children(self):
        return child_pids(self.pid) if self.pid else []

    def read_error_log(self):
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""


def child_pids(parent):
    """Return the pids whose parent is parent, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        match = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
        if match and int(match.group(1)) == parent:
            pids.append(int(entry.name))
    return sorted(pids)


def cpu_seconds(parents):
    """Return the user and system CPU seconds of parents and their children.

    Reads utime and stime from /proc/PID/stat, in clock ticks (10 ms at the usual
    USER_HZ of 100). Processes that exit in between are not counted.
    """
    ticks = 0
    for parent in parents:
        for pid in [parent] + child_pids(parent):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_status(pid):
    """Return {"VmHWM": kB, "VmRSS": kB} of pid from /proc/PID/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {}
    for field in ("VmHWM", "VmRSS"):
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        values[field] = int(match.group(1)) if match else None
    return values
