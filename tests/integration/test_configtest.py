"""Invalid mod_auth_scalekit settings: httpd must reject each one and name it.

Most cases write the harness's httpd.conf with one line added and run `apache2 -t`,
which must exit non-zero with a message that names the directive and the value. The
.htaccess cases need a running httpd, because httpd reads .htaccess files per request
and responds with 500 for a directory whose .htaccess has an error.

A case for a value that the module accepts although it is invalid belongs here too,
marked pytest.mark.xfail(strict=True, reason=...). The fix then makes it an XPASS, which
fails the run until the mark is removed.
"""

import os
import shutil

import pytest
import requests

import scalekit_harness as harness

# The harness's config sets ScalekitSSLVerify Off, which is allowed only for a loopback
# issuer. Port 9 (discard) is never contacted, because apache2 -t makes no requests.
LOOPBACK_ISSUER = "http://127.0.0.1:9"
CLIENT_SECRET = "configtest-client-secret"
# Neither variable is set by the tests, and the test that uses one checks that.
UNSET_VARIABLE = "SCALEKIT_CONFIGTEST_UNSET"
EMPTY_VARIABLE = "SCALEKIT_CONFIGTEST_EMPTY"
SECRET_FILE_MAX_BYTES = 65536
TOKEN_MAX_LENGTH = 256
BIND_ATTEMPTS = 3


def configtest(root, server_config="", extra_config="", issuer=LOOPBACK_ISSUER):
    """Write the harness config with extra lines under root and run apache2 -t on it.

    server_config follows the Scalekit client settings in the main server, so a
    directive given there replaces the harness's value. extra_config goes at the end.
    """
    site = harness.SiteConfig(issuer, CLIENT_SECRET)
    site.extra_server_config = server_config
    site.extra_config = extra_config
    conf = harness.write_site(root, site)
    return harness.run_configtest(conf)


def as_logged(text):
    """Return text as httpd's error log writes it: a backslash doubled, and control
    and non-ASCII bytes as \\xHH (ap_escape_errorlog_item in httpd 2.4)."""
    escaped = []
    for byte in text.encode("utf-8"):
        if byte == 0x5C:
            escaped.append("\\\\")
        elif byte < 0x20 or byte >= 0x7F:
            escaped.append(f"\\x{byte:02x}")
        else:
            escaped.append(chr(byte))
    return "".join(escaped)


def assert_rejected(result, *fragments):
    """Assert that apache2 -t failed and printed each fragment, escaped as logged."""
    assert (
        result.returncode != 0
    ), f"apache2 -t accepted the configuration:\n{result.stdout}"
    for fragment in fragments:
        assert (
            as_logged(fragment) in result.stdout
        ), f"the apache2 -t output lacks {as_logged(fragment)!r}:\n{result.stdout}"


def assert_accepted(result):
    assert (
        result.returncode == 0
    ), f"apache2 -t rejected a valid configuration:\n{result.stdout}"


@pytest.fixture
def site_root():
    root = harness.make_tree("mod-auth-scalekit-configtest-")
    yield root
    shutil.rmtree(root)


@pytest.fixture
def secret_files(tmp_path):
    """Files for the file: cases, by name. httpd -t runs as root and reads them."""
    files = {
        "missing": tmp_path / "missing" / "secret",
        "directory": tmp_path,
        "empty": tmp_path / "empty",
        "newline_only": tmp_path / "newline_only",
        "short": tmp_path / "short",
        "too_large": tmp_path / "too_large",
        "nul_byte": tmp_path / "nul_byte",
        "two_lines": tmp_path / "two_lines",
        "not_a_certificate": tmp_path / "not_a_certificate.pem",
    }
    files["empty"].write_bytes(b"")
    files["newline_only"].write_bytes(b"\n")
    files["short"].write_bytes(b"s" * 31 + b"\n")
    files["too_large"].write_bytes(b"s" * (SECRET_FILE_MAX_BYTES + 1))
    # 40 bytes, a NUL, then 7 more: a C string of the content ends at the NUL.
    files["nul_byte"].write_bytes(b"a" * 40 + b"\0" + b"b" * 7)
    files["two_lines"].write_bytes(b"a" * 20 + b"\n" + b"b" * 20 + b"\n")
    files["not_a_certificate"].write_text("this file holds no PEM certificate\n")
    return files


