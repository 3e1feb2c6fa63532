"""Load generators: wrk runs and a Python browser that logs in through the dev provider.

The browser sends every request to 127.0.0.1 only and raises on any other host, so a
misconfigured module or provider cannot make the benchmark send traffic elsewhere.
"""

import base64
import email.utils
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.parse

from servers import CLIENT_ID, harness

USER_AGENT = "mod-auth-scalekit-bench/1.0"
HTTP_TIMEOUT_SECONDS = 30
LOGIN_USER = "alice"

# The provider accepts any redirect URI on 127.0.0.1. The provider-only login never
# opens it: the client reads the code from the Location header.
PROVIDER_ONLY_REDIRECT_URI = "http://127.0.0.1:9/provider-only/callback"


class LoginError(RuntimeError):
    """A login step returned an unexpected status, or a URL not on 127.0.0.1."""


def default_cookie_path(request_path):
    """Return the path a cookie without a Path attribute gets (RFC 6265, 5.1.4)."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[:request_path.rindex("/")]


def cookie_path_matches(request_path, cookie_path):
    """Return whether a cookie with cookie_path goes with request_path (RFC 6265, 5.1.4)."""
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


class CookieJar:
    """The cookies of one browser, stored and sent by name and Path (RFC 6265).

    Domain is ignored, because every server runs on 127.0.0.1. As in browsers, the
    port is not part of a cookie's scope.
    """

    def __init__(self):
        self.cookies = {}  # (name, path) -> value

    def update(self, set_cookie_headers, request_path):
        for header in set_cookie_headers:
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            path = default_cookie_path(request_path)
            expired = value == ""
            for attribute in attributes.split(";"):
                key, _, attribute_value = attribute.strip().partition("=")
                key = key.lower()
                if key == "path" and attribute_value.startswith("/"):
                    path = attribute_value
                elif key == "max-age" and attribute_value.lstrip("-").isdigit():
                    expired = expired or int(attribute_value) <= 0
                elif key == "expires":
                    try:
                        expires = email.utils.parsedate_to_datetime(attribute_value)
                        expired = expired or expires.timestamp() <= time.time()
                    except (TypeError, ValueError):
                        pass
            if expired:
                self.cookies.pop((name, path), None)
            else:
                self.cookies[(name, path)] = value

    def header(self, request_path):
        """Return the Cookie header value for a request to request_path.

        Cookies with longer paths come first, as RFC 6265, 5.4 recommends.
        """
        matching = [(path, name, value) for (name, path), value in self.cookies.items()
                    if cookie_path_matches(request_path, path)]
        matching.sort(key=lambda item: -len(item[0]))
        return "; ".join(f"{name}={value}" for _, name, value in matching)


class Response:
    def __init__(self, status, headers, body, seconds):
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds

    def location(self):
        return self.headers.get("Location", "")


def http_request(method, url, jar=None, headers=None, body=None, connection=None):
    """Send one request to 127.0.0.1 and return a Response.

    Without connection, a new connection carries the request and is closed after it.
    The jar, when given, supplies the Cookie header and takes the Set-Cookie headers.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.scheme != "http":
        raise LoginError(f"request to {url} rejected: the benchmark sends requests "
                         f"only to http://127.0.0.1")
    path = parts.path + ("?" + parts.query if parts.query else "")
    request_headers = {"User-Agent": USER_AGENT, "Accept": harness.BROWSER_ACCEPT}
    if connection is None:
        request_headers["Connection"] = "close"
    request_headers.update(headers or {})
    if jar is not None and jar.header(parts.path):
        request_headers["Cookie"] = jar.header(parts.path)

    own = connection is None
    if own:
        connection = http.client.HTTPConnection("127.0.0.1", parts.port,
                                                timeout=HTTP_TIMEOUT_SECONDS)
    started = time.perf_counter()
    try:
        connection.request(method, path, body=body, headers=request_headers)
        reply = connection.getresponse()
        data = reply.read()
    finally:
        if own:
            connection.close()
    seconds = time.perf_counter() - started
    if jar is not None:
        jar.update(reply.msg.get_all("Set-Cookie") or [], parts.path)
    return Response(reply.status, reply.msg, data, seconds)


def expect(response, status, step):
    if response.status != status:
        raise LoginError(f"{step}: expected status {status}, got {response.status}: "
                         f"{response.body[:300]!r}")


class LoginTimes:
    """Seconds spent per login step, summed over the logins of one thread."""

    STEPS = ("start", "authorize", "login_post", "callback", "first_page")

    def __init__(self):
        self.seconds = dict.fromkeys(self.STEPS, 0.0)

    def add(self, other):
        for step in self.STEPS:
            self.seconds[step] += other.seconds[step]


