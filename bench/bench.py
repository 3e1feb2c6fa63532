"""Benchmark mod_auth_scalekit against mod_auth_openidc. Started by bench/run.sh.

Phases, each optional (--phases):
  event     Throughput of seven cases under the event MPM (PHP through php-fpm).
            Then logins per second of both modules and of the provider alone.
  rss       Peak RSS of one event MPM child at request-count checkpoints.
  prefork   Throughput of the seven cases under the prefork MPM with mod_php.
  profile   Callgrind instruction counts per request and per login, httpd -X.

Cases are measured in rounds, alternating the order (ABC, CBA, ...) so that a slow
period of the machine hits every case alike. Results go to a JSON file that
report.py turns into RESULTS.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import callgrind_profile
import loadgen
import servers

STATIC = servers.STATIC_PATH
PHP = servers.PHP_PATH

# (case name, site kind, path, site whose login supplies the Cookie header or None).
# Protected paths live under /private/. static_unprotected_cookie sends the
# mod_auth_scalekit session cookie to the plain site. It measures what the cookie's
# bytes alone cost httpd, because no module reads the cookie there.
THROUGHPUT_CASES = [
    ("static_unprotected", "plain", STATIC, None),
    ("static_unprotected_cookie", "plain", STATIC, "scalekit"),
    ("static_scalekit", "scalekit", "/private" + STATIC, "scalekit"),
    ("static_openidc", "openidc", "/private" + STATIC, "openidc"),
    ("php_unprotected", "plain", PHP, None),
    ("php_scalekit", "scalekit", "/private" + PHP, "scalekit"),
    ("php_openidc", "openidc", "/private" + PHP, "openidc"),
]

# A wrk run whose bytes per request differ from the checked sample by more than
# this fraction measured something else (a redirect or an error page).
SIZE_TOLERANCE = 0.15

# A wrk run with more socket errors than this fraction of its requests is left out.
# A few read errors happen when httpd closes a keep-alive connection (after
# MaxKeepAliveRequests) while wrk sends the next request.
SOCKET_ERROR_TOLERANCE = 0.001


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- machine state ---------------------------------------------------------------------


def process_cpu_ticks():
    """Return {pid: (utime + stime in clock ticks, command name)} from /proc."""
    ticks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(entry.name)] = (int(fields[11]) + int(fields[12]), name)
    return ticks


def total_cpu_ticks():
    """Return (all ticks, idle ticks) of the first line of /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def sample_cpu(seconds=3.0):
    """Return the busy fraction of all CPUs over seconds and the busiest processes.

    Each process line gives its share of one CPU in percent over the window.
    """
    hertz = os.sysconf("SC_CLK_TCK")
    total_a, idle_a = total_cpu_ticks()
    processes_a = process_cpu_ticks()
    time.sleep(seconds)
    total_b, idle_b = total_cpu_ticks()
    processes_b = process_cpu_ticks()
    total = total_b - total_a
    busy = round(1 - (idle_b - idle_a) / total, 3) if total else None
    usage = []
    for pid, (ticks, name) in processes_b.items():
        before = processes_a.get(pid, (0, name))[0]
        percent = (ticks - before) * 100 / hertz / seconds
        if percent >= 5:
            usage.append((percent, pid, name))
    usage.sort(reverse=True)
    return busy, [f"{percent:.0f}% pid {pid} {name}" for percent, pid, name in usage[:8]]


def machine_state(label):
    """Record the load of the machine while none of the benchmark's servers work."""
    load = os.getloadavg()
    busy, processes = sample_cpu()
    state = {
        "label": label,
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "loadavg": [round(value, 2) for value in load],
        "cpu_busy_fraction": busy,
        "busy_processes": processes,
    }
    log(f"machine {label}: load {state['loadavg']}, CPU busy "
        f"{state['cpu_busy_fraction']}")
    return state


def command_output(command):
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=30)
        return completed.stdout.strip()
    except OSError as error:
        return f"unavailable: {error}"