def test_base_config_accepted(site_root):
    assert_accepted(configtest(site_root))


# --- ScalekitIssuer -----------------------------------------------------------------

NOT_ABSOLUTE = "is not an absolute URL without query or fragment"
NOT_HTTPS = "must use https"


@pytest.mark.parametrize(
    "issuer, message",
    [
        ("idp.example.test", NOT_ABSOLUTE),
        ("/oauth", NOT_ABSOLUTE),
        ("https://idp.example.test/?tenant=1", NOT_ABSOLUTE),
        ("https://idp.example.test/#top", NOT_ABSOLUTE),
        ("https://user@idp.example.test", NOT_ABSOLUTE),
        ("https://", NOT_ABSOLUTE),
        ("https://:443/", NOT_ABSOLUTE),
        ("https://idp.example.test:0", NOT_ABSOLUTE),
        ("https://idp.example.test:99999", NOT_ABSOLUTE),
        ("https:idp.example.test", NOT_ABSOLUTE),
        ("http://idp.example.test", NOT_HTTPS),
        ("ftp://idp.example.test", NOT_HTTPS),
    ],
)
def test_issuer_invalid(site_root, issuer, message):
    result = configtest(site_root, f"ScalekitSSLVerify On\nScalekitIssuer {issuer}")

    assert_rejected(result, f'ScalekitIssuer: "{issuer}"', message)


def test_issuer_https_accepted(site_root):
    result = configtest(
        site_root, "ScalekitSSLVerify On\nScalekitIssuer https://idp.example.test/t1"
    )

    assert_accepted(result)


# --- ScalekitSSLVerify Off ----------------------------------------------------------


def test_ssl_verify_off_remote_issuer(site_root):
    # The harness's config already has ScalekitSSLVerify Off.
    result = configtest(site_root, issuer="https://idp.example.test")

    assert_rejected(
        result,
        "ScalekitSSLVerify Off is accepted only for a provider on the loopback address",
        "not for https://idp.example.test",
    )


def test_ssl_verify_off_remote_vhost(site_root):
    # Off is inherited from the main server by a virtual host with a remote issuer.
    port = harness.free_port()
    vhost = (
        f"Listen 127.0.0.1:{port}\n"
        f"<VirtualHost 127.0.0.1:{port}>\n"
        "    ServerName remote.example.test\n"
        "    ScalekitIssuer https://idp.example.test\n"
        "</VirtualHost>\n"
    )
    result = configtest(site_root, extra_config=vhost)

    assert_rejected(result, "ScalekitSSLVerify Off", "not for https://idp.example.test")


@pytest.mark.parametrize("value", ["maybe", "1"])
def test_ssl_verify_not_flag(site_root, value):
    result = configtest(site_root, f"ScalekitSSLVerify {value}")

    assert_rejected(result, "ScalekitSSLVerify must be On or Off")


# --- ScalekitClientID ---------------------------------------------------------------


def test_client_id_with_space(site_root):
    result = configtest(site_root, 'ScalekitClientID "skc_a b"')

    assert_rejected(result, 'ScalekitClientID: "skc_a b" contains whitespace')


def test_client_id_empty(site_root):
    # httpd's own check: an empty quoted string is no argument for TAKE1.
    result = configtest(site_root, 'ScalekitClientID ""')

    assert_rejected(result, "ScalekitClientID takes one argument")


# --- Secrets: ScalekitClientSecret and ScalekitSessionSecret -------------------------

