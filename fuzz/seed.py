#!/usr/bin/env python3
"""Write the seed corpora (fuzz/corpus/<target>/) from the spec vectors in testdata/vectors
and a few well-formed requests per surface. Run from the repository root; the result is
committed, so CI starts every target from the same seeds."""
import base64, json, os, urllib.parse

V = "testdata/vectors"
def vec(name): return json.load(open(os.path.join(V, name)))
def b64d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def write(target, name, data):
    d = os.path.join("fuzz/corpus", target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data if isinstance(data, bytes) else data.encode())

dpop = vec("rfc9449-dpop.json")
kb = vec("key-binding-draft02.json")
chain = vec("identity-chaining-jwt.json")
thumb = vec("rfc7638-thumbprint.json")
tb = vec("rfc8473-token-binding.json")
pres = vec("presentation.json")
# the proofs are objects ({"proof": …, the facts}); the seeds are the proofs themselves
for d, keys in ((dpop, ("token_request_proof", "resource_request_proof")),
                (kb, ("code_proof", "device_proof", "refresh_proof"))):
    for k in keys:
        d[k] = d[k]["proof"]

write("jws", "rfc9449-token-proof", dpop["token_request_proof"])
write("jws", "identity-chaining", chain["jwt"])
write("jws", "kb-code-proof", kb["code_proof"])
write("jws", "id-token", pres["id_token"])
write("jwk", "rfc7638", json.dumps(thumb["jwk"]))
write("jwk", "rfc9449", json.dumps(dpop["jwk"]))
write("jwk", "jwks", json.dumps(pres["jwks"]))
write("dpop", "rfc9449-token-proof", dpop["token_request_proof"])
write("dpop", "kb-code-proof", kb["code_proof"])
write("dpop", "kb-refresh-proof", kb["refresh_proof"])
write("token_binding", "rfc8473", b64d(tb["header"]))

q = lambda pairs: urllib.parse.urlencode(pairs)
base = [("response_type", "code"), ("client_id", "pub"),
        ("redirect_uri", "http://127.0.0.1:9/cb"), ("scope", "openid bound_key"),
        ("state", "s"), ("nonce", "n"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"), ("dpop_jkt", dpop["jkt"])]
write("authorize", "code-signed-in", b"\x03" + q(base).encode())
write("authorize", "code-anonymous", b"\x00" + q(base).encode())
write("authorize", "prompt-none", b"\x01" + q(base + [("prompt", "none"), ("max_age", "0")]).encode())
write("authorize", "form-post", b"\x01" + q(base + [("response_mode", "form_post")]).encode())
write("authorize", "hybrid", b"\x01" + q([("response_type", "code id_token")] + base[1:]).encode())
write("authorize", "request-object", b"\x01" + q(base + [("request", chain["jwt"])]).encode())
write("authorize", "login-form", b"\x02" + q(base + [("username", "alice"), ("password", "x"), ("csrf", "c")]).encode())

code = [("grant_type", "authorization_code"), ("code", kb["code"]),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), ("client_id", "pub")]
basic = "Basic " + base64.b64encode(b"conf:fuzz-secret").decode()
write("token_form", "code-dpop", kb["code_proof"] + "\0\0" + q(code))
write("token_form", "code-basic", "\0" + basic + "\0" + q(code[:-1]))
write("token_form", "refresh", kb["refresh_proof"] + "\0\0" + q([("grant_type", "refresh_token"), ("refresh_token", "rt"), ("client_id", "pub")]))
write("token_form", "device", kb["device_proof"] + "\0\0" + q([("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", kb["device_code"]), ("client_id", "pub")]))
write("token_form", "exchange", "\0" + basic + "\0" + q([("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("subject_token", pres["id_token"]), ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), ("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"), ("audience", "https://as.example")]))
write("token_form", "jwt-bearer", dpop["token_request_proof"] + "\0" + basic + "\0" + q([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", chain["jwt"])]))
write("token_form", "client-assertion", "\0\0" + q(code[:-1] + [("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", chain["jwt"])]))

write("register", "public", json.dumps({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none", "client_name": "App"}))
write("register", "confidential", json.dumps({"redirect_uris": ["https://rp.example/cb"], "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "jwks": pres["jwks"], "token_endpoint_auth_method": "private_key_jwt", "resources": ["https://api.example/"]}))

write("resource", "dpop", "DPoP " + pres["id_token"] + "\0" + dpop["resource_request_proof"])
write("resource", "bearer", "Bearer " + pres["id_token"])

write("session_cookie", "session", "kb_session=fuzz-session-0123456789abcdef0123456789abcdef")
write("session_cookie", "both", "kb_csrf=0123456789abcdef0123456789abcdef01; kb_session=x; other=1")

write("forms", "user-code", q([("user_code", "BCDF-GHJK"), ("csrf", "c"), ("action", "approve")]))
write("forms", "revoke", q([("token", "rt"), ("token_type_hint", "refresh_token")]))
write("forms", "par", q([("response_type", "code"), ("client_id", "conf"), ("redirect_uri", "http://127.0.0.1:9/cb"), ("scope", "openid bound_key"), ("state", "s"), ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), ("code_challenge_method", "S256"), ("resource", "https://api.example/")]))
write("forms", "device-authorization", q([("client_id", "conf"), ("scope", "openid bound_key"), ("dpop_jkt", dpop["jkt"])]))