def package_version(name):
    return command_output(["dpkg-query", "-W", "-f=${Version}", name])


def machine_info():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    apache_version = command_output([servers.APACHE, "-v"]).splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": match.group(1).strip() if match else "unknown",
        "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                            / 1024 ** 3, 1),
        "os": command_output(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "apache2": apache_version[0] if apache_version else "unknown",
        "apache2_package": package_version("apache2-bin"),
        "mod_auth_openidc_package": package_version("libapache2-mod-auth-openidc"),
        "libcjose_package": package_version("libcjose0"),
        "php_package": package_version("php8.2-fpm"),
        "wrk": command_output(["wrk", "--version"]).splitlines()[0],
        "valgrind": command_output(["valgrind", "--version"]),
        "openssl": command_output(["openssl", "version"]),
    }


def module_info(module):
    """Describe the build: git state of the checkout and a digest of the sources.

    The digest covers the src/ directory that the module was built from, which is
    two levels above the libtool output (src/.libs/mod_auth_scalekit.so).
    """
    repository = servers.REPOSITORY
    source_dir = module.parent.parent
    if not list(source_dir.glob("*.c")):
        source_dir = repository / "src"
    digest = hashlib.sha256()
    for path in sorted(source_dir.glob("*.[ch]")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    head = command_output(["git", "-C", str(repository), "rev-parse", "--short", "HEAD"])
    changed = command_output(["git", "-C", str(repository), "status", "--porcelain",
                              "--", "src"])
    return {
        "path": str(module),
        "git_head": head,
        "src_sha256": digest.hexdigest()[:16],
        "src_uncommitted_changes": changed.splitlines(),
    }


# --- servers of a phase ----------------------------------------------------------------


class Phase:
    """The Apache instances of one MPM: plain, scalekit and openidc."""

    def __init__(self, args, provider, ledger, name, mpm,
                 kinds=("plain", "scalekit", "openidc"), php_fpm=None, php=True,
                 mpm_settings=None):
        self.sites = {}
        self.httpds = {}
        self.php_fpm = php_fpm
        for kind in kinds:
            site = servers.Site(kind, mpm, site_root(args, f"{name}-{kind}"),
                                issuer=provider.issuer,
                                client_secret=args.client_secret, module=args.module,
                                php_fpm_port=php_fpm.port if php_fpm else None, php=php,
                                mpm_settings=mpm_settings)
            self.sites[kind] = site
            self.httpds[kind] = servers.Httpd(site, ledger)

    def start(self):
        for httpd in self.httpds.values():
            httpd.start()

    def stop(self):
        for httpd in self.httpds.values():
            httpd.stop()

    def server_pids(self, kind):
        """Return the parent pids whose processes serve kind's site, php-fpm included."""
        pids = [self.httpds[kind].pid]
        if self.php_fpm is not None:
            pids.append(self.php_fpm.process.pid)
        return pids

    def error_log_summary(self):
        """Return {kind: {"lines", "lru_drop_warnings", "samples"}} of the error logs."""
        summary = {}
        for kind, httpd in self.httpds.items():
            lines = [line for line in httpd.read_error_log().splitlines()
                     if re.search(r"\[(?:[a-z_]+:)?(?:warn|error|crit|alert|emerg)\]", line)]
            # mod_auth_openidc's warning when its shm cache is full (OIDCCacheShmMax).
            lru_drops = sum(1 for line in lines if "dropping LRU entry" in line)
            summary[kind] = {"lines": len(lines), "lru_drop_warnings": lru_drops,
                             "samples": lines[:5]}
        return summary


def site_root(args, name):
    """Create WORKDIR/name, traversable by the www-data children."""
    root = args.workdir / name
    root.mkdir()
    root.chmod(0o755)
    return root


def session_cookie(site, path):
    """Log in through site and return the Cookie header value for the session."""
    jar, _ = loadgen.log_in(site.url(path))
    return jar.header(path)


# --- throughput ------------------------------------------------------------------------


def measure_case(args, site, path, cookie_site, server_pids):
    """Run wrk once on site's path, with a fresh session from cookie_site if given.

    Besides wrk's figures, the result has the CPU time that the server processes
    (server_pids and their children) used per request. It depends less than the
    throughput on wrk, which shares the CPUs with httpd.
    """
    url = site.url(path)
    cookie = session_cookie(cookie_site, "/private" + STATIC) if cookie_site else None
    status, expected_size, sample = loadgen.response_size(url, cookie)
    problems = []
    if status != 200:
        problems.append(f"the check request returned {status}")
    if sample.headers.get("Set-Cookie"):
        problems.append("the check response sets a cookie")

    cpu_before = servers.cpu_seconds(server_pids)
    result = loadgen.run_wrk(url, cookie, seconds=args.seconds, threads=args.wrk_threads,
                             connections=args.wrk_connections)
    cpu_used = servers.cpu_seconds(server_pids) - cpu_before
    if result.get("requests"):
        result["server_cpu_us_per_request"] = round(cpu_used * 1e6 / result["requests"], 1)
        per_request = result["bytes_read"] / result["requests"]
        result["bytes_per_request"] = round(per_request)
        result["expected_bytes_per_request"] = expected_size
        if abs(per_request - expected_size) > SIZE_TOLERANCE * expected_size:
            problems.append(f"{per_request:.0f} bytes per request, the 200 response "
                            f"has {expected_size}")
    if result["status_errors"]:
        problems.append(f"{result['status_errors']} responses with status 400 or more")
    if result["socket_errors"] > SOCKET_ERROR_TOLERANCE * (result.get("requests") or 0):
        problems.append(f"{result['socket_errors']} socket errors")
    result["cookie_bytes"] = len(cookie) if cookie else 0
    result["problems"] = problems
    return result


def run_throughput(args, phase, label):
    """Measure every throughput case in alternating rounds. Returns the rounds."""
    rounds = {name: [] for name, _, _, _ in THROUGHPUT_CASES}
    for number in range(args.rounds):
        order = THROUGHPUT_CASES if number % 2 == 0 else list(reversed(THROUGHPUT_CASES))
        for name, kind, path, cookie_kind in order:
            cookie_site = phase.sites[cookie_kind] if cookie_kind else None
            result = measure_case(args, phase.sites[kind], path, cookie_site,
                                  phase.server_pids(kind))
            result["round"] = number + 1
            rounds[name].append(result)
            note = f" PROBLEM: {'; '.join(result['problems'])}" if result["problems"] else ""
            log(f"{label} round {number + 1} {name}: "
                f"{result['requests_per_second']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
                f"p99 {result['p99_ms']:.2f} ms{note}")
    return rounds


def summarize_throughput(rounds):
    """Medians per case and per-round ratios.

    A ratio is taken within each round, between runs a few seconds apart, and the
    median of those ratios is reported.
    """
    summary = {}
    for name, runs in rounds.items():
        valid = [run for run in runs if not run["problems"]]
        summary[name] = {
            "runs": len(runs),
            "valid_runs": len(valid),
            "requests_per_second": median(run["requests_per_second"] for run in valid),
            "rps_min": min((run["requests_per_second"] for run in valid), default=None),
            "rps_max": max((run["requests_per_second"] for run in valid), default=None),
            "p50_ms": median(run["p50_ms"] for run in valid),
            "p99_ms": median(run["p99_ms"] for run in valid),
            "server_cpu_us_per_request": median(run.get("server_cpu_us_per_request")
                                                for run in valid),
            "cookie_bytes": runs[0]["cookie_bytes"] if runs else 0,
        }
    ratios = {}
    pairs = {
        "static_scalekit/static_unprotected": ("static_scalekit", "static_unprotected"),
        "static_unprotected_cookie/static_unprotected": ("static_unprotected_cookie",
                                                         "static_unprotected"),
        "static_scalekit/static_unprotected_cookie": ("static_scalekit",
                                                      "static_unprotected_cookie"),
        "static_openidc/static_unprotected": ("static_openidc", "static_unprotected"),
        "static_scalekit/static_openidc": ("static_scalekit", "static_openidc"),
        "php_scalekit/php_unprotected": ("php_scalekit", "php_unprotected"),
        "php_openidc/php_unprotected": ("php_openidc", "php_unprotected"),
        "php_scalekit/php_openidc": ("php_scalekit", "php_openidc"),
    }
    cpu_ratios = {}
    for label, (numerator, denominator) in pairs.items():
        per_round = []
        cpu_per_round = []
        for top, bottom in zip(rounds[numerator], rounds[denominator]):
            if top["problems"] or bottom["problems"]:
                continue
            per_round.append(top["requests_per_second"] / bottom["requests_per_second"])
            # Inverted, so that it reads like the throughput ratio: the share of the
            # throughput left if CPU time were the only limit.
            if top.get("server_cpu_us_per_request"):
                cpu_per_round.append(bottom["server_cpu_us_per_request"]
                                     / top["server_cpu_us_per_request"])
        ratios[label] = {"median": round(median(per_round), 3) if per_round else None,
                         "per_round": [round(value, 3) for value in per_round]}
        cpu_ratios[label] = {
            "median": round(median(cpu_per_round), 3) if cpu_per_round else None,
            "per_round": [round(value, 3) for value in cpu_per_round],
        }
    return {"cases": summary, "ratios": ratios, "cpu_ratios": cpu_ratios}


def median(values):
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 3) if values else None