SECRET_DIRECTIVES = ["ScalekitClientSecret", "ScalekitSessionSecret"]


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_file_missing(site_root, secret_files, directive):
    path = secret_files["missing"]
    result = configtest(site_root, f"{directive} file:{path}")

    assert_rejected(
        result, f'{directive}: cannot read "{path}"', "No such file or directory"
    )


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_file_is_directory(site_root, secret_files, directive):
    path = secret_files["directory"]
    result = configtest(site_root, f"{directive} file:{path}")

    assert_rejected(result, f'{directive}: cannot read "{path}"', "Is a directory")


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
@pytest.mark.parametrize("name", ["empty", "newline_only"])
def test_secret_file_empty(site_root, secret_files, directive, name):
    path = secret_files[name]
    result = configtest(site_root, f"{directive} file:{path}")

    assert_rejected(result, f"{directive}: ", f'"{path}" is empty')


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_file_too_large(site_root, secret_files, directive):
    path = secret_files["too_large"]
    result = configtest(site_root, f"{directive} file:{path}")

    assert_rejected(
        result, f'{directive}: "{path}" is larger than {SECRET_FILE_MAX_BYTES} bytes'
    )


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_file_no_path(site_root, directive):
    result = configtest(site_root, f"{directive} file:")

    assert_rejected(result, f'{directive}: invalid file path ""')


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_env_unset(site_root, directive):
    assert UNSET_VARIABLE not in os.environ, f"{UNSET_VARIABLE} is set in this shell"
    result = configtest(site_root, f"{directive} env:{UNSET_VARIABLE}")

    assert_rejected(
        result, f"{directive}: environment variable {UNSET_VARIABLE} is not set"
    )


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_env_empty(site_root, monkeypatch, directive):
    monkeypatch.setenv(EMPTY_VARIABLE, "")
    result = configtest(site_root, f"{directive} env:{EMPTY_VARIABLE}")

    assert_rejected(
        result, f"{directive}: environment variable {EMPTY_VARIABLE} is not set or empty"
    )


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_env_no_name(site_root, directive):
    result = configtest(site_root, f"{directive} env:")

    assert_rejected(result, f"{directive}: env: needs a variable name")


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_env_accepted(site_root, monkeypatch, directive):
    monkeypatch.setenv("SCALEKIT_CONFIGTEST_SECRET", "e" * 40)
    result = configtest(site_root, f"{directive} env:SCALEKIT_CONFIGTEST_SECRET")

    assert_accepted(result)


@pytest.mark.parametrize(
    "value",
    ["s" * 31, "file:{short}", "env:SCALEKIT_CONFIGTEST_SHORT"],
    ids=["literal", "file", "env"],
)
def test_session_secret_short(site_root, secret_files, monkeypatch, value):
    monkeypatch.setenv("SCALEKIT_CONFIGTEST_SHORT", "s" * 31)
    value = value.format(short=secret_files["short"])
    result = configtest(site_root, f"ScalekitSessionSecret {value}")

    assert_rejected(
        result, "ScalekitSessionSecret: the secret has 31 bytes, at least 32"
    )


@pytest.mark.parametrize("directive", SECRET_DIRECTIVES)
def test_secret_file_nul_byte(site_root, secret_files, directive):
    # The callers use the secret as a C string, which would end at the NUL.
    path = secret_files["nul_byte"]
    result = configtest(site_root, f"{directive} file:{path}")

    assert_rejected(result, f"{directive}: ", f'"{path}" contains a NUL byte')


def test_session_secret_file_short_first_line(site_root, secret_files):
    # file: takes the first line, which has 20 bytes here, though the file has 42.
    path = secret_files["two_lines"]
    result = configtest(site_root, f"ScalekitSessionSecret file:{path}")

    assert_rejected(result, "ScalekitSessionSecret: the secret has 20 bytes")


# --- ScalekitRedirectURI ------------------------------------------------------------

NOT_REDIRECT = "is not a path such as /scalekit/callback or an absolute http(s) URL"


@pytest.mark.parametrize(
    "value",
    [
        "scalekit/callback",
        "//evil.example.test/callback",
        "/scalekit/callback?next=/",
        "/scalekit/callback#top",
        "/scalekit/%63allback",
        "/scalekit\\callback",
        "ftp://intranet.example.test/callback",
        "https://intranet.example.test",
        "https:///scalekit/callback",
        "https://:8443/scalekit/callback",
        "https://intranet.example.test:99999/scalekit/callback",
        "https://user@intranet.example.test/scalekit/callback",
        "https://intranet.example.test//evil.example.test/callback",
    ],
)
def test_redirect_uri_invalid(site_root, value):
    result = configtest(site_root, f"ScalekitRedirectURI {value}")

    assert_rejected(result, f'ScalekitRedirectURI: "{value}" {NOT_REDIRECT}')


