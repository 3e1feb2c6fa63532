"""Write bench/RESULTS.md from bench/results/latest.json (and previous.json, if any).

The hand-written analysis in bench/analysis.md is appended under its own heading.
Its first line names the run it was written for. When the figures come from another
run, the report adds a note below the analysis.
"""

import argparse
import json
import re
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

CASE_LABELS = {
    "static_unprotected": "static file, unprotected",
    "static_unprotected_cookie": "static file, unprotected, with the session cookie",
    "static_scalekit": "static file, mod_auth_scalekit",
    "static_openidc": "static file, mod_auth_openidc",
    "php_unprotected": "PHP page, unprotected",
    "php_scalekit": "PHP page, mod_auth_scalekit",
    "php_openidc": "PHP page, mod_auth_openidc",
}

# Above this fraction of busy CPU time before or after the run, the report warns that
# other processes competed with the benchmark.
BUSY_THRESHOLD = 0.2

# Targets: the protected static file at this fraction of the unprotected throughput
# or more, and this much peak RSS growth per child at most.
STATIC_RATIO_TARGET = 0.95
RSS_GROWTH_TARGET_KB = 1024


def fmt(value, digits=0, suffix=""):
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}{suffix}"
    return f"{value:,.{digits}f}{suffix}"


def times(value):
    """Format a ratio as "1.234 x", or n/a."""
    return "n/a" if value is None else f"{value:.3f} x"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def met(condition):
    if condition is None:
        return "not measured"
    return "**met**" if condition else "**not met**"


def verdict(per_round, threshold, strict=False):
    """Return met, not met or undecided from per-round ratios against threshold.

    The target counts as met only if every round meets it, and as not met only if
    no round does. Otherwise the result is undecided, with the range of the rounds.
    """
    if not per_round:
        return "not measured"
    passed = [value > threshold if strict else value >= threshold for value in per_round]
    if all(passed):
        return "**met**"
    if not any(passed):
        return "**not met**"
    return (f"**undecided**: rounds range from {min(per_round):.3f} to "
            f"{max(per_round):.3f}")


# --- sections ----------------------------------------------------------------------------


def login_ratios(data):
    """Return mod_auth_scalekit / mod_auth_openidc logins per second of each round."""
    rounds = data.get("logins", {}).get("rounds", {})
    return [ours["logins_per_second"] / theirs["logins_per_second"]
            for ours, theirs in zip(rounds.get("scalekit", []), rounds.get("openidc", []))
            if theirs["logins_per_second"]]


def targets_section(data):
    rows = []
    for mpm in ("event", "prefork"):
        ratios = data.get(mpm, {}).get("ratios", {})
        ratio = ratios.get("static_scalekit/static_unprotected", {})
        rows.append([f"protected static file >= {STATIC_RATIO_TARGET} of unprotected "
                     f"({mpm})", fmt(ratio.get("median"), 3),
                     verdict(ratio.get("per_round"), STATIC_RATIO_TARGET)])
        cpu = data.get(mpm, {}).get("cpu_ratios", {}).get(
            "static_scalekit/static_unprotected", {})
        if cpu.get("per_round"):
            rows.append([f"the same from server CPU time per request ({mpm}, supporting)",
                         fmt(cpu.get("median"), 3),
                         verdict(cpu.get("per_round"), STATIC_RATIO_TARGET)])
        ahead = ratios.get("static_scalekit/static_openidc", {})
        rows.append([f"protected static file ahead of mod_auth_openidc ({mpm})",
                     times(ahead.get("median")),
                     verdict(ahead.get("per_round"), 1, strict=True)])
    logins = data.get("logins", {}).get("summary", {})
    rows.append(["logins per second ahead of mod_auth_openidc",
                 times(logins.get("scalekit/openidc")),
                 verdict(login_ratios(data), 1, strict=True)])
    profile = data.get("profile", {})
    if "login_scalekit" in profile and "login_openidc" in profile:
        ours = profile["login_scalekit"]["ir_per_login"]
        theirs = profile["login_openidc"]["ir_per_login"]
        rows.append(["login: fewer httpd instructions than mod_auth_openidc (callgrind, "
                     "no noise)", f"{fmt(ours)} vs {fmt(theirs)} Ir per login",
                     met(ours < theirs)])
    rss = data.get("rss", {}).get("scalekit", {})
    growth = rss.get("max_vmhwm_growth_kb")
    checkpoints = data.get("settings", {}).get("rss_checkpoints", [])
    span = f"{checkpoints[0]:,} to {checkpoints[-1]:,}" if checkpoints else ""
    rows.append([f"peak RSS per child flat within 1 MiB ({span} requests)",
                 "n/a" if growth is None else f"{fmt(growth)} kB",
                 met(None if growth is None
                                          else growth <= RSS_GROWTH_TARGET_KB)])
    return "## Targets\n\n" + table(["target", "median ratio or value", "result"],
                                     rows) + "\n\n" + (
        "Each round measures every case once, a few seconds apart, and a ratio is taken "
        "within a round. The table gives the median of the per-round ratios. A target "
        "counts as met only if every round meets it.\n")


