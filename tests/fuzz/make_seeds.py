#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets to tests/fuzz/corpus/<target>/.

Run with Debian's interpreter, which has python3-cryptography:

    /usr/bin/python3 tests/fuzz/make_seeds.py

Seeds are small, named after what they contain, and the same on every run: RS256
signatures are deterministic, and sealed values use a nonce derived from the seed
name. Files that the fuzzer saved (crash-*, timeout-*, ...) are left alone.

The first byte of a fuzz_jws, fuzz_seal and fuzz_url seed selects the target's mode
(modulo 4), written as an ASCII digit so the seeds stay readable.
"""

import base64
import hashlib
import json
import re
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS = FUZZ_DIR / "corpus"

# The constants of fuzz_jws.c and fuzz_seal.c.
ISSUER = "https://idp.example.test"
CLIENT_ID = "skc_fuzz"
NONCE = "fuzz-nonce-0123456789"
NOW = 1700000000
SESSION_SECRET = b"fuzz-session-secret-0123456789abcdef"
COOKIE = "scalekit_session"
CHUNK_SIZE = 3800  # CHUNK_SIZE of src/session.c


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value):
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def read_keys():
    """Return the private keys that fuzz_keys.h embeds, as (key 1, key 2)."""
    header = (FUZZ_DIR / "fuzz_keys.h").read_text()
    keys = []
    for name in ("fuzz_key1_pem", "fuzz_key2_pem"):
        block = re.search(name + r"\[\] =\n(.*?);", header, re.S).group(1)
        pem = "\n".join(re.findall(r'"(.*?)\\n"', block)) + "\n"
        keys.append(serialization.load_pem_private_key(pem.encode(), None))
    return keys


def sign(key, header, payload):
    """Return a compact JWS of header and payload (dicts or raw bytes) signed RS256."""
    parts = [
        b64url(part) if isinstance(part, bytes) else b64url_json(part)
        for part in (header, payload)
    ]
    signing_input = ".".join(parts).encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return ".".join(parts + [b64url(signature)])


def valid_claims(**changes):
    claims = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "usr_fuzz",
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": NONCE,
        "email": "fuzz@example.test",
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    (directory / name).write_bytes(data)


# --- fuzz_jws ---------------------------------------------------------------------


def jws_seeds(key1, key2):
    kid1 = {"alg": "RS256", "kid": "fuzz-key-1", "typ": "JWT"}
    tokens = {
        "valid_kid1": sign(key1, kid1, valid_claims()),
        "valid_kid2": sign(key2, {"alg": "RS256", "kid": "fuzz-key-2"}, valid_claims()),
        "valid_no_kid": sign(key1, {"alg": "RS256"}, valid_claims()),
        "aud_array_azp": sign(
            key1, kid1, valid_claims(aud=[CLIENT_ID, "other"], azp=CLIENT_ID)
        ),
        "expired": sign(key1, kid1, valid_claims(exp=NOW - 3600)),
        "iat_future": sign(key1, kid1, valid_claims(iat=NOW + 3600)),
        "exp_milliseconds": sign(key1, kid1, valid_claims(exp=(NOW + 300) * 1000)),
        "exp_after_2038": sign(key1, kid1, valid_claims(exp=4102444800)),
        "exp_string": sign(key1, kid1, valid_claims(exp=str(NOW + 300))),
        "aud_number": sign(key1, kid1, valid_claims(aud=42)),
        "aud_object": sign(key1, kid1, valid_claims(aud={"id": CLIENT_ID})),
        "wrong_key_for_kid": sign(key2, kid1, valid_claims()),
        "kid_path": sign(key1, {"alg": "RS256", "kid": "../../../etc/passwd"}, valid_claims()),
        "kid_sql": sign(key1, {"alg": "RS256", "kid": "x' OR '1'='1"}, valid_claims()),
        "kid_number": sign(key1, {"alg": "RS256", "kid": 1}, valid_claims()),
        "crit_header": sign(key1, dict(kid1, crit=["exp"]), valid_claims()),
        "payload_not_json": sign(key1, kid1, b"not json at all"),
        "payload_array": sign(key1, kid1, b'["iss"]'),
        "payload_duplicate_keys": sign(
            key1,
            kid1,
            b'{"iss":"' + ISSUER.encode() + b'","sub":"a","sub":"b","aud":"skc_fuzz",'
            b'"exp":1700000300,"iat":1700000000,"nonce":"' + NONCE.encode() + b'"}',
        ),
        "header_duplicate_alg": sign(
            key1, b'{"alg":"none","alg":"RS256","kid":"fuzz-key-1"}', valid_claims()
        ),
        "alg_none": b64url_json({"alg": "none"}) + "." + b64url_json(valid_claims()) + ".",
        "alg_none_kid": b64url_json({"alg": "none", "kid": "fuzz-key-1"})
        + "."
        + b64url_json(valid_claims())
        + ".",
    }
    hs_input = (b64url_json({"alg": "HS256", "kid": "fuzz-key-1"}) + "." + b64url_json(valid_claims())).encode()
    mac = hmac.HMAC(b"sks_client_secret", hashes.SHA256())
    mac.update(hs_input)
    tokens["hs256_client_secret"] = hs_input.decode() + "." + b64url(mac.finalize())

    valid = tokens["valid_kid1"]
    header, payload, signature = valid.split(".")
    tokens["padding"] = header + "==." + payload + "." + signature
    tokens["whitespace"] = header + " ." + payload + "\n." + signature
    tokens["invalid_char"] = header + "." + payload + "." + signature[:-2] + "+/"
    tokens["stray_bits"] = header + "." + payload + "." + signature[:-1] + "B"
    tokens["jwe_five_parts"] = ".".join(
        [b64url_json({"alg": "RSA-OAEP", "enc": "A256GCM"}), "a", "b", "c", "d"]
    )
    tokens["four_parts"] = valid + ".x"
    tokens["empty_parts"] = ".."
    tokens["big_100k"] = sign(key1, kid1, valid_claims(groups=["g" * 100] * 1000))
    tokens["just_under_limit"] = sign(key1, kid1, valid_claims(pad="p" * 47000))

    for name, token in tokens.items():
        write("fuzz_jws", "token_" + name, "0" + token)

    # Mode 1: header and payload that the target signs itself.
    signed = {
        "valid": (kid1, valid_claims()),
        "kid_absent": ({"alg": "RS256"}, valid_claims()),
        "kid_other": ({"alg": "RS256", "kid": "fuzz-key-2"}, valid_claims()),
        "nbf_future": (kid1, valid_claims(nbf=NOW + 3600)),
        "multi_aud_no_azp": (kid1, valid_claims(aud=[CLIENT_ID, "x"])),
        "sub_empty": (kid1, valid_claims(sub="")),
        "nonce_missing": (kid1, valid_claims(nonce=None)),
        "exp_negative": (kid1, valid_claims(exp=-1)),
        "exp_huge": (kid1, valid_claims(exp=1e308)),
    }
    for name, (head, claims) in signed.items():
        write("fuzz_jws", "signed_" + name, "1" + json.dumps(head) + "\n" + json.dumps(claims))
    write("fuzz_jws", "signed_payload_trailing_garbage", "1" + json.dumps(kid1) + "\n{} x")

    for name, text in {
        "header": header,
        "one_char": "A",
        "padding": "QQ==",
        "stray_bits": "QR",
        "standard_alphabet": "a+b/",
        "whitespace": "QUJD RA",
    }.items():
        write("fuzz_jws", "b64_decode_" + name, "2" + text)
    write("fuzz_jws", "b64_roundtrip_bytes", b"3" + bytes(range(256)))


# --- fuzz_seal --------------------------------------------------------------------


def session_key():
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"mod_auth_scalekit",
        info=b"session cookie v1",
    ).derive(SESSION_SECRET)


def seal(name, plaintext, aad=COOKIE, version=1):
    """Seal like sk_seal, with a nonce derived from name so the seed is stable."""
    nonce = hashlib.sha256(name.encode()).digest()[:12]
    sealed = AESGCM(session_key()).encrypt(nonce, plaintext, aad.encode())
    return b64url(bytes([version]) + nonce + sealed)


def session_json(claims, **changes):
    doc = {
        "v": 1,
        "sid": "fuzz-session-id",
        "iat": NOW,
        "seen": NOW,
        "exp": 4102444800,
        "claims": claims,
    }
    doc.update(changes)
    return json.dumps(doc, separators=(",", ":")).encode()


def seal_seeds():
    small = seal("small", session_json({"sub": "usr_fuzz"}))
    big_claims = {
        "sub": "usr_fuzz",
        "groups": [f"group-{i:03d}-engineering-and-operations" for i in range(300)],
    }
    big = seal("big", session_json(big_claims))
    chunks = [big[i : i + CHUNK_SIZE] for i in range(0, len(big), CHUNK_SIZE)]
    assert len(chunks) >= 3, len(chunks)

    write("fuzz_seal", "unseal_valid", "0" + small)
    write("fuzz_seal", "unseal_tampered", "0" + small[:20] + ("A" if small[20] != "A" else "B") + small[21:])
    write("fuzz_seal", "unseal_truncated", "0" + small[:-4])
    write("fuzz_seal", "unseal_version_2", "0" + seal("v2", b"{}", version=2))
    write("fuzz_seal", "unseal_other_aad", "0" + seal("aad", b"{}", aad="scalekit_state_0"))
    write("fuzz_seal", "unseal_too_short", "0" + b64url(b"\x01" + b"\x00" * 20))
    write("fuzz_seal", "roundtrip_json", "1" + session_json({"sub": "x"}).decode())
    write("fuzz_seal", "roundtrip_binary", b"1" + bytes(range(256)))

    def names(order):
        return "; ".join(f"{COOKIE}_{i + 1}={chunks[k]}" for i, k in enumerate(order))

    in_order = list(range(len(chunks)))
    count = f"{COOKIE}=chunks:{len(chunks)}"
    headers = {
        "single": f"{COOKIE}={small}",
        "chunked": f"{count}; {names(in_order)}",
        "chunked_reordered": f"{count}; {names([1, 0] + in_order[2:])}",
        "chunked_split_headers": f"{count}\n{names(in_order)}",
        "chunked_truncated": f"{count}; {names(in_order)[:-10]}",
        "chunked_missing_last": f"{count}; {names(in_order[:-1])}",
        "chunk_count_huge": f"{COOKIE}=chunks:99999999; {names(in_order)}",
        "chunk_count_zero": f"{COOKIE}=chunks:0",
        "chunk_count_nine": f"{COOKIE}=chunks:9; {names(in_order)}",
        "chunk_count_negative": f"{COOKIE}=chunks:-1",
        "same_cookie_twice_bad_first": f"{COOKIE}=garbage; {COOKIE}={small}",
        "same_cookie_twice_good_first": f"{COOKIE}={small}; {COOKIE}=garbage",
        "hundreds_of_cookies": "; ".join(f"c{i}=v{i}" for i in range(400)) + f"; {COOKIE}={small}",
        "layout_v2": f"{COOKIE}=" + seal("layout", session_json({"sub": "x"}, v=2)),
        "layout_no_claims": f"{COOKIE}=" + seal("noclaims", b'{"v":1,"sid":"s","iat":1,"exp":4102444800}'),
        "expired": f"{COOKIE}=" + seal("expired", session_json({"sub": "x"}, exp=NOW)),
        "exp_string": f"{COOKIE}=" + seal("expstr", session_json({"sub": "x"}, exp="4102444800")),
        "not_json": f"{COOKIE}=" + seal("notjson", b"\xff\xfe not json"),
        "empty_value": f"{COOKIE}=",
        "no_equals": COOKIE,
        "prefix_name": f"{COOKIE}x={small}; x{COOKIE}={small}",
    }
    for name, header in headers.items():
        write("fuzz_seal", "cookies_" + name, "2" + header)
    write("fuzz_seal", "cookies_non_utf8", b"2" + COOKIE.encode() + b"=\xff\xfe\x80; a=\xc0\xaf")

    # Mode 3 programs: op = byte >> 5, arg = byte & 31, and ops 2 to 4 read the
    # piece index from the next byte. Op 0 sets the chunk count, op 2 adds chunk
    # cookie number arg % 10 with piece next % number of pieces.
    def op(code, arg=0, *extra):
        return bytes([(code << 5) | arg, *extra])

    n = len(chunks)
    ordered = op(0, n) + b"".join(op(2, i + 1, i) for i in range(n))
    write("fuzz_seal", "plan_in_order", b"3" + ordered)
    write("fuzz_seal", "plan_swapped", b"3" + op(0, n) + op(2, 1, 1) + op(2, 2, 0) + b"".join(op(2, i + 1, i) for i in range(2, n)))
    write("fuzz_seal", "plan_whole_value", b"3" + op(1))
    write("fuzz_seal", "plan_cut_chunk", b"3" + op(0, n) + op(3, 1, 0, 5) + b"".join(op(2, i + 1, i) for i in range(1, n)))
    write("fuzz_seal", "plan_flipped", b"3" + op(0, n) + op(4, 1, 0, 9) + b"".join(op(2, i + 1, i) for i in range(1, n)))
    write("fuzz_seal", "plan_split_headers", b"3" + op(0, n) + op(6) + b"".join(op(2, i + 1, i) + op(6) for i in range(n)))
    write("fuzz_seal", "plan_duplicate_bad_first", b"3" + op(0, n) + op(2, 1, 1) + ordered[1:])


# --- fuzz_discovery ---------------------------------------------------------------


def discovery_seeds(key1):
    base = "https://idp.example.test"
    discovery = {
        "issuer": base,
        "authorization_endpoint": base + "/oauth/authorize",
        "token_endpoint": base + "/oauth/token",
        "jwks_uri": base + "/keys",
        "userinfo_endpoint": base + "/userinfo",
        "end_session_endpoint": base + "/oidc/logout",
    }

    def variant(**changes):
        doc = dict(discovery)
        for name, value in changes.items():
            if value is None:
                doc.pop(name)
            else:
                doc[name] = value
        return json.dumps(doc)

    numbers = key1.public_key().public_numbers()
    n = b64url(numbers.n.to_bytes(256, "big"))
    rsa_jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1", "n": n, "e": "AQAB"}
    seeds = {
        "discovery_valid": json.dumps(discovery),
        "discovery_other_issuer": variant(issuer="https://evil.example.test"),
        "discovery_issuer_trailing_slash": variant(issuer=base + "/"),
        "discovery_issuer_number": variant(issuer=1),
        "discovery_javascript_endpoint": variant(authorization_endpoint="javascript:alert(1)"),
        "discovery_userinfo_in_url": variant(token_endpoint="https://user@idp.example.test/t"),
        "discovery_no_jwks_uri": variant(jwks_uri=None),
        "discovery_fragment": variant(jwks_uri=base + "/keys#x"),
        "jwks_valid": json.dumps({"keys": [rsa_jwk]}),
        "jwks_mixed_types": json.dumps(
            {
                "keys": [
                    {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
                    {"kty": "oct", "k": "c2VjcmV0"},
                    {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
                    dict(rsa_jwk, use="enc"),
                    dict(rsa_jwk, alg="RS512"),
                    dict(rsa_jwk, n="AQAB"),
                    rsa_jwk,
                ]
            }
        ),
        "jwks_only_unsupported": json.dumps({"keys": [{"kty": "EC", "crv": "P-256"}]}),
        "jwks_40_keys": json.dumps({"keys": [dict(rsa_jwk, kid=f"k{i}") for i in range(40)]}),
        "jwks_keys_object": json.dumps({"keys": {"kty": "RSA"}}),
        "jwks_n_padded": json.dumps({"keys": [dict(rsa_jwk, n=n + "==")]}),
        "jwks_e_huge": json.dumps({"keys": [dict(rsa_jwk, e=b64url(b"\xff" * 300))]}),
        "token_valid": json.dumps(
            {"id_token": "eyJ.x.y", "access_token": "a", "token_type": "Bearer", "expires_in": 300}
        ),
        "token_error": json.dumps({"error": "invalid_grant", "error_description": "<b>bad</b>"}),
        "token_html": "<!DOCTYPE html><html><body>Bad gateway</body></html>",
        "token_truncated": '{"id_token":"eyJ.x.y","access_tok',
        "token_expires_string": json.dumps({"id_token": "a.b.c", "expires_in": "300"}),
        "token_expires_negative": json.dumps({"id_token": "a.b.c", "expires_in": -1}),
        "token_expires_huge": '{"id_token":"a.b.c","expires_in":1e308}',
        "token_type_mac": json.dumps({"id_token": "a.b.c", "token_type": "mac"}),
        "token_id_token_empty": json.dumps({"id_token": ""}),
        "token_id_token_number": json.dumps({"id_token": 5}),
        "token_trailing_garbage": '{"id_token":"a.b.c"} {}',
        "token_duplicate_keys": '{"id_token":"a.b.c","id_token":""}',
        "deep_nesting": "[" * 2000 + "]" * 2000,
        "empty": "",
        "nul_inside": '{"id_token":"a\u0000b"}',
    }
    for name, text in seeds.items():
        write("fuzz_discovery", name, text)
    write("fuzz_discovery", "non_utf8", b'{"issuer":"\xff\xfe","id_token":"\xc0\xaf"}')


# --- fuzz_claims ------------------------------------------------------------------


def claims_seeds():
    seeds = {
        "typical": {
            "sub": "usr_fuzz",
            "email": "fuzz@example.test",
            "email_verified": True,
            "groups": ["admins", "dev,ops"],
            "org": {"id": "org_1", "name": "Acme"},
            "updated_at": 1700000000,
            "nothing": None,
        },
        "control_characters": {
            "name": "line1\r\nSet-Cookie: x=1",
            "nul": "a\u0000b",
            "tab": "a\tb",
            "del": "a\u007fb",
            "c1": "a\u0085b\u009b",
            "escape": "\u001b[31mred",
        },
        "names_odd": {
            "e-mail": "a",
            "x.y": "b",
            "with space": "c",
            "ünïcödé": "d",
            "名前": "e",
            "": "empty name",
            "SCALEKIT_CLAIM_EMAIL": "f",
        },
        "numbers": {"big": 1e308, "neg_zero": -0.0, "int": 9007199254740993, "small": 5e-324},
        "nested_arrays": {"mixed": [1, "a", None, {"b": [True]}], "empty": [], "deep": [[[["x"]]]]},
        "long_string": {"big": "x" * 65536},
        "long_multibyte": {"big": "é" * 9000},
        "lone_surrogate": None,
    }
    for name, value in seeds.items():
        if value is not None:
            write("fuzz_claims", name, json.dumps(value, ensure_ascii=False))
    write("fuzz_claims", "lone_surrogate", '{"s":"\\ud800x","t":"\\udc00"}')
    write("fuzz_claims", "non_utf8", b'{"name":"\xff\xfe\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"}')
    write("fuzz_claims", "cut_at_limit", '{"v":"' + "a" * 16383 + "é" + '"}')
    write("fuzz_claims", "not_object", '"just a string"')


# --- fuzz_url ---------------------------------------------------------------------


def url_seeds():
    # First byte: "0" origin https://app.example.test, "1" origin
    # http://127.0.0.1:8080, "2" and "3" the same with allowed hosts.
    targets = {
        "root": "0/",
        "path_query": "0/intranet/?a=b#frag",
        "same_origin": "0https://app.example.test/intranet/",
        "same_origin_port": "0https://app.example.test:443/x",
        "same_origin_upper": "0HTTPS://APP.EXAMPLE.TEST/x",
        "other_scheme_same_host": "0http://app.example.test/x",
        "loopback_origin": "1http://127.0.0.1:8080/x",
        "loopback_other_port": "1http://127.0.0.1:8081/x",
        "double_slash": "0//evil.example/",
        "slash_backslash": "0/\\evil.example/",
        "backslashes": "0\\\\evil.example/",
        "tab_inside": "0/\t/evil.example/",
        "newline_inside": "0/\n/evil.example/",
        "encoded_slashes": "0/%2F%2Fevil.example/",
        "encoded_slash_lower": "0/%2fevil.example/",
        "encoded_backslash": "0/%5Cevil.example/",
        "encoded_tab": "0/%09/evil.example/",
        "https_no_slashes": "0https:evil.example",
        "https_one_slash": "0https:/evil.example",
        "javascript": "0javascript:alert(1)",
        "data": "0data:text/html,<script>alert(1)</script>",
        "userinfo": "0https://good@evil.example/",
        "userinfo_origin_host": "0https://app.example.test@evil.example/",
        "userinfo_password": "0https://app.example.test:443@evil.example/",
        "encoded_at": "0https://app.example.test%40evil.example/",
        "empty_port": "0https://app.example.test:/x",
        "double_port": "0https://app.example.test:443:80/x",
        "allowed_host": "2https://partner.example.test/x",
        "allowed_host_port": "2https://cdn.example.test:8443/x",
        "allowed_host_wrong_port": "2https://cdn.example.test/x",
        "protocol_relative_allowed": "2//partner.example.test/x",
        "relative_no_slash": "0intranet/",
        "dot_segments": "0/../../etc/passwd",
        "percent_invalid": "0/%zz",
        "unicode_path": "0/ünïcödé",
        "port_wraps_modulo_65536": "0https://app.example.test:65979/x",
        "port_negative": "0https://app.example.test:-65093/x",
        "port_plus_sign": "0https://app.example.test:+443/x",
        "port_plus_sign_allowed_host": "2http://cdn.example.test:+8443/",
        "port_leading_zero": "0https://app.example.test:0443/x",
    }
    for name, text in targets.items():
        write("fuzz_url", name, text)


def main():
    key1, key2 = read_keys()
    jws_seeds(key1, key2)
    seal_seeds()
    discovery_seeds(key1)
    claims_seeds()
    url_seeds()
    for target in sorted(CORPUS.iterdir()):
        print(f"{target.name}: {len(list(target.iterdir()))} files")


if __name__ == "__main__":
    main()