# --- ScalekitLogoutURI and ScalekitLoginURI -----------------------------------------


@pytest.mark.parametrize("directive", ["ScalekitLogoutURI", "ScalekitLoginURI"])
@pytest.mark.parametrize(
    "value",
    ["scalekit/logout", "//evil.example.test/x", "/x?y=1", "/x#y", "/x%2f", "/x\\y"],
)
def test_endpoint_path_invalid(site_root, directive, value):
    result = configtest(site_root, f"{directive} {value}")

    assert_rejected(result, f'{directive}: "{value}" is not a path such as')


@pytest.mark.parametrize("directive", ["ScalekitLogoutURI", "ScalekitLoginURI"])
def test_endpoint_path_with_space(site_root, directive):
    result = configtest(site_root, f'{directive} "/a b"')

    assert_rejected(result, f'{directive}: "/a b" is not a path such as')


# The module handles the callback, logout and login paths itself and compares a request
# with them in that order, so an endpoint on the path of an earlier one is unreachable.
@pytest.mark.parametrize(
    "line, paths",
    [
        (
            "ScalekitLogoutURI /scalekit/callback",
            ("/scalekit/callback", "/scalekit/login", "/scalekit/callback"),
        ),
        (
            "ScalekitLoginURI /scalekit/logout",
            ("/scalekit/callback", "/scalekit/logout", "/scalekit/logout"),
        ),
        (
            "ScalekitRedirectURI https://intranet.example.test/scalekit/login",
            ("/scalekit/login", "/scalekit/login", "/scalekit/logout"),
        ),
    ],
    ids=["logout_on_callback", "login_on_logout", "callback_on_login"],
)
def test_endpoint_paths_collide(site_root, line, paths):
    redirect_path, login_path, logout_path = paths
    result = configtest(site_root, line)

    assert_rejected(
        result,
        f"ScalekitRedirectURI ({redirect_path}), ScalekitLoginURI ({login_path}) and "
        f"ScalekitLogoutURI ({logout_path}) of server",
        "must be three different paths",
    )


# --- ScalekitLogoutRedirectAllowed --------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example.test",
        "evil.example.test/path",
        "user@evil.example.test",
        "evil.example.test,other.test",
        "evil.example.test:99999",
        "evil.example.test:0",
        "evil.example.test:",
        ":8443",
        ":::",
        "[::1",
        "[]:443",
        "[fe80::1%eth0]",
    ],
)
def test_logout_redirect_allowed_invalid(site_root, value):
    result = configtest(site_root, f"ScalekitLogoutRedirectAllowed {value}")

    assert_rejected(
        result,
        f'ScalekitLogoutRedirectAllowed: "{value}" is not a host name',
    )


# --- ScalekitScopes -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["email profile", "openid,email", "openidx email"])
def test_scopes_without_openid(site_root, value):
    result = configtest(site_root, f"ScalekitScopes {value}")

    assert_rejected(result, f'ScalekitScopes: "{value}" must include the scope openid')


def test_scopes_with_quote(site_root):
    result = configtest(site_root, 'ScalekitScopes openid "email"')

    assert_rejected(
        result,
        'ScalekitScopes: "openid "email"" contains a character not allowed in a scope',
    )


# --- Seconds ------------------------------------------------------------------------

# (directive, minimum, maximum) as set in src/config.c.
SECONDS_DIRECTIVES = [
    ("ScalekitClockSkew", 0, 3600),
    ("ScalekitHTTPTimeout", 1, 300),
    ("ScalekitSessionMaxAge", 60, 31536000),
    ("ScalekitDiscoveryTTL", 60, 604800),
    ("ScalekitJWKSTTL", 60, 604800),
    ("ScalekitSessionInactivityTimeout", 0, 31536000),
]