def machine_section(data):
    machine = data["machine"]
    rows = [
        ["CPUs (nproc)", machine["nproc"]],
        ["CPU model", machine["cpu_model"]],
        ["memory", f"{machine['memory_gib']} GiB"],
        ["OS, kernel", f"{machine['os']}, Linux {machine['kernel']}"],
        ["httpd", f"{machine['apache2']} (Debian package {machine['apache2_package']})"],
        ["mod_auth_openidc", f"Debian package {machine['mod_auth_openidc_package']} "
                             f"(libcjose0 {machine['libcjose_package']})"],
        ["mod_auth_scalekit", f"git {data['module']['git_head']}, src/ digest "
                              f"{data['module']['src_sha256']}"
                              + (", with uncommitted changes in src/"
                                 if data["module"]["src_uncommitted_changes"] else "")],
        ["PHP", f"php8.2 {machine['php_package']} (mod_php under prefork, php-fpm "
                f"under event)"],
        ["tools", f"{machine['wrk']}; {machine['valgrind']}; {machine['openssl']}"],
    ]
    text = "## Machine\n\n" + table(["", ""], rows) + "\n\n"
    load_rows = []
    busy = False
    for state in data["load"]:
        load_rows.append([state["label"], state["time"],
                          " ".join(f"{value:.2f}" for value in state["loadavg"]),
                          fmt(state["cpu_busy_fraction"] * 100, 0, "%")
                          if state["cpu_busy_fraction"] is not None else "n/a",
                          "; ".join(state["busy_processes"]) or "none"])
        if state["label"] in ("before", "after") and (state["cpu_busy_fraction"] or 0) \
                > BUSY_THRESHOLD:
            busy = True
    text += ("Load, sampled over 3 s while none of the benchmark's servers had work "
             "(the dev provider was running but idle):\n\n")
    text += table(["when", "time", "load average (1, 5, 15 min)", "CPU busy",
                   "processes using 5% of a CPU or more"], load_rows) + "\n"
    if busy:
        text += ("\n**The machine was busy.** Other processes kept the CPUs busy before "
                 "or after the run (see the table), so they competed with httpd, wrk "
                 "and the provider during the measurements. Absolute figures are low "
                 "and noisy. The per-round ratios cancel part of it, and the callgrind "
                 "instruction counts do not depend on load.\n")
    return text