# --- logins ----------------------------------------------------------------------------


def run_logins(args, phase, provider):
    """Logins per second through each module and of the provider alone, in rounds."""
    cases = [
        ("scalekit", lambda: loadgen.log_in(phase.sites["scalekit"].url("/private" + STATIC)),
         loadgen.LoginTimes),
        ("openidc", lambda: loadgen.log_in(phase.sites["openidc"].url("/private" + STATIC)),
         loadgen.LoginTimes),
        ("provider_only",
         lambda: loadgen.provider_only_login(provider.issuer, args.client_secret),
         loadgen.ProviderTimes),
    ]
    rounds = {name: [] for name, _, _ in cases}
    for number in range(args.rounds):
        order = cases if number % 2 == 0 else list(reversed(cases))
        for name, login_once, times_class in order:
            result = loadgen.run_login_load(login_once, times_class, args.login_threads,
                                            args.login_seconds)
            result["round"] = number + 1
            rounds[name].append(result)
            failure = f", first failure: {result['first_failure']}" if result["failures"] else ""
            log(f"logins round {number + 1} {name}: {result['logins_per_second']}/s, "
                f"{result['failures']} failed{failure}")
    summary = {}
    for name, runs in rounds.items():
        steps = runs[0]["mean_step_ms"].keys()
        summary[name] = {
            "logins_per_second": median(run["logins_per_second"] for run in runs),
            "failures": sum(run["failures"] for run in runs),
            "mean_step_ms": {step: median(run["mean_step_ms"][step] for run in runs)
                             for step in steps},
        }
    per_round = [top["logins_per_second"] / bottom["logins_per_second"]
                 for top, bottom in zip(rounds["scalekit"], rounds["openidc"])
                 if bottom["logins_per_second"]]
    summary["scalekit/openidc"] = round(median(per_round), 3) if per_round else None
    return {"rounds": rounds, "summary": summary}


