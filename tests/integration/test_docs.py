"""docs/directives.md against the code: one entry per directive and Require provider.

The directive entries are the level-3 headings (### Name) of the document. Each one
must name a directive of the sk_directives table in src/config.c or a Require provider
registered in src/authz.c (### Require name), and each of those must have an entry.
The Context and Override rows of every entry must match the directive's context in the
code, and the Default row must contain the default that the directive's help text names.
"""

import re

import pytest

import scalekit_harness as harness

CONFIG_C = harness.REPOSITORY / "src" / "config.c"
AUTHZ_C = harness.REPOSITORY / "src" / "authz.c"
DIRECTIVES_MD = harness.REPOSITORY / "docs" / "directives.md"

SERVER_CONTEXT = "server config, virtual host"
MAIN_SERVER_CONTEXT = "server config"
DIRECTORY_CONTEXT = "directory, .htaccess"
ENTRY_FIELDS = ["Description", "Syntax", "Default", "Context"]


def read_directive_table():
    """Return {name: (handler, override flags, help text)} from sk_directives."""
    source = CONFIG_C.read_text()
    start = source.index("const command_rec sk_directives[] = {")
    end = source.index("{ NULL }", start)
    table = source[start:end]
    entries = re.split(r"\bAP_INIT_[A-Z0-9_]+\(", table)[1:]
    directives = {}
    for entry in entries:
        name = re.match(r'\s*"([A-Za-z]+)"\s*,\s*(\w+)', entry)
        assert name, f"cannot read the directive name from: {entry[:80]!r}"
        flags = set(re.findall(r"\b(RSRC_CONF|OR_AUTHCFG|ACCESS_CONF|OR_ALL)\b", entry))
        help_text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', entry)[1:])
        directives[name.group(1)] = (name.group(2), flags, help_text)
    return directives


def handler_checks_global_only(source, handler):
    """Return whether the handler function rejects use inside <VirtualHost>."""
    match = re.search(
        r"^static const char \*" + handler + r"\(.*?^}", source, re.M | re.S
    )
    assert match, f"src/config.c has no handler {handler}"
    return "GLOBAL_ONLY" in match.group(0)


def read_require_providers():
    source = AUTHZ_C.read_text()
    return re.findall(
        r'ap_register_auth_provider\(\s*p,\s*AUTHZ_PROVIDER_GROUP,\s*"([^"]+)"', source
    )


def read_doc_entries():
    """Return {level-3 heading: the entry's text up to the next heading}."""
    text = DIRECTIVES_MD.read_text()
    parts = re.split(r"^(#{1,3}) (.+)$", text, flags=re.M)
    entries = {}
    for level, heading, body in zip(parts[1::3], parts[2::3], parts[3::3]):
        if level == "###":
            assert heading not in entries, f"docs/directives.md repeats ### {heading}"
            entries[heading.strip()] = body
    return entries


def entry_field(body, field):
    """Return the value of the | **field** | value | row, or None."""
    match = re.search(r"^\|\s*\*\*" + field + r"\*\*\s*\|\s*(.*?)\s*\|\s*$", body, re.M)
    return match.group(1) if match else None


DIRECTIVES = read_directive_table()
REQUIRE_HEADINGS = [f"Require {name}" for name in read_require_providers()]
ENTRIES = read_doc_entries()


def test_code_tables_found():
    # A broken parser would make every test below pass on empty lists.
    assert len(DIRECTIVES) >= 30, f"read only {len(DIRECTIVES)} directives"
    assert REQUIRE_HEADINGS == [
        "Require scalekit-claim",
        "Require scalekit-org",
    ], f"Require providers read from authz.c: {REQUIRE_HEADINGS}"


@pytest.mark.parametrize("name", sorted(DIRECTIVES) + REQUIRE_HEADINGS)
def test_code_name_documented(name):
    assert name in ENTRIES, f"docs/directives.md has no heading ### {name}"


@pytest.mark.parametrize("heading", sorted(ENTRIES))
def test_doc_heading_in_code(heading):
    assert (
        heading in DIRECTIVES or heading in REQUIRE_HEADINGS
    ), f"docs/directives.md documents {heading}, which src/config.c and authz.c lack"


@pytest.mark.parametrize("heading", sorted(ENTRIES))
def test_entry_fields_and_example(heading):
    body = ENTRIES[heading]
    for field in ENTRY_FIELDS:
        assert entry_field(body, field), f"### {heading} has no {field} row"
    syntax = entry_field(body, "Syntax")
    keyword = heading.split()[0]
    assert syntax.startswith(
        f"`{keyword}"
    ), f"### {heading}: the syntax {syntax} does not start with {keyword}"
    assert "Example:" in body, f"### {heading} has no example"
    assert "```apache" in body, f"### {heading} has no apache code block"


@pytest.mark.parametrize("name", sorted(DIRECTIVES))
def test_entry_context_matches_code(name):
    handler, flags, _ = DIRECTIVES[name]
    body = ENTRIES.get(name)
    assert body is not None, f"docs/directives.md has no heading ### {name}"
    context = entry_field(body, "Context")
    override = entry_field(body, "Override")

    if "OR_AUTHCFG" in flags:
        assert (
            context == DIRECTORY_CONTEXT
        ), f"### {name}: Context is {context!r}, expected {DIRECTORY_CONTEXT!r}"
        assert (
            override == "AuthConfig"
        ), f"### {name}: Override is {override!r}, expected 'AuthConfig'"
        return

    assert flags == {"RSRC_CONF"}, f"{name}: unexpected override flags {flags}"
    if handler_checks_global_only(CONFIG_C.read_text(), handler):
        expected = MAIN_SERVER_CONTEXT
    else:
        expected = SERVER_CONTEXT
    assert context == expected, f"### {name}: Context is {context!r}, expected {expected!r}"
    assert override is None, f"### {name} has an Override row, but .htaccess rejects it"


@pytest.mark.parametrize("heading", REQUIRE_HEADINGS)
def test_require_entry_context(heading):
    body = ENTRIES.get(heading)
    assert body is not None, f"docs/directives.md has no heading ### {heading}"
    context = entry_field(body, "Context")
    assert (
        context == DIRECTORY_CONTEXT
    ), f"### {heading}: Context is {context!r}, expected {DIRECTORY_CONTEXT!r}"


@pytest.mark.parametrize(
    "name",
    sorted(name for name, (_, _, text) in DIRECTIVES.items() if "(default " in text),
)
def test_entry_default_matches_help(name):
    help_text = DIRECTIVES[name][2]
    default = re.search(r"\(default ([^)\s]+)", help_text).group(1)
    documented = entry_field(ENTRIES.get(name, ""), "Default")

    assert documented is not None, f"### {name} has no Default row"
    assert (
        default in documented
    ), f"### {name}: Default is {documented!r}, but the help text says {default}"