def throughput_section(data, mpm):
    phase = data.get(mpm)
    if not phase:
        return f"## Throughput, {mpm} MPM\n\nNot measured in this run.\n"
    rows = []
    for name, summary in phase["cases"].items():
        rows.append([
            CASE_LABELS[name], fmt(summary["requests_per_second"]),
            f"{fmt(summary['rps_min'])} to {fmt(summary['rps_max'])}",
            fmt(summary["p50_ms"], 2), fmt(summary["p99_ms"], 2),
            fmt(summary.get("server_cpu_us_per_request"), 1),
            f"{summary['valid_runs']}/{summary['runs']}", summary["cookie_bytes"] or "",
        ])
    php = ("PHP runs in php-fpm (pm static, 8 children) through mod_proxy_fcgi"
           if mpm == "event" else "PHP runs in mod_php")
    text = (f"## Throughput, {mpm} MPM\n\n{php}. Medians over the rounds; latency "
            f"from `wrk --latency`.\n\n")
    text += table(["case", "requests/s", "range over rounds", "p50 ms", "p99 ms",
                   "server CPU µs per request", "valid runs", "Cookie header bytes"],
                  rows) + "\n\n"
    text += ("Server CPU is the user and system time of the httpd processes (and of "
             "php-fpm under the event MPM) during the wrk run, divided by the requests. "
             "wrk runs on the same two CPUs, so the throughput ratio also depends on how "
             "the scheduler shares them. The CPU ratio is inverted (unprotected CPU per "
             "request divided by protected) so that it reads like the throughput "
             "ratio.\n\n")
    cpu_ratios = phase.get("cpu_ratios", {})
    ratio_rows = []
    for label, value in phase["ratios"].items():
        cpu = cpu_ratios.get(label, {})
        ratio_rows.append([label, fmt(value["median"], 3),
                           ", ".join(f"{ratio:.3f}" for ratio in value["per_round"]),
                           fmt(cpu.get("median"), 3),
                           ", ".join(f"{ratio:.3f}" for ratio in cpu.get("per_round", []))])
    text += table(["ratio", "requests/s, median", "requests/s, per round",
                   "CPU, median", "CPU, per round"], ratio_rows) + "\n"
    problems = [f"{name} round {run['round']}: {'; '.join(run['problems'])}"
                for name, runs in phase["rounds"].items() for run in runs
                if run["problems"]]
    if problems:
        text += "\nRuns left out of the medians:\n\n" + "\n".join(
            f"- {problem}" for problem in problems) + "\n"
    return text


def logins_section(data):
    logins = data.get("logins")
    if not logins:
        return "## Logins per second\n\nNot measured in this run.\n"
    summary = logins["summary"]
    settings = data["settings"]
    rows = []
    for name, label in (("scalekit", "mod_auth_scalekit"), ("openidc", "mod_auth_openidc")):
        steps = summary[name]["mean_step_ms"]
        rows.append([label, fmt(summary[name]["logins_per_second"], 1),
                     summary[name]["failures"], fmt(steps["start"], 2),
                     fmt(steps["authorize"], 2), fmt(steps["login_post"], 2),
                     fmt(steps["callback"], 2), fmt(steps["first_page"], 2)])
    provider = summary["provider_only"]
    text = (f"## Logins per second\n\n{settings['login_threads']} Python client threads "
            f"log in as alice for {settings['login_seconds']} s per round, "
            f"{settings['rounds']} rounds, event MPM. A login is: GET the protected "
            f"file (302 to the provider), GET the login page, POST the form (302 to the "
            f"callback), GET the callback (the module redeems the code and calls "
            f"userinfo, then 302), GET the file with the new session (200). Every "
            f"request opens a new connection. Times are the mean client-side latency "
            f"of each step.\n\n")
    text += table(["module", "logins/s", "failed", "redirect ms", "login page ms",
                   "form post ms", "callback ms", "first page ms"], rows) + "\n\n"
    steps = provider["mean_step_ms"]
    text += (f"The provider alone, with the same threads making only the provider "
             f"requests of a login (login page, form post, token request, userinfo): "
             f"**{fmt(provider['logins_per_second'], 1)} logins/s**, "
             f"{provider['failures']} failed; mean ms per request: login page "
             f"{fmt(steps['authorize'], 2)}, form post {fmt(steps['login_post'], 2)}, "
             f"token {fmt(steps['token'], 2)}, userinfo {fmt(steps['userinfo'], 2)}. "
             f"Most of a login's time is the provider's: it is one Python process and "
             f"signs every ID token with RSA, so the login rates of the two modules "
             f"differ by little more than the noise between rounds. The callgrind "
             f"section counts what httpd itself spends per login.\n\n")
    round_rows = []
    rounds = logins["rounds"]
    for index, ratio in enumerate(login_ratios(data)):
        round_rows.append([index + 1, fmt(rounds["scalekit"][index]["logins_per_second"], 1),
                           fmt(rounds["openidc"][index]["logins_per_second"], 1),
                           fmt(rounds["provider_only"][index]["logins_per_second"], 1),
                           fmt(ratio, 3)])
    text += table(["round", "mod_auth_scalekit logins/s", "mod_auth_openidc logins/s",
                   "provider alone logins/s", "ratio"], round_rows) + "\n\n"
    text += (f"mod_auth_scalekit / mod_auth_openidc logins per second, median of "
             f"per-round ratios: **{fmt(summary['scalekit/openidc'], 3)}**.\n")
    return text