# --- peak RSS --------------------------------------------------------------------------


def children_memory(httpd):
    memory = {}
    for pid in httpd.children():
        try:
            memory[str(pid)] = servers.memory_status(pid)
        except OSError:
            continue
    return memory


def run_rss(args, provider, ledger):
    """Peak RSS of each child after the checkpoints' numbers of authenticated requests."""
    results = {}
    for kind in ("scalekit", "openidc"):
        phase = Phase(args, provider, ledger, "rss", "event", kinds=(kind,),
                      mpm_settings="event-one-child")
        phase.start()
        try:
            site = phase.sites[kind]
            path = "/private" + STATIC
            checkpoints = []
            done = 0
            for target in args.rss_checkpoints:
                cookie = session_cookie(site, path)
                per_thread = (target - done) // args.wrk_threads
                run = loadgen.run_wrk(site.url(path), cookie, seconds=args.rss_max_seconds,
                                      threads=args.wrk_threads,
                                      connections=args.wrk_connections,
                                      requests_per_thread=per_thread, workdir=args.workdir)
                done += run.get("counted", 0)
                memory = children_memory(phase.httpds[kind])
                checkpoints.append({
                    "target_requests": target,
                    "requests_so_far": done,
                    "not_200": run.get("not_200"),
                    "requests_per_second": run["requests_per_second"],
                    "children": memory,
                })
                log(f"rss {kind} after {done} requests: VmHWM kB "
                    f"{[value['VmHWM'] for value in memory.values()]}, "
                    f"{run.get('not_200')} not 200")
            results[kind] = {"checkpoints": checkpoints,
                             "errors": phase.error_log_summary()[kind]}
        finally:
            phase.stop()
    for kind, result in results.items():
        first, last = result["checkpoints"][0], result["checkpoints"][-1]
        growth = [last["children"][pid]["VmHWM"] - first["children"][pid]["VmHWM"]
                  for pid in first["children"] if pid in last["children"]]
        result["max_vmhwm_growth_kb"] = max(growth) if growth else None
        result["max_vmhwm_kb"] = max((value["VmHWM"] for value in last["children"].values()),
                                     default=None)
    return results