def invalid_seconds():
    for directive, minimum, maximum in SECONDS_DIRECTIVES:
        values = [
            str(minimum - 1),
            str(maximum + 1),
            "-60",
            "99999999999999999999",
            "4294967296",
            "60s",
            "+60",
            "0x3c",
            "1e3",
            "sixty",
        ]
        for value in dict.fromkeys(values):
            yield pytest.param(directive, minimum, maximum, value, id=f"{directive}={value}")


@pytest.mark.parametrize("directive, minimum, maximum, value", invalid_seconds())
def test_seconds_invalid(site_root, directive, minimum, maximum, value):
    result = configtest(site_root, f"{directive} {value}")

    assert_rejected(
        result,
        f'{directive}: "{value}" is not a whole number of seconds from {minimum} to '
        f"{maximum}",
    )


@pytest.mark.parametrize("directive, minimum, maximum", SECONDS_DIRECTIVES)
def test_seconds_bounds_accepted(site_root, directive, minimum, maximum):
    result = configtest(site_root, f"{directive} {minimum}\n{directive} {maximum}")

    assert_accepted(result)


# --- ScalekitCookieName -------------------------------------------------------------


@pytest.mark.parametrize("value", ["a=b", "scalekit;x", "scälekit", "c" * 65])
def test_cookie_name_invalid(site_root, value):
    result = configtest(site_root, f"ScalekitCookieName {value}")

    assert_rejected(
        result, f'ScalekitCookieName: "{value}" is not a cookie name of 1 to 64'
    )


def test_cookie_name_state_prefix(site_root):
    # The state cookies of logins in progress are named scalekit_state_0 to _f.
    result = configtest(site_root, "ScalekitCookieName scalekit_state_3")

    assert_rejected(
        result, 'ScalekitCookieName: "scalekit_state_3" starts with scalekit_state_'
    )


def test_cookie_name_64_accepted(site_root):
    assert_accepted(configtest(site_root, "ScalekitCookieName " + "c" * 64))


# --- ScalekitCAFile -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing", "directory"])
def test_ca_file_unreadable(site_root, secret_files, name):
    path = secret_files[name]
    result = configtest(site_root, f"ScalekitCAFile {path}")

    assert_rejected(result, f'ScalekitCAFile: "{path}" is not a readable file')


def test_ca_file_without_certificate(site_root, secret_files):
    path = secret_files["not_a_certificate"]
    result = configtest(site_root, f"ScalekitCAFile {path}")

    assert_rejected(result, f'ScalekitCAFile: "{path}" contains no PEM certificate')


# --- Keyword directives -------------------------------------------------------------


@pytest.mark.parametrize("value", ["memory", "cookies", "shmcb"])
def test_session_store_unknown(site_root, value):
    result = configtest(site_root, f"ScalekitSessionStore {value}")

    assert_rejected(
        result, f'ScalekitSessionStore: "{value}" is not one of cookie, cache'
    )


@pytest.mark.parametrize(
    "value", ["private_key_jwt", "Client_Secret_Post", "client_secret_jwt", "none"]
)
def test_token_endpoint_auth_unknown(site_root, value):
    result = configtest(site_root, f"ScalekitTokenEndpointAuth {value}")

    assert_rejected(
        result,
        f'ScalekitTokenEndpointAuth: "{value}" is not one of client_secret_post, '
        "client_secret_basic",
    )


@pytest.mark.parametrize("value", ["maybe", "yes"])
def test_userinfo_not_flag(site_root, value):
    result = configtest(site_root, f"ScalekitUserInfo {value}")

    assert_rejected(result, "ScalekitUserInfo must be On or Off")


# --- ScalekitCache and ScalekitSessionCache -----------------------------------------


@pytest.mark.parametrize("directive", ["ScalekitCache", "ScalekitSessionCache"])
@pytest.mark.parametrize("provider", ["nosuch", "memcache", "redis"])
def test_cache_provider_not_loaded(site_root, directive, provider):
    # The harness loads only mod_socache_shmcb.
    result = configtest(site_root, f"{directive} {provider}:127.0.0.1:1")

    assert_rejected(
        result,
        f'{directive}: socache provider "{provider}" is not loaded',
        f"a2enmod socache_{provider}",
    )