def rss_section(data):
    rss = data.get("rss")
    if not rss:
        return "## Peak RSS per child\n\nNot measured in this run.\n"
    rows = []
    notes = []
    for kind, label in (("scalekit", "mod_auth_scalekit"), ("openidc", "mod_auth_openidc")):
        result = rss.get(kind)
        if not result:
            continue
        first, last = result["checkpoints"][0], result["checkpoints"][-1]
        for pid, memory in last["children"].items():
            before = first["children"].get(pid, {}).get("VmHWM")
            peaks = [fmt(checkpoint["children"].get(pid, {}).get("VmHWM"))
                     for checkpoint in result["checkpoints"]]
            rows.append([label, pid, " / ".join(peaks),
                         fmt(memory["VmHWM"] - before) if before is not None else "n/a",
                         fmt(memory["VmRSS"])])
        not_200 = sum(checkpoint["not_200"] or 0 for checkpoint in result["checkpoints"])
        notes.append(f"{label}: first checkpoint after {first['requests_so_far']:,} "
                     f"requests, last after {last['requests_so_far']:,}; largest growth "
                     f"{fmt(result['max_vmhwm_growth_kb'])} kB; {not_200} responses "
                     f"were not 200.")
    text = ("## Peak RSS per child\n\nEvent MPM with one child of 16 threads, so that "
            "the child serves every request, a fresh httpd per module, the protected "
            "static file driven by wrk "
            "(-t2 -c16, a Lua script counts the responses and stops at each "
            "checkpoint). VmHWM and VmRSS from /proc/PID/status, in kB.\n\n")
    checkpoints = ", ".join(f"{count:,}" for count in data["settings"]["rss_checkpoints"])
    text += table(["module", "child pid", f"VmHWM after {checkpoints} requests",
                   "growth first to last", "VmRSS last"], rows) + "\n\n"
    return text + "\n".join(f"- {note}" for note in notes) + "\n"


