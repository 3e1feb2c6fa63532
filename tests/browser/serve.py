#!/usr/bin/python3
"""Start the dev identity provider and an httpd with mod_auth_scalekit for a browser.

    /usr/bin/python3 tests/browser/serve.py [COMMAND ...]

Both servers listen on free 127.0.0.1 ports, set up as in the pytest integration tests
(tests/integration/scalekit_harness.py), with /intranet/ behind AuthType Scalekit. The
script prints one JSON line {"base_url": ..., "idp_url": ...}. With a command, it runs
the command with SCALEKIT_BASE_URL and SCALEKIT_IDP_URL set, then stops both servers
and exits with the command's exit status. Without one, it serves until Ctrl-C or
SIGTERM.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scalekit_harness as harness  # noqa: E402

BIND_ATTEMPTS = 3


def start_httpd(root, issuer, client_secret):
    """Start httpd under root, with a new port after another process took the port."""
    for attempt in range(BIND_ATTEMPTS):
        server = harness.Httpd(root, harness.SiteConfig(issuer, client_secret))
        try:
            server.start()
            return server
        except harness.PortInUseError:
            if attempt == BIND_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def wait_for_stop_signal():
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    stop.wait()


def main(command):
    client_secret = "sks_browser_" + secrets.token_urlsafe(24)
    idp_dir = Path(tempfile.mkdtemp(prefix="mod-auth-scalekit-browser-idp-"))
    root = harness.make_tree("mod-auth-scalekit-browser-")
    provider = harness.DevIdp(idp_dir, client_secret, harness.SecretLedger())
    server = None
    try:
        provider.start()
        server = start_httpd(root, provider.issuer, client_secret)
        urls = {"base_url": server.base, "idp_url": provider.issuer}
        print(json.dumps(urls), flush=True)

        if not command:
            wait_for_stop_signal()
            return 0
        environment = dict(
            os.environ, SCALEKIT_BASE_URL=server.base, SCALEKIT_IDP_URL=provider.issuer
        )
        status = subprocess.run(command, env=environment).returncode
        fatal = server.new_fatal_log_lines()
        if fatal:
            print("httpd error log has fatal lines:\n" + "\n".join(fatal), file=sys.stderr)
            status = status or 1
        return status
    finally:
        if server is not None:
            server.stop()
        provider.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(idp_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