@pytest.mark.parametrize("directive", ["ScalekitCache", "ScalekitSessionCache"])
def test_cache_shmcb_bad_size(site_root, directive):
    result = configtest(site_root, f"{directive} shmcb:/tmp/scalekit(abc)")

    assert_rejected(result, f'{directive}: socache "shmcb:/tmp/scalekit(abc)"')


@pytest.mark.parametrize("directive", ["ScalekitCache", "ScalekitSessionCache"])
def test_cache_in_virtual_host(site_root, directive):
    port = harness.free_port()
    vhost = (
        f"Listen 127.0.0.1:{port}\n"
        f"<VirtualHost 127.0.0.1:{port}>\n"
        f"    {directive} shmcb\n"
        "</VirtualHost>\n"
    )
    result = configtest(site_root, extra_config=vhost)

    assert_rejected(result, f"{directive} cannot occur within <VirtualHost> section")


# --- Directory directives -----------------------------------------------------------

TOKEN_DIRECTIVES = [
    "ScalekitRemoteUserClaim",
    "ScalekitConnectionID",
    "ScalekitOrganizationID",
    "ScalekitDomain",
]


def location(*lines):
    body = "".join(f"    {line}\n" for line in lines)
    return f"<Location /configtest>\n{body}</Location>\n"


@pytest.mark.parametrize(
    "directive, value, message",
    [
        ("ScalekitPassClaimsAs", "json", "is not one of env, headers, both, none"),
        ("ScalekitPassClaimsAs", "header", "is not one of env, headers, both, none"),
        ("ScalekitUnauthAction", "redirect", "is not one of auth, 401, 403, pass"),
        ("ScalekitUnauthAction", "302", "is not one of auth, 401, 403, pass"),
    ],
)
def test_directory_keyword_unknown(site_root, directive, value, message):
    result = configtest(site_root, extra_config=location(f"{directive} {value}"))

    assert_rejected(result, f'{directive}: "{value}" {message}')


def test_allow_login_hint_not_flag(site_root):
    result = configtest(site_root, extra_config=location("ScalekitAllowLoginHint maybe"))

    assert_rejected(result, "ScalekitAllowLoginHint must be On or Off")


@pytest.mark.parametrize("directive", TOKEN_DIRECTIVES)
def test_directory_token_with_space(site_root, directive):
    result = configtest(site_root, extra_config=location(f'{directive} "a b"'))

    assert_rejected(result, f'{directive}: "a b" contains whitespace')


@pytest.mark.parametrize("directive", TOKEN_DIRECTIVES)
def test_directory_token_too_long(site_root, directive):
    value = "x" * (TOKEN_MAX_LENGTH + 1)
    result = configtest(site_root, extra_config=location(f"{directive} {value}"))

    assert_rejected(
        result, f"{directive}: the value is longer than {TOKEN_MAX_LENGTH} characters"
    )


@pytest.mark.parametrize(
    "value",
    ["alice", "@acme.test", "alice@", '"alice @acme.test"', "alice<x>@acme.test"]
    + ["a" * 250 + "@acme.test"],
    ids=["no_at", "no_local_part", "no_domain", "space", "angle_brackets", "too_long"],
)
def test_login_hint_not_email(site_root, value):
    result = configtest(site_root, extra_config=location(f"ScalekitLoginHint {value}"))

    assert_rejected(
        result, f'ScalekitLoginHint: "{value.strip(chr(34))}" is not an email address'
    )


def test_login_hint_email_accepted(site_root):
    result = configtest(
        site_root, extra_config=location("ScalekitLoginHint alice@acme.test")
    )

    assert_accepted(result)