def log_in(protected_url, user=LOGIN_USER):
    """Log in as user through the module in front of protected_url.

    Returns (jar, LoginTimes of this login). The steps are the module's redirect to
    the provider, the provider's login page, the form post, the module's callback
    (which makes the token and userinfo requests), and the protected page with the
    new session, which must return 200.
    """
    jar = CookieJar()
    times = LoginTimes()

    start = http_request("GET", protected_url, jar)
    expect(start, 302, f"GET {protected_url} without a session")
    times.seconds["start"] = start.seconds

    page = http_request("GET", start.location(), jar)
    expect(page, 200, "provider login page")
    times.seconds["authorize"] = page.seconds
    action, fields = harness.login_form(page.body.decode("utf-8"), user)
    form = urllib.parse.urlencode({"txn": fields["txn"], "user": fields["user"]})
    posted = http_request(
        "POST", urllib.parse.urljoin(start.location(), action), jar,
        headers={"Content-Type": "application/x-www-form-urlencoded"}, body=form,
    )
    expect(posted, 302, "login form post")
    times.seconds["login_post"] = posted.seconds

    callback = http_request("GET", posted.location(), jar)
    expect(callback, 302, "callback")
    times.seconds["callback"] = callback.seconds

    final_url = urllib.parse.urljoin(posted.location(), callback.location())
    final = http_request("GET", final_url, jar)
    expect(final, 200, f"GET {final_url} with the new session")
    times.seconds["first_page"] = final.seconds
    return jar, times


class ProviderTimes:
    """Seconds spent per provider endpoint, summed over the logins of one thread."""

    STEPS = ("authorize", "login_post", "token", "userinfo")

    def __init__(self):
        self.seconds = dict.fromkeys(self.STEPS, 0.0)

    def add(self, other):
        for step in self.STEPS:
            self.seconds[step] += other.seconds[step]


def base64url_random(byte_count):
    return base64.urlsafe_b64encode(secrets.token_bytes(byte_count)).rstrip(b"=").decode()


def provider_only_login(issuer, client_secret, user=LOGIN_USER):
    """Make the provider requests of one login without any module in between.

    These are the requests that a module's login causes at the provider: the login
    page, the form post, the token request and the userinfo request. Returns
    ProviderTimes of this login.
    """
    times = ProviderTimes()
    verifier = base64url_random(32)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": PROVIDER_ONLY_REDIRECT_URI,
        "scope": "openid email profile",
        "state": base64url_random(16),
        "nonce": base64url_random(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    page = http_request("GET", f"{issuer}/oauth/authorize?{query}")
    expect(page, 200, "provider login page")
    times.seconds["authorize"] = page.seconds

    action, fields = harness.login_form(page.body.decode("utf-8"), user)
    posted = http_request(
        "POST", urllib.parse.urljoin(issuer + "/", action.lstrip("/")),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urllib.parse.urlencode({"txn": fields["txn"], "user": fields["user"]}),
    )
    expect(posted, 302, "login form post")
    times.seconds["login_post"] = posted.seconds
    code = harness.query_of(posted.location())["code"]

    token = http_request(
        "POST", f"{issuer}/oauth/token",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "application/json"},
        body=urllib.parse.urlencode({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PROVIDER_ONLY_REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": client_secret,
            "code_verifier": verifier,
        }),
    )
    expect(token, 200, "token request")
    times.seconds["token"] = token.seconds
    access_token = json.loads(token.body)["access_token"]

    userinfo = http_request("GET", f"{issuer}/userinfo",
                            headers={"Authorization": f"Bearer {access_token}",
                                     "Accept": "application/json"})
    expect(userinfo, 200, "userinfo request")
    times.seconds["userinfo"] = userinfo.seconds
    return times


def run_login_load(login_once, times_class, threads, seconds):
    """Run login_once() in threads until seconds have passed.

    Returns {"logins", "failures", "seconds", "logins_per_second",
    "mean_step_ms": {step: ms}, "first_failure"}.
    """
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    totals = times_class()
    counts = {"logins": 0, "failures": 0}
    failures = []

    def worker():
        local = times_class()
        done = 0
        failed = 0
        while time.monotonic() < deadline:
            try:
                result = login_once()
            except (LoginError, OSError, http.client.HTTPException, KeyError,
                    AssertionError) as error:
                failed += 1
                if not failures:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            times = result[1] if isinstance(result, tuple) else result
            local.add(times)
            done += 1
        with lock:
            totals.add(local)
            counts["logins"] += done
            counts["failures"] += failed

    started = time.monotonic()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - started

    logins = counts["logins"]
    return {
        "logins": logins,
        "failures": counts["failures"],
        "seconds": round(elapsed, 2),
        "logins_per_second": round(logins / elapsed, 1),
        "mean_step_ms": {step: round(total * 1000 / logins, 2) if logins else None
                         for step, total in totals.seconds.items()},
        "first_failure": failures[0] if failures else None,
    }