# --- profile ---------------------------------------------------------------------------


def run_profiles(args, provider, ledger):
    """Profile the unprotected, the protected and the cookie-only static requests.

    plain_cookie sends the plain site a Cookie header as long as mod_auth_scalekit's
    session cookie. Its value is random, because no module reads it. The run
    separates httpd's cost of parsing the header from the module's work.
    """
    results = {}
    runs = (("plain", "plain", STATIC), ("scalekit", "scalekit", "/private" + STATIC),
            ("openidc", "openidc", "/private" + STATIC), ("plain_cookie", "plain", STATIC))
    for name, kind, path in runs:
        site = servers.Site(kind, "prefork", site_root(args, f"profile-{name}"),
                            issuer=provider.issuer, client_secret=args.client_secret,
                            module=args.module, php=False)
        cookie = None
        if name == "plain_cookie":
            length = results["scalekit"]["cookie_bytes"] - len("scalekit_session=")
            cookie = "scalekit_session=" + secrets.token_urlsafe(length)[:length]
        log(f"callgrind: {args.profile_requests} requests for {path} on {name}")
        results[name] = callgrind_profile.profile_site(site, ledger, path,
                                                       args.profile_requests, cookie)
        log(f"callgrind {name}: {results[name]['total_ir_per_request']} instructions "
            f"per request, statuses {results[name]['statuses']}")
        (args.results / f"callgrind-{name}.txt").write_text(
            results[name].pop("annotate_head") + "\n")

    for kind in ("scalekit", "openidc"):
        site = servers.Site(kind, "prefork", site_root(args, f"profile-login-{kind}"),
                            issuer=provider.issuer, client_secret=args.client_secret,
                            module=args.module, php=False)
        log(f"callgrind: {args.profile_logins} logins on {kind}")
        result = callgrind_profile.profile_logins(site, ledger, "/private" + STATIC,
                                                  args.profile_logins)
        results[f"login_{kind}"] = result
        log(f"callgrind {kind}: {result['ir_per_login']} instructions per login in httpd")
    return results