@pytest.mark.parametrize(
    "requirement, message",
    [
        ("scalekit-claim email", 'Require scalekit-claim: "email" is not NAME:VALUE'),
        ("scalekit-claim :x", 'Require scalekit-claim: ":x" is not NAME:VALUE'),
        (
            'scalekit-claim "email~("',
            'Require scalekit-claim: "(" is not a valid regular expression',
        ),
        ("scalekit-claim", "Require scalekit-claim needs at least one"),
        ("scalekit-org", "Require scalekit-org needs at least one organization id"),
    ],
)
def test_require_provider_invalid(site_root, requirement, message):
    result = configtest(site_root, extra_config=location(f"Require {requirement}"))

    assert_rejected(result, message)


# --- Contexts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["ScalekitIssuer https://idp.example.test", "ScalekitClientSecret x"]
)
def test_server_directive_in_location(site_root, line):
    directive = line.split()[0]
    result = configtest(site_root, extra_config=location(line))

    assert_rejected(result, f"{directive} not allowed in <Location> context")


@pytest.mark.parametrize("directive", ["ScalekitUnauthAction 401", "ScalekitDomain x"])
def test_directory_directive_at_server_level(site_root, directive):
    result = configtest(site_root, directive)

    assert_rejected(result, f"{directive.split()[0]} not allowed here")


# --- Incomplete virtual hosts -------------------------------------------------------

CLIENT_SETTINGS = {
    "ScalekitIssuer": LOOPBACK_ISSUER,
    "ScalekitClientID": harness.CLIENT_ID,
    "ScalekitClientSecret": CLIENT_SECRET,
    "ScalekitSessionSecret": "v" * 40,
}


def write_vhost_config(root, settings):
    """Write an httpd.conf whose main server has no Scalekit settings and whose one
    virtual host has settings. Returns (path, line of <VirtualHost>)."""
    site = harness.SiteConfig(LOOPBACK_ISSUER, CLIENT_SECRET)
    for name in ("logs", "run"):
        (root / name).mkdir(exist_ok=True)
    lines = [
        f'ServerRoot "{root}"',
        f'DefaultRuntimeDir "{root}/run"',
        f'PidFile "{root}/run/httpd.pid"',
        f'ErrorLog "{root}/logs/error.log"',
        f"Listen 127.0.0.1:{site.port}",
        "ServerName main.example.test",
        harness.render_load_modules(site),
        f"<VirtualHost 127.0.0.1:{site.port}>",
    ]
    vhost_line = sum(line.count("\n") + 1 for line in lines)
    lines.append("    ServerName intranet.example.test")
    lines += [f'    {name} "{value}"' for name, value in settings.items()]
    lines.append("    ScalekitSSLVerify Off")
    lines.append("</VirtualHost>")
    conf = root / "httpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf, vhost_line


@pytest.mark.parametrize("missing", list(CLIENT_SETTINGS))
def test_vhost_missing_setting(site_root, missing):
    settings = {k: v for k, v in CLIENT_SETTINGS.items() if k != missing}
    conf, vhost_line = write_vhost_config(site_root, settings)
    result = harness.run_configtest(conf)

    assert_rejected(
        result,
        f"Scalekit is configured for server intranet.example.test ({conf}:{vhost_line})",
        f"but {missing} is missing",
    )


def test_vhost_only_client_id(site_root):
    # The first missing setting in the order Issuer, ClientID, ClientSecret,
    # SessionSecret is reported.
    conf, _ = write_vhost_config(site_root, {"ScalekitClientID": harness.CLIENT_ID})
    result = harness.run_configtest(conf)

    assert_rejected(result, "intranet.example.test", "but ScalekitIssuer is missing")


def test_vhost_complete_accepted(site_root):
    conf, _ = write_vhost_config(site_root, CLIENT_SETTINGS)

    assert_accepted(harness.run_configtest(conf))


# --- .htaccess (read per request by a running httpd) --------------------------------

SECRET_IN_HTACCESS = "sks_htaccess_" + "q" * 24


