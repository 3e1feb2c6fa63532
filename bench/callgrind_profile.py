"""Instruction counts per request and per login with callgrind on httpd -X.

Callgrind zeroes its counters when httpd enters ap_process_connection and writes a
dump when it leaves it, so each client connection gets its own dump. The measured
requests share one keep-alive connection (MaxKeepAliveRequests 0), so their dump
contains those requests and nothing else: no start-up, login or warm-up.
"""

import glob
import http.client
import re
import signal
import subprocess
import time
from pathlib import Path

import loadgen
import servers

VALGRIND = "/usr/bin/valgrind"
CALLGRIND_ANNOTATE = "/usr/bin/callgrind_annotate"
VALGRIND_STARTUP_SECONDS = 180
DUMP_WAIT_SECONDS = 120

# Keeps the measured requests on one connection, however slow httpd runs under
# valgrind.
PROFILE_CONFIG = "MaxKeepAliveRequests 0\nKeepAliveTimeout 120\n"

# Functions of interest for the per-request cost of mod_auth_scalekit, with a label.
# Library functions are counted inclusively over every caller. In an authenticated
# request for a static file only the module calls the EVP_* and cJSON_* functions,
# but apr_table_setn has other callers, which its label notes.
SCALEKIT_FOCUS = [
    ("sk_strip_claim_headers", "post_read_request hook: strip claim headers"),
    ("sk_quick_handler", "quick handler: callback, login and logout paths"),
    ("sk_check_authn", "check_authn hook, total"),
    ("sk_session_load", "  read and check the session"),
    ("sk_cookie_get", "    find the cookie"),
    ("sk_unseal", "    AES-256-GCM open, with base64url decode"),
    ("sk_b64url_decode", "      base64url decode"),
    ("EVP_CIPHER_CTX_new", "      EVP_CIPHER_CTX_new"),
    ("EVP_DecryptInit_ex", "      EVP_DecryptInit_ex (cipher fetch, key schedule)"),
    ("EVP_CIPHER_fetch", "        EVP_CIPHER_fetch (implicit, for EVP_aes_256_gcm)"),
    ("EVP_DecryptUpdate", "      EVP_DecryptUpdate"),
    ("EVP_DecryptFinal_ex", "      EVP_DecryptFinal_ex (tag check)"),
    ("EVP_CIPHER_CTX_free", "      EVP_CIPHER_CTX_free"),
    ("sk_json_parse_object", "    JSON parse and duplicate-name check"),
    ("cJSON_ParseWithLengthOpts", "      cJSON parse"),
    ("sk_cache_get", "    logout check in the socache (shmcb)"),
    ("apr_global_mutex_lock", "      global mutex lock"),
    ("sk_session_touch", "  activity time update"),
    ("sk_login_from_dir", "  login settings of the directory"),
    ("accept_session", "  export REMOTE_USER and claims"),
    ("sk_claim_value_text", "    claim value text"),
    ("cJSON_PrintUnformatted", "      cJSON_PrintUnformatted (numbers, booleans, objects)"),
    ("sanitize_text", "      UTF-8 and control character check"),
    ("sk_claim_var_name", "    claim variable name"),
    ("apr_table_setn", "    apr_table_setn (every caller)"),
    ("sk_fixups", "fixups hook"),
    ("cleanup_cjson", "pool cleanup: cJSON_Delete of the session"),
    ("ap_scan_http_field_content", "httpd: header parsing (grows with the cookie)"),
]


class ProfiledHttpd:
    """One httpd -X under callgrind that dumps the counts of each connection."""

    def __init__(self, site, ledger):
        self.site = site
        self.ledger = ledger
        site.extra_config += PROFILE_CONFIG
        self.conf = servers.write_site(site)
        self.out_dir = site.root / "callgrind"
        self.out_dir.mkdir(exist_ok=True)
        # httpd -X still switches to User www-data, which must write the dumps.
        self.out_dir.chmod(0o777)
        self.process = None
        self.command = None

    def start(self):
        command = [
            VALGRIND, "--tool=callgrind",
            "--zero-before=ap_process_connection",
            "--dump-after=ap_process_connection",
            f"--callgrind-out-file={self.out_dir}/callgrind.out.%p",
            servers.APACHE, "-X", "-f", str(self.conf),
        ]
        self.command = " ".join(command)
        with open(self.site.root / "logs" / "valgrind.log", "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                            stderr=stderr)
        self.ledger.add(self.process.pid, "valgrind")
        servers.wait_for_port(self.site.port, VALGRIND_STARTUP_SECONDS, self.process,
                              "httpd -X under callgrind")

    def dumps(self):
        """Return the per-connection dump files, oldest first."""
        files = glob.glob(str(self.out_dir / f"callgrind.out.{self.process.pid}.*"))
        return sorted(files, key=lambda name: int(name.rsplit(".", 1)[1]))

    def wait_for_dumps(self, count):
        deadline = time.monotonic() + DUMP_WAIT_SECONDS
        while len(self.dumps()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        if len(self.dumps()) < count:
            raise RuntimeError(f"callgrind wrote {len(self.dumps())} dumps into "
                               f"{self.out_dir}, expected {count}; see "
                               f"{self.site.root}/logs/valgrind.log")

    def stop(self):
        servers.stop_process(self.process, signal.SIGTERM, timeout=120)


def send_requests(url, cookie, count):
    """Send count GET requests over one keep-alive connection; return the statuses."""
    statuses = {}
    headers = {"Cookie": cookie} if cookie else {}
    port = int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]
    connection = http.client.HTTPConnection("127.0.0.1", port,
                                            timeout=loadgen.HTTP_TIMEOUT_SECONDS)
    try:
        for _ in range(count):
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.will_close:
                raise RuntimeError(f"httpd closed the measured connection after "
                                   f"{sum(statuses.values())} requests")
    finally:
        connection.close()
    return statuses


def parse_annotate(text):
    """Return (total Ir, [(Ir, function, object)]) from callgrind_annotate output."""
    total = None
    rows = []
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?PROGRAM TOTALS", line)
        if match:
            total = int(match.group(1).replace(",", ""))
            continue
        match = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(?:\*\s+)?"
                         r"(\S+?):(\S+)(?:\s+\[(.+)\])?\s*$", line)
        if match:
            rows.append((int(match.group(1).replace(",", "")), match.group(3),
                         match.group(4) or ""))
    return total, rows