# --- main ------------------------------------------------------------------------------


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", type=Path, required=True,
                        help="mod_auth_scalekit.so to benchmark")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="directory for configs, logs and the process list")
    parser.add_argument("--results", type=Path, default=servers.BENCH_DIR / "results",
                        help="directory for latest.json and the callgrind listings")
    parser.add_argument("--phases", default="event,rss,prefork,profile",
                        help="comma-separated phases to run (default: all)")
    parser.add_argument("--seconds", type=int, default=8, help="duration of a wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every throughput and login case")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--login-threads", type=int, default=4,
                        help="concurrent Python login clients")
    parser.add_argument("--login-seconds", type=int, default=8,
                        help="duration of a login run")
    parser.add_argument("--rss-checkpoints", default="100000,400000,700000,1000000",
                        help="authenticated request counts at which to read VmHWM; "
                             "the growth is taken between the first and the last")
    parser.add_argument("--rss-max-seconds", type=int, default=240,
                        help="upper bound of each RSS wrk run, in seconds")
    parser.add_argument("--profile-requests", type=int, default=2000,
                        help="requests measured under callgrind per site")
    parser.add_argument("--profile-logins", type=int, default=20,
                        help="logins measured under callgrind per module")
    args = parser.parse_args(argv)
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    args.rss_checkpoints = [int(value) for value in args.rss_checkpoints.split(",")]
    args.module = args.module.resolve()
    args.workdir = args.workdir.resolve()
    return args


def exit_on_sigterm(signum, frame):
    # SystemExit unwinds the try/finally blocks, which stop every server.
    sys.exit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    args = parse_arguments(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    # A fixed prefix keeps the secret from starting with "-", which the dev
    # provider's argument parser would take for an option.
    args.client_secret = "sks_bench_" + secrets.token_urlsafe(24)
    ledger = servers.ProcessLedger(args.workdir / "pids")
    started = time.monotonic()

    results = {
        "run_id": datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(),
        "module": module_info(args.module),
        "settings": {
            "phases": args.phases, "seconds": args.seconds, "rounds": args.rounds,
            "wrk_threads": args.wrk_threads, "wrk_connections": args.wrk_connections,
            "login_threads": args.login_threads, "login_seconds": args.login_seconds,
            "rss_checkpoints": args.rss_checkpoints,
            "profile_requests": args.profile_requests,
            "profile_logins": args.profile_logins,
        },
        "load": [machine_state("before")],
    }

    provider = servers.DevProvider(args.workdir, args.client_secret, ledger)
    provider.start()
    log(f"dev provider at {provider.issuer}")
    try:
        if "event" in args.phases:
            php_fpm = servers.PhpFpm(args.workdir / "php-fpm", ledger)
            php_fpm.start()
            phase = Phase(args, provider, ledger, "event", "event", php_fpm=php_fpm)
            try:
                phase.start()
                rounds = run_throughput(args, phase, "event")
                results["event"] = {"rounds": rounds, **summarize_throughput(rounds)}
                results["logins"] = run_logins(args, phase, provider)
                results["event"]["error_logs"] = phase.error_log_summary()
            finally:
                phase.stop()
                php_fpm.stop()
            results["load"].append(machine_state("after event"))

        if "rss" in args.phases:
            results["rss"] = run_rss(args, provider, ledger)
            results["load"].append(machine_state("after rss"))

        if "prefork" in args.phases:
            phase = Phase(args, provider, ledger, "prefork", "prefork")
            try:
                phase.start()
                rounds = run_throughput(args, phase, "prefork")
                results["prefork"] = {"rounds": rounds, **summarize_throughput(rounds)}
                results["prefork"]["error_logs"] = phase.error_log_summary()
            finally:
                phase.stop()
            results["load"].append(machine_state("after prefork"))

        if "profile" in args.phases:
            results["profile"] = run_profiles(args, provider, ledger)
    finally:
        provider.stop()

    results["load"].append(machine_state("after"))
    results["duration_seconds"] = round(time.monotonic() - started)
    latest = args.results / "latest.json"
    if latest.exists():
        latest.replace(args.results / "previous.json")
    latest.write_text(json.dumps(results, indent=1) + "\n")
    log(f"results written to {latest} after {results['duration_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
