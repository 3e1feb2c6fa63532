#!/usr/bin/python3
"""Show what mod_auth_scalekit passes to a CGI program after a login.

The table lists REMOTE_USER, AUTH_TYPE and one SCALEKIT_CLAIM_<name> variable per ID
token claim, all HTML-escaped.
"""

import html
import os
import sys

names = ["REMOTE_USER", "AUTH_TYPE"]
names += sorted(name for name in os.environ if name.startswith("SCALEKIT_CLAIM_"))

rows = []
for name in names:
    value = os.environ.get(name, "")
    rows.append(f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>")

sys.stdout.reconfigure(encoding="utf-8", errors="replace")
sys.stdout.write(
    "Content-Type: text/html; charset=utf-8\r\n"
    "Cache-Control: no-store\r\n"
    "\r\n"
    "<!DOCTYPE html>\n"
    '<html lang="en">\n'
    '<head>\n<meta charset="utf-8">\n<title>Intranet (CGI)</title>\n</head>\n'
    "<body>\n<h1>Intranet (CGI)</h1>\n<table>\n"
    + "\n".join(rows)
    + "\n</table>\n</body>\n</html>\n"
)