# --- wrk -----------------------------------------------------------------------------

WRK = "/usr/bin/wrk"
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
SIZE_BYTES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}

# Stops each wrk thread after BENCH_REQUESTS_PER_THREAD responses, appends a line to
# BENCH_DONE_FILE when it does, and counts the responses whose status is not 200
# (wrk's own summary counts only 400 and up). A stopped thread does not end wrk,
# which sleeps for its -d duration: run_wrk sends SIGINT once every thread is done.
COUNTING_SCRIPT = """
local limit = tonumber(os.getenv("BENCH_REQUESTS_PER_THREAD"))
local done_file = os.getenv("BENCH_DONE_FILE")
local threads = {}
count = 0
not_ok = 0

function setup(thread)
    table.insert(threads, thread)
end

function response(status, headers, body)
    count = count + 1
    if status ~= 200 then
        not_ok = not_ok + 1
    end
    if count == limit then
        local marker = io.open(done_file, "a")
        marker:write("done\\n")
        marker:close()
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local total, bad = 0, 0
    for _, thread in ipairs(threads) do
        total = total + thread:get("count")
        bad = bad + thread:get("not_ok")
    end
    io.write(string.format("counted %d not_200 %d\\n", total, bad))
end
"""


def parse_duration_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def parse_wrk(output):
    """Parse the summary of `wrk --latency` into a dict."""
    result = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["requests_per_second"] = float(match.group(1)) if match else None
    for percent in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{percent}%\s+(\S+)", output, re.MULTILINE)
        result[f"p{percent}_ms"] = parse_duration_ms(match.group(1)) if match else None
    match = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+)(\w+) read", output)
    if match:
        result["requests"] = int(match.group(1))
        result["bytes_read"] = float(match.group(3)) * SIZE_BYTES[match.group(4)]
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["status_errors"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                      r"timeout (\d+)", output)
    result["socket_errors"] = sum(int(n) for n in match.groups()) if match else 0
    match = re.search(r"counted (\d+) not_200 (\d+)", output)
    if match:
        result["counted"] = int(match.group(1))
        result["not_200"] = int(match.group(2))
    return result


def wait_for_threads(process, done_file, threads, seconds):
    """Send SIGINT to wrk once every thread wrote its line to done_file.

    On SIGINT wrk stops and prints its summary for the time it ran.
    """
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with open(done_file) as marker:
                if len(marker.readlines()) >= threads:
                    process.send_signal(signal.SIGINT)
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.1)


def run_wrk(url, cookie=None, seconds=8, threads=2, connections=16,
            requests_per_thread=None, workdir="/tmp"):
    """Run wrk against url and return parse_wrk's dict plus the command line.

    With requests_per_thread, the counting script stops each thread after that many
    responses, and seconds is only the upper bound.
    """
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "--timeout", "10s"]
    env = dict(os.environ)
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    done_file = None
    if requests_per_thread is not None:
        script = os.path.join(workdir, "count_responses.lua")
        with open(script, "w") as handle:
            handle.write(COUNTING_SCRIPT)
        done_file = os.path.join(workdir, "wrk_threads_done")
        if os.path.exists(done_file):
            os.unlink(done_file)
        command += ["-s", script]
        env["BENCH_REQUESTS_PER_THREAD"] = str(requests_per_thread)
        env["BENCH_DONE_FILE"] = done_file
    command.append(url)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    try:
        if done_file is not None:
            wait_for_threads(process, done_file, threads, seconds)
        output, _ = process.communicate(timeout=seconds + 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    completed = subprocess.CompletedProcess(command, process.returncode, output)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}")
    result = parse_wrk(completed.stdout)
    # The session cookie is a credential, so the recorded command omits it.
    redacted_command = [part if not part.startswith("Cookie:") else "Cookie: <session>"
                        for part in command]
    result["command"] = " ".join(redacted_command)
    return result


def response_size(url, cookie=None):
    """Return (status, approximate bytes on the wire, response) of one GET.

    The size counts the status line, the headers as http.client parsed them and the
    body, which is close enough to wrk's bytes per request to tell a 200 response
    from a redirect or an error page.
    """
    headers = {"Cookie": cookie} if cookie else {}
    connection = http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(url).port,
                                            timeout=HTTP_TIMEOUT_SECONDS)
    try:
        response = http_request("GET", url, headers=headers, connection=connection)
    finally:
        connection.close()
    size = len("HTTP/1.1 200 OK\r\n") + 2 + len(response.body)
    for name, value in response.headers.items():
        size += len(name) + len(value) + 4
    return response.status, size, response