@pytest.fixture(scope="module")
def override_server():
    """An httpd whose htdocs/overrides tree allows AuthConfig in .htaccess files.

    It has a server of its own, because the .htaccess errors are logged at alert
    level, which the shared server's fatal-log check would count.
    """
    root = harness.make_tree("mod-auth-scalekit-htaccess-")
    server = None
    try:
        for attempt in range(BIND_ATTEMPTS):
            site = harness.SiteConfig(LOOPBACK_ISSUER, CLIENT_SECRET)
            site.extra_config = (
                f'<Directory "{root}/htdocs/overrides">\n'
                "    AllowOverride AuthConfig\n"
                "</Directory>\n"
            )
            server = harness.Httpd(root, site)
            try:
                server.start()
                break
            except harness.PortInUseError:
                if attempt == BIND_ATTEMPTS - 1:
                    raise
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root)


def request_with_htaccess(server, name, htaccess, expect_log=True):
    """Create htdocs/overrides/name with htaccess, GET it, return (response, log).

    With expect_log, waits for the error-log line that names the .htaccess file.
    """
    directory = server.root / "htdocs" / "overrides" / name
    directory.mkdir(parents=True)
    directory.parent.chmod(0o755)
    directory.chmod(0o755)
    harness.install_file(directory / "index.html", "<p>overrides</p>\n", 0o644)
    harness.install_file(directory / ".htaccess", htaccess, 0o644)

    mark = server.log_mark()
    response = requests.get(
        server.url(f"/overrides/{name}/"),
        headers={"Accept": harness.BROWSER_ACCEPT},
        allow_redirects=False,
        timeout=harness.HTTP_TIMEOUT_SECONDS,
    )
    if expect_log:
        return response, server.wait_for_log(mark, r"\.htaccess")
    return response, server.error_log_since(mark)


@pytest.mark.parametrize(
    "line",
    [
        f"ScalekitClientSecret {SECRET_IN_HTACCESS}",
        f"ScalekitSessionSecret {SECRET_IN_HTACCESS}",
        "ScalekitIssuer https://idp.example.test",
        "ScalekitClientID skc_other",
        "ScalekitCache shmcb",
    ],
    ids=lambda line: line.split()[0],
)
def test_htaccess_server_directive(override_server, line):
    directive = line.split()[0]
    response, log = request_with_htaccess(
        override_server, directive.lower(), f"AuthType Scalekit\n{line}\n"
    )

    assert (
        response.status_code == 500
    ), f"{directive} in .htaccess: expected 500, got {response.status_code}"
    assert (
        f".htaccess: {directive} not allowed here" in log
    ), f"the error log does not name {directive}:\n{log}"
    assert SECRET_IN_HTACCESS not in log, "the error log contains the secret value"


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "ScalekitPassClaimsAs json",
            'ScalekitPassClaimsAs: "json" is not one of env, headers, both, none',
        ),
        (
            "ScalekitUnauthAction redirect",
            'ScalekitUnauthAction: "redirect" is not one of auth, 401, 403, pass',
        ),
        ("ScalekitAllowLoginHint maybe", "ScalekitAllowLoginHint must be On or Off"),
    ],
    ids=["ScalekitPassClaimsAs", "ScalekitUnauthAction", "ScalekitAllowLoginHint"],
)
def test_htaccess_invalid_value(override_server, line, message):
    name = line.split()[0].lower() + "-invalid"
    response, log = request_with_htaccess(override_server, name, f"{line}\n")

    assert (
        response.status_code == 500
    ), f"{line!r} in .htaccess: expected 500, got {response.status_code}"
    assert f".htaccess: {message}" in log, f"the error log lacks {message!r}:\n{log}"


def test_htaccess_directory_directives_work(override_server):
    # The control case: directory directives are allowed in .htaccess, and
    # ScalekitUnauthAction 401 responds with 401 without contacting the provider.
    response, log = request_with_htaccess(
        override_server,
        "allowed",
        "AuthType Scalekit\nRequire valid-user\nScalekitUnauthAction 401\n"
        "ScalekitPassClaimsAs both\nScalekitRemoteUserClaim email\n",
        expect_log=False,
    )

    assert (
        response.status_code == 401
    ), f"allowed .htaccess: expected 401, got {response.status_code}"
    assert ".htaccess" not in log, f"the error log names the .htaccess file:\n{log}"