def dump_total(out_file):
    """Return the total event count that a callgrind dump file states."""
    with open(out_file, errors="replace") as dump:
        for line in dump:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    return 0


def annotate(out_file):
    completed = subprocess.run(
        [CALLGRIND_ANNOTATE, "--inclusive=yes", "--threshold=100", out_file],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True,
        timeout=300,
    )
    return completed.stdout


def profile_site(site, ledger, path, requests, cookie=None):
    """Profile requests GETs of path on site.

    A protected site gets a login first and its session cookie; otherwise cookie,
    when given, is sent as the Cookie header.

    Returns a dict with the instruction counts per request, the module's functions
    and the top functions, each as inclusive Ir per request.
    """
    httpd = ProfiledHttpd(site, ledger)
    httpd.start()
    try:
        if site.kind != "plain":
            jar, _ = loadgen.log_in(site.url(path))
            cookie = jar.header(path)
        # Warm-up on its own connection: lazy initialisation in the first requests
        # is not per-request cost.
        warm = send_requests(site.url(path), cookie, 20)
        before = len(httpd.dumps())
        started = time.monotonic()
        statuses = send_requests(site.url(path), cookie, requests)
        seconds = time.monotonic() - started
        httpd.wait_for_dumps(before + 1)
        # Every connection has its own dump, and the dumps of earlier connections
        # may still be written after `before` was counted. The measured connection
        # is the one with by far the most instructions.
        time.sleep(2)
        measured = max(httpd.dumps(), key=dump_total)
    finally:
        httpd.stop()

    text = annotate(measured)
    total, rows = parse_annotate(text)
    per_request = {}
    for ir, function, obj in rows:
        per_request.setdefault(function, (ir / requests, obj))

    module_object = {"scalekit": "mod_auth_scalekit.so",
                     "openidc": "mod_auth_openidc.so"}.get(site.kind)
    module_rows = [
        {"function": function, "ir": round(ir / requests), "object": Path(obj).name}
        for ir, function, obj in rows if module_object and obj.endswith(module_object)
    ][:20]
    top_rows = [
        {"function": function, "ir": round(ir / requests), "object": Path(obj).name}
        for ir, function, obj in rows
    ][:40]
    focus = []
    if site.kind == "scalekit":
        for function, label in SCALEKIT_FOCUS:
            if function in per_request:
                focus.append({"function": function, "label": label,
                              "ir": round(per_request[function][0])})
    annotate_file = site.root / "callgrind" / "annotate.txt"
    annotate_file.write_text(text)
    return {
        "command": httpd.command,
        "requests": requests,
        "cookie_bytes": len(cookie) if cookie else 0,
        "warm_up_statuses": warm,
        "statuses": statuses,
        "seconds_under_valgrind": round(seconds, 1),
        "total_ir_per_request": round(total / requests) if total else None,
        "module_functions": module_rows,
        "top_functions": top_rows,
        "focus": focus,
        "annotate_head": "\n".join(text.splitlines()[:80]),
    }


# Requests to httpd in one login, each on its own connection and so in its own dump:
# the redirect to the provider, the callback and the protected page.
HTTPD_REQUESTS_PER_LOGIN = 3


def profile_logins(site, ledger, path, logins):
    """Count the instructions httpd spends on logins through site's module.

    A first login fetches discovery and JWKS into the cache and is not counted.
    The next `logins` logins are measured. Each login is three connections to httpd (redirect,
    callback with the token and userinfo requests, protected page), each with its
    own dump. The provider's work runs in another process and is not counted.
    Returns the Ir per login and the module functions of the largest dump, which
    is a callback.
    """
    httpd = ProfiledHttpd(site, ledger)
    httpd.start()
    try:
        loadgen.log_in(site.url(path))
        time.sleep(2)
        before = set(httpd.dumps())
        for _ in range(logins):
            loadgen.log_in(site.url(path))
        expected = len(before) + logins * HTTPD_REQUESTS_PER_LOGIN
        httpd.wait_for_dumps(expected)
        time.sleep(2)
        measured = [name for name in httpd.dumps() if name not in before]
    finally:
        httpd.stop()

    totals = [dump_total(name) for name in measured]
    callback = max(measured, key=dump_total)
    total, rows = parse_annotate(annotate(callback))
    module_object = {"scalekit": "mod_auth_scalekit.so",
                     "openidc": "mod_auth_openidc.so"}[site.kind]
    module_rows = [
        {"function": function, "ir": ir, "object": Path(obj).name}
        for ir, function, obj in rows if obj.endswith(module_object)
    ][:12]
    return {
        "logins": logins,
        "connections": len(measured),
        "ir_per_login": round(sum(totals) / logins),
        "largest_connection_ir": total,
        "largest_connection_module_functions": module_rows,
    }
