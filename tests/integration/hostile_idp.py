"""A small OpenID Connect provider for the hostile input tests, run in a thread.

The dev provider (tools/devidp) serves one key, never delays and signs only its
own fixed claims. This provider lets a test choose the ID token's header, claims and
raw payload bytes, signs them with a key of its JWKS, serves a JWKS with two RSA keys
among keys of unsupported types, and can answer the token request late. It logs in
without a login page: the authorization endpoint redirects straight back.

It listens on a free 127.0.0.1 port and stops when stop() is called.
"""

import base64
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Keys of types and uses that the module must skip: EC, symmetric, OKP, and an RSA
# key for encryption that reuses a signing kid.
UNSUPPORTED_JWKS = [
    {
        "kty": "EC",
        "crv": "P-256",
        "kid": "ec-1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    },
    {"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0LWtleQ"},
    {"kty": "OKP", "crv": "Ed25519", "kid": "okp-1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    {"kty": "RSA", "use": "enc", "kid": "hk-2", "n": "AQAB", "e": "AQAB"},
]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value):
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class SigningKey:
    """An RSA 2048 key with its kid."""

    def __init__(self, kid):
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self):
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64url(numbers.n.to_bytes(256, "big")),
            "e": b64url(numbers.e.to_bytes(3, "big")),
        }

    def sign(self, signing_input):
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def compact_jws(key, header, payload):
    """Return header.payload.signature. header is a dict, payload a dict or bytes."""
    payload_bytes = (
        payload
        if isinstance(payload, bytes)
        else json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    )
    signing_input = b64url_json(header) + "." + b64url(payload_bytes)
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


class HostileIdp:
    """The provider's state. Tests set the attributes below before a login.

    token_builder: None for a valid ID token, or a function
        (provider, claims) -> the id_token string, where claims are the valid claims
        of this login (iss, aud, sub, exp, iat, nonce) to change or replace.
    token_body: bytes sent as the whole token response instead, or None.
    token_delay: seconds to wait before the token response.
    extra_claims: claims added to a valid ID token.
    """

    def __init__(self, client_id):
        self.client_id = client_id
        self.keys = [SigningKey("hk-1"), SigningKey("hk-2")]
        self.lock = threading.Lock()
        self.pending = {}  # code -> nonce
        self.server = None
        self.thread = None
        self.issuer = None
        self.reset()

    def reset(self):
        self.token_requests = 0
        self.token_builder = None
        self.token_body = None
        self.token_delay = 0
        self.extra_claims = {}

    def start(self):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.provider = self
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=10)
            self.server = None

    def valid_claims(self, nonce):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": "usr_hostile",
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            "email": "hostile@example.test",
        }
        claims.update(self.extra_claims)
        return claims

    def sign(self, claims, key_index=0, **header):
        """Return an RS256 token of claims by key key_index, kid of that key unless
        header sets kid (None leaves it out)."""
        key = self.keys[key_index]
        fields = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
        fields.update(header)
        fields = {name: value for name, value in fields.items() if value is not None}
        return compact_jws(key, fields, claims)

    def id_token(self, nonce):
        claims = self.valid_claims(nonce)
        if self.token_builder is None:
            return self.sign(claims)
        return self.token_builder(self, claims)

    def discovery(self):
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/keys",
            "end_session_endpoint": self.issuer + "/logout",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self):
        return {"keys": UNSUPPORTED_JWKS[:2] + [self.keys[0].jwk()] + UNSUPPORTED_JWKS[2:] + [self.keys[1].jwk()]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Ignore clients that hang up, such as the module after its HTTP timeout."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        """Requests are not logged: their queries carry codes and states."""

    @property
    def provider(self):
        return self.server.provider

    def send_body(self, status, body, content_type="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, value):
        self.send_body(200, json.dumps(value).encode())

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/.well-known/openid-configuration":
            self.send_json(self.provider.discovery())
        elif url.path == "/keys":
            self.send_json(self.provider.jwks())
        elif url.path == "/authorize":
            code = secrets.token_urlsafe(24)
            with self.provider.lock:
                self.provider.pending[code] = query.get("nonce", "")
            location = query["redirect_uri"] + "?" + urllib.parse.urlencode(
                {"code": code, "state": query.get("state", ""), "iss": self.provider.issuer}
            )
            self.send_body(302, b"", "text/plain", {"Location": location})
        elif url.path == "/logout":
            self.send_body(200, b"signed out", "text/plain")
        else:
            self.send_body(404, b"not found", "text/plain")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if urllib.parse.urlsplit(self.path).path != "/token":
            self.send_body(404, b"not found", "text/plain")
            return
        provider = self.provider
        with provider.lock:
            provider.token_requests += 1
            nonce = provider.pending.pop(form.get("code", ""), None)
        if provider.token_delay:
            time.sleep(provider.token_delay)
        if provider.token_body is not None:
            self.send_body(200, provider.token_body)
            return
        if nonce is None:
            self.send_body(400, b'{"error":"invalid_grant"}')
            return
        self.send_json(
            {
                "access_token": "hostile-access-" + secrets.token_urlsafe(16),
                "id_token": provider.id_token(nonce),
                "token_type": "Bearer",
                "expires_in": 300,
            }
        )