def profile_section(data):
    profile = data.get("profile")
    if not profile:
        return "## Per-request cost (callgrind)\n\nNot measured in this run.\n"
    requests = profile["scalekit"]["requests"]
    plain = profile["plain"]["total_ir_per_request"]
    rows = []
    for kind, label in (("plain", "unprotected"),
                        ("plain_cookie", "unprotected, with a Cookie header as long as "
                                         "mod_auth_scalekit's"),
                        ("scalekit", "mod_auth_scalekit"),
                        ("openidc", "mod_auth_openidc")):
        if kind not in profile:
            continue
        total = profile[kind]["total_ir_per_request"]
        statuses = ", ".join(f"{count} x {status}"
                             for status, count in profile[kind]["statuses"].items())
        rows.append([label, fmt(total), fmt(total / plain, 1, " x") if plain else "n/a",
                     fmt(total - plain) if plain else "n/a",
                     profile[kind].get("cookie_bytes") or "", statuses])
    text = (f"## Per-request cost (callgrind)\n\nOne httpd (`apache2 -X`, prefork, no "
            f"PHP) under callgrind serves {requests:,} GETs of the static file on one "
            f"keep-alive connection, after a login and a warm-up on other connections. "
            f"Counts are instructions (Ir) per request in user space; system calls and "
            f"kernel work are not counted.\n\n")
    text += table(["site", "Ir per request", "vs unprotected", "added Ir",
                   "Cookie header bytes", "responses"], rows) + "\n\n"
    focus = profile["scalekit"].get("focus", [])
    if focus:
        total = profile["scalekit"]["total_ir_per_request"]
        focus_rows = []
        for row in focus:
            depth = (len(row["label"]) - len(row["label"].lstrip())) // 2
            focus_rows.append(["· " * depth + f"`{row['function']}`",
                               row["label"].strip(), fmt(row["ir"]),
                               fmt(row["ir"] * 100 / total, 1, "%")])
        text += ("Where mod_auth_scalekit's instructions go, inclusive of callees. Each "
                 "dot before a name is one level of nesting under the row above it "
                 "with fewer dots:\n\n")
        text += table(["function", "what", "Ir per request", "share of the request"],
                      focus_rows) + "\n\n"
    rows = [[f"`{row['function']}`", fmt(row["ir"])]
            for row in profile["openidc"]["module_functions"][:8]]
    text += ("mod_auth_openidc's top functions, inclusive (the library is stripped, so "
             "static functions show as addresses):\n\n")
    text += table(["function", "Ir per request"], rows) + "\n\n"
    text += login_profile_text(profile)
    text += ("The full inclusive listings are in `bench/results/callgrind-*.txt` "
             "(first 80 lines of `callgrind_annotate --inclusive=yes`).\n")
    return text


def login_profile_text(profile):
    if "login_scalekit" not in profile or "login_openidc" not in profile:
        return ""
    ours, theirs = profile["login_scalekit"], profile["login_openidc"]
    text = (f"Logins under callgrind: after one login that fills the discovery and JWKS "
            f"caches, {ours['logins']} logins per module, each three connections to "
            f"httpd (redirect, callback, protected page). The provider runs in its own "
            f"process and is not counted.\n\n")
    text += table(["module", "Ir per login in httpd", "Ir of the largest connection "
                   "(a callback)"],
                  [["mod_auth_scalekit", fmt(ours["ir_per_login"]),
                    fmt(ours["largest_connection_ir"])],
                   ["mod_auth_openidc", fmt(theirs["ir_per_login"]),
                    fmt(theirs["largest_connection_ir"])]]) + "\n\n"
    rows = [[f"`{row['function']}`", fmt(row["ir"])]
            for row in ours["largest_connection_module_functions"][:10]]
    text += ("mod_auth_scalekit's functions in that callback, inclusive:\n\n"
             + table(["function", "Ir in one callback"], rows) + "\n\n")
    return text


def metric_pairs(data):
    """Return {label: value} of the figures compared between runs."""
    values = {}
    for mpm in ("event", "prefork"):
        for name, summary in data.get(mpm, {}).get("cases", {}).items():
            values[f"{mpm}: {CASE_LABELS[name]}, requests/s"] = summary["requests_per_second"]
            values[f"{mpm}: {CASE_LABELS[name]}, p99 ms"] = summary["p99_ms"]
        for label, ratio in data.get(mpm, {}).get("ratios", {}).items():
            values[f"{mpm}: ratio {label}"] = ratio["median"]
    summary = data.get("logins", {}).get("summary", {})
    for name in ("scalekit", "openidc", "provider_only"):
        if name in summary:
            values[f"logins/s, {name}"] = summary[name]["logins_per_second"]
    for kind in ("scalekit", "openidc"):
        result = data.get("rss", {}).get(kind)
        if result:
            values[f"peak RSS growth kB, {kind}"] = result["max_vmhwm_growth_kb"]
            values[f"peak RSS max kB, {kind}"] = result["max_vmhwm_kb"]
    for kind in ("plain", "plain_cookie", "scalekit", "openidc"):
        result = data.get("profile", {}).get(kind)
        if result:
            values[f"callgrind Ir per request, {kind}"] = result["total_ir_per_request"]
    for kind in ("scalekit", "openidc"):
        result = data.get("profile", {}).get(f"login_{kind}")
        if result:
            values[f"callgrind Ir per login, {kind}"] = result["ir_per_login"]
    return values


