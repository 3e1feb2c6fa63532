"""Probe where the RSS growth of an httpd child comes from. Not part of run.sh.

  rss       One event MPM child (16 threads) serves N authenticated requests of the
            static file, and VmHWM and VmRSS are printed every STEP requests. With
            --plain the site has no module and gets a random Cookie header of 2,048
            bytes instead. Set MALLOC_ARENA_MAX in the environment to change glibc's
            number of malloc arenas in httpd.
  memcheck  httpd -X (prefork) under valgrind memcheck serves N authenticated
            requests, then prints memcheck's leak summary. Compare two values of N:
            a leak grows with N.

Run as root from the repository, with a built module:
  /usr/bin/python3 bench/memory_probe.py rss --module src/.libs/mod_auth_scalekit.so
"""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import callgrind_profile
import loadgen
import servers

PROTECTED_PATH = "/private" + servers.STATIC_PATH
SESSION_COOKIE_LENGTH = 2048


def probe_rss(args, workdir, provider, ledger):
    kind = "plain" if args.plain else "scalekit"
    root = workdir / "site"
    root.mkdir(mode=0o755)
    site = servers.Site(kind, "event", root, issuer=provider.issuer,
                        client_secret=args.client_secret, module=args.module,
                        mpm_settings="event-one-child")
    httpd = servers.Httpd(site, ledger)
    httpd.start()
    try:
        path = servers.STATIC_PATH if args.plain else PROTECTED_PATH
        cookie = None
        if args.plain:
            value_length = SESSION_COOKIE_LENGTH - len("scalekit_session=")
            cookie = "scalekit_session=" + secrets.token_urlsafe(value_length)[:value_length]
        done = 0
        while done < args.requests:
            # A fresh login per step, as bench.py does, unless --one-login.
            if not args.plain and (cookie is None or not args.one_login):
                jar, _ = loadgen.log_in(site.url(path))
                cookie = jar.header(path)
            run = loadgen.run_wrk(site.url(path), cookie, seconds=600, threads=2,
                                  connections=16, requests_per_thread=args.step // 2,
                                  workdir=str(workdir))
            done += run.get("counted", 0)
            for pid in httpd.children():
                memory = servers.memory_status(pid)
                print(f"{done} requests ({run.get('not_200')} not 200): child {pid} "
                      f"VmHWM {memory['VmHWM']} kB, VmRSS {memory['VmRSS']} kB",
                      flush=True)
    finally:
        httpd.stop()


def probe_memcheck(args, workdir, provider, ledger):
    root = workdir / "site"
    root.mkdir(mode=0o755)
    site = servers.Site("scalekit", "prefork", root, issuer=provider.issuer,
                        client_secret=args.client_secret, module=args.module, php=False)
    site.extra_config = callgrind_profile.PROFILE_CONFIG
    conf = servers.write_site(site)
    log = root / "logs" / "memcheck.log"
    command = ["/usr/bin/valgrind", "--tool=memcheck", "--leak-check=full",
               "--show-leak-kinds=definite,indirect", "--num-callers=30",
               f"--log-file={log}", servers.APACHE, "-X", "-f", str(conf)]
    process = subprocess.Popen(command)
    ledger.add(process.pid, "valgrind")
    try:
        servers.wait_for_port(site.port, callgrind_profile.VALGRIND_STARTUP_SECONDS,
                              process, "httpd -X under memcheck")
        jar, _ = loadgen.log_in(site.url(PROTECTED_PATH))
        statuses = callgrind_profile.send_requests(
            site.url(PROTECTED_PATH), jar.header(PROTECTED_PATH), args.requests)
        print(f"responses: {statuses}")
    finally:
        servers.stop_process(process, signal.SIGTERM, timeout=180)
    text = log.read_text()
    start = text.find("LEAK SUMMARY")
    print(text[start:start + 400] if start >= 0 else f"no leak summary in {log}")


def exit_on_sigterm(signum, frame):
    # SystemExit unwinds the try/finally blocks, which stop every server.
    sys.exit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("rss", "memcheck"))
    parser.add_argument("--module", type=Path, required=True,
                        help="mod_auth_scalekit.so to load")
    parser.add_argument("--requests", type=int, default=2000000,
                        help="authenticated requests to send (default 2,000,000)")
    parser.add_argument("--step", type=int, default=250000,
                        help="rss: requests between two memory readings")
    parser.add_argument("--plain", action="store_true",
                        help="rss: a site without the module, sent a random 2,048-byte "
                             "Cookie header")
    parser.add_argument("--one-login", action="store_true",
                        help="rss: reuse the first session cookie for every step")
    args = parser.parse_args(argv)
    args.module = args.module.resolve()
    # A fixed prefix keeps the secret from starting with "-", which the dev
    # provider's argument parser would take for an option.
    args.client_secret = "sks_bench_" + secrets.token_urlsafe(24)

    workdir = Path(tempfile.mkdtemp(prefix="mod_auth_scalekit_probe."))
    workdir.chmod(0o755)
    ledger = servers.ProcessLedger(workdir / "pids")
    provider = servers.DevProvider(workdir, args.client_secret, ledger)
    try:
        provider.start()
        if args.probe == "rss":
            probe_rss(args, workdir, provider, ledger)
        else:
            probe_memcheck(args, workdir, provider, ledger)
    finally:
        provider.stop()
        if os.environ.get("BENCH_KEEP_WORKDIR") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
