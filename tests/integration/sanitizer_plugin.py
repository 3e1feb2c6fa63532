"""pytest plugin of tests/stages/sanitize.sh: start httpd through a wrapper script.

An ASan build of the module needs the ASan runtime loaded first, before httpd's
own libraries, so sanitize.sh writes a script that sets LD_PRELOAD and the
sanitizer options and then runs apache2. With SK_APACHE_WRAPPER set to that script,
this plugin makes the harness run it in place of /usr/sbin/apache2, so the Python
processes of the tests (pytest, the dev provider, CGI programs) run without the
preload. Load it with `-p sanitizer_plugin` and tests/integration on PYTHONPATH.
"""

import os

import scalekit_harness as harness


def pytest_configure(config):
    wrapper = os.environ.get("SK_APACHE_WRAPPER")
    if wrapper:
        harness.APACHE = wrapper