def changes_section(data, previous):
    if previous is None:
        return ("## Changes since the last run\n\nFirst run: there are no earlier "
                "results to compare with.\n")
    text = (f"## Changes since the last run\n\nPrevious run: {previous['run_id']}, "
            f"module git {previous['module']['git_head']}, src/ digest "
            f"{previous['module']['src_sha256']}. ")
    if previous["module"]["src_sha256"] == data["module"]["src_sha256"]:
        text += "The module source is unchanged, so differences are machine noise.\n\n"
    else:
        text += "The module source changed since then.\n\n"
    old, new = metric_pairs(previous), metric_pairs(data)
    rows = []
    for label, value in new.items():
        before = old.get(label)
        if before is None or value is None:
            continue
        change = (value - before) * 100 / before if before else None
        if "ratio" in label:
            digits = 3
        elif "ms" in label:
            digits = 2
        else:
            digits = 0
        rows.append([label, fmt(before, digits), fmt(value, digits),
                     fmt(change, 1, "%") if change is not None else "n/a"])
    busy = [state["cpu_busy_fraction"] for state in previous.get("load", [])
            if state["label"] == "before"]
    if busy:
        text += (f"CPU busy before the previous run: {busy[0] * 100:.0f}%.\n\n")
    return text + table(["figure", "previous", "this run", "change"], rows) + "\n"


def commands_section(data):
    settings = data["settings"]
    examples = []
    for mpm in ("event", "prefork"):
        for name, runs in data.get(mpm, {}).get("rounds", {}).items():
            if runs:
                examples.append(f"{mpm}, {name}: `{runs[0]['command']}`")
    text = ("## Commands\n\n```\nbash bench/run.sh\n```\n\nEnvironment variables "
            "change the defaults: `BENCH_PHASES` (event,rss,prefork,profile), "
            "`BENCH_SECONDS` (8), `BENCH_ROUNDS` (3), `BENCH_LOGIN_THREADS` (4), "
            "`BENCH_LOGIN_SECONDS` (8), `BENCH_RSS_CHECKPOINTS` (100000,400000,700000,1000000), "
            "`BENCH_PROFILE_REQUESTS` (2000), `BENCH_PROFILE_LOGINS` (20), "
            "`BENCH_KEEP_WORKDIR=1` keeps the "
            "generated configs and logs. `python3 bench/report.py` rewrites this file "
            "from `bench/results/latest.json`.\n\n")
    text += (f"This run: {settings['rounds']} rounds, wrk runs of {settings['seconds']} s "
             f"with {settings['wrk_threads']} threads and {settings['wrk_connections']} "
             f"connections, {data['duration_seconds']} s in all. Each protected run "
             f"starts with a fresh login, because a session cookie that wrk repeats "
             f"would need an activity update after 5 minutes. A run counts only if a "
             f"check request returns 200 without Set-Cookie and wrk's bytes per "
             f"request match that response within 15%.\n\n")
    text += "wrk command of the first round of each case (ports differ per run):\n\n"
    text += "\n".join(f"- {example}" for example in examples) + "\n"
    profile = data.get("profile", {})
    if "scalekit" in profile:
        text += (f"\nCallgrind (per site): `{profile['scalekit']['command']}`, then "
                 f"`callgrind_annotate --inclusive=yes --threshold=100` on the dump of "
                 f"the measured connection.\n")
    return text


def configuration_section():
    return """## Configuration of the two modules

Both sites use the same dev provider (`tools/devidp/scalekit_dev_idp.py`, one client,
user alice), the same docroot and the same MPM settings. `bench/servers.py` writes the
configs. Settings chosen to make the two modules do the same work:

| | mod_auth_scalekit | mod_auth_openidc |
| --- | --- | --- |
| session | sealed cookie (default) | `OIDCSessionType client-cookie` |
| provider | `ScalekitIssuer` (discovery) | `OIDCProviderMetadataURL` |
| TLS check | `ScalekitSSLVerify Off` | `OIDCSSLValidateServer Off` |
| callback | `/scalekit/callback` (default) | `OIDCRedirectURI .../openidc/callback` |
| scopes | `openid email profile` (default) | `OIDCScope "openid email profile"` |
| PKCE | S256 (always) | `OIDCPKCEMethod S256` |
| token request | `client_secret_post` (default) | `OIDCProviderTokenEndpointAuth client_secret_post` |
| userinfo at login | `ScalekitUserInfo On` | always (discovery lists the endpoint) |
| REMOTE_USER | `sub` (default) | `OIDCRemoteUserClaim sub` |
| claims | environment variables (default) | `OIDCPassClaimsAs environment` |
| lifetimes | inactivity 3600 s, max 28800 s | `OIDCSessionInactivityTimeout 3600`, `OIDCSessionMaxDuration 28800` |
| caches | shmcb (default) | shm (default, `OIDCCacheShmMax` 500) |

What stays different: each module puts its own session format in its cookie, and the
"Cookie header bytes" columns show the size that every request carries. The benchmark
sends each cookie only to the paths its Path attribute covers, as a browser does.
mod_auth_openidc writes an entry to its shm cache at every login. With the default
500 entries, it logs a warning ("dropping LRU entry") for each login once the cache
is full. The error log table counts them.
"""


def error_log_section(data):
    rows = []
    for mpm in ("event", "prefork"):
        for kind, summary in data.get(mpm, {}).get("error_logs", {}).items():
            rows.append([mpm, kind, summary["lines"],
                         summary.get("lru_drop_warnings", "n/a"),
                         "<br>".join(re.sub(r"^\[[^]]*\] ", "", line)[:160]
                                     for line in summary["samples"][:3])])
    if not rows:
        return ""
    return ("## Error log lines (warn and above)\n\n"
            + table(["MPM", "site", "lines", "\"dropping LRU entry\" lines",
                     "first lines"], rows) + "\n")


def analysis_section(data):
    path = BENCH_DIR / "analysis.md"
    if not path.exists():
        return ""
    text = path.read_text()
    match = re.search(r"run (\d{4}-\d\d-\d\dT[\d:]+)", text.splitlines()[0])
    note = ""
    if match and match.group(1) != data["run_id"]:
        note = (f"\n*This analysis was written for run {match.group(1)}; the figures "
                f"above are from run {data['run_id']}.*\n")
    return text.rstrip() + "\n" + note


def render(data, previous):
    sections = [
        "# Benchmark: mod_auth_scalekit and mod_auth_openidc\n\n"
        f"Run {data['run_id']}, written by `bench/report.py` from "
        f"`bench/results/latest.json`. Rerun with `bash bench/run.sh`.\n",
        targets_section(data),
        analysis_section(data),
        machine_section(data),
        throughput_section(data, "event"),
        throughput_section(data, "prefork"),
        logins_section(data),
        rss_section(data),
        profile_section(data),
        changes_section(data, previous),
        configuration_section(),
        error_log_section(data),
        commands_section(data),
    ]
    return "\n".join(section for section in sections if section)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write RESULTS.md from the results.")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)
    data = json.loads((args.results / "latest.json").read_text())
    previous_file = args.results / "previous.json"
    previous = json.loads(previous_file.read_text()) if previous_file.exists() else None
    args.output.write_text(render(data, previous))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
