// The small piece of JOSE a key-bound single-page app needs, on WebCrypto only: base64url,
// compact JWS signing with a non-extractable ECDSA P-256 key, JWS verification against a JWK
// Set, RFC 7638 thumbprints, and DPoP proofs (RFC 9449 §4.2, with Key Binding's `c_s256`).
// No dependency: a page that holds its own key should not also hold someone else's JOSE code.

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();

/** base64url without padding of bytes (Uint8Array or ArrayBuffer). */
export function b64u(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/** Bytes of a base64url string; throws on anything else. */
export function fromB64u(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) throw new TypeError('not base64url');
  const bin = atob(s.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const json = (o) => b64u(encoder.encode(JSON.stringify(o)));

/** base64url(SHA-256(ASCII(s))): `ath`, `c_s256`, PKCE S256. */
export async function sha256b64u(s) {
  return b64u(await subtle().digest('SHA-256', encoder.encode(s)));
}

/** Random base64url of `n` bytes. */
export function random(n = 32) {
  return b64u(globalThis.crypto.getRandomValues(new Uint8Array(n)));
}

/** RFC 7638 thumbprint of a public EC P-256 JWK (members in lexicographic order). */
export async function thumbprint(jwk) {
  if (jwk?.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new TypeError('only public EC P-256 keys are thumbprinted here');
  }
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64u(await subtle().digest('SHA-256', encoder.encode(canonical)));
}

/** A new non-extractable ECDSA P-256 key pair: the page can sign with it, nobody can read it. */
export async function generateKeyPair() {
  const pair = await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const { kty, crv, x, y } = await subtle().exportKey('jwk', pair.publicKey);
  const jwk = { kty, crv, x, y };
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, jwk, jkt: await thumbprint(jwk) };
}

/** Compact JWS, ES256, by `privateKey`. */
export async function signJws(header, payload, privateKey) {
  const input = `${json({ ...header, alg: 'ES256' })}.${json(payload)}`;
  const sig = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, encoder.encode(input));
  return `${input}.${b64u(sig)}`;
}

/** The request URL as `htu` (RFC 9449 §4.2): without query and fragment. */
export function htu(url) {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/**
 * A DPoP proof (RFC 9449 §4.2) by `keys` for `htm` at `url`, at `now` (seconds): `ath` over
 * `accessToken`, Key Binding's `c_s256` over `code`, the server's `nonce`, each when given.
 */
export async function dpopProof(keys, { htm, url, now, nonce, accessToken, code }) {
  const payload = { jti: random(16), htm, htu: htu(url), iat: now };
  if (nonce) payload.nonce = nonce;
  if (accessToken) payload.ath = await sha256b64u(accessToken);
  if (code) payload.c_s256 = await sha256b64u(code);
  return signJws({ typ: 'dpop+jwt', jwk: keys.jwk }, payload, keys.privateKey);
}

/** Header and claims of a compact JWS, unverified; `null` when it is not one. */
export function decodeJws(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return null;
  try {
    const dec = new TextDecoder('utf-8', { fatal: true });
    return {
      header: JSON.parse(dec.decode(fromB64u(parts[0]))),
      claims: JSON.parse(dec.decode(fromB64u(parts[1]))),
      input: `${parts[0]}.${parts[1]}`,
      signature: fromB64u(parts[2]),
    };
  } catch {
    return null;
  }
}

// the signature algorithms an OP may use for ID Tokens, as WebCrypto names them
const ALGS = {
  ES256: { import: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' } },
  ES384: { import: { name: 'ECDSA', namedCurve: 'P-384' }, verify: { name: 'ECDSA', hash: 'SHA-384' } },
  RS256: { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, verify: { name: 'RSASSA-PKCS1-v1_5' } },
  PS256: { import: { name: 'RSA-PSS', hash: 'SHA-256' }, verify: { name: 'RSA-PSS', saltLength: 32 } },
};

/**
 * Verify a decoded JWS against a JWK Set: a key with its `kid` (or every key of the right type
 * when it names none) must verify the signature. `alg: none`, HMAC and unknown algorithms are
 * never accepted.
 */
export async function verifyJws(decoded, jwks) {
  const alg = ALGS[decoded.header.alg];
  if (!alg) return false;
  const kty = decoded.header.alg.startsWith('ES') ? 'EC' : 'RSA';
  const keys = (jwks?.keys ?? []).filter((k) => k.kty === kty
    && (decoded.header.kid === undefined || k.kid === decoded.header.kid)
    && (k.use === undefined || k.use === 'sig'));
  for (const jwk of keys) {
    try {
      const { d, p, q, dp, dq, qi, key_ops, ...pub } = jwk; // never import private members
      const key = await subtle().importKey('jwk', { ...pub, ext: true }, alg.import, false, ['verify']);
      if (await subtle().verify(alg.verify, key, decoded.signature, encoder.encode(decoded.input))) return true;
    } catch { /* not this key */ }
  }
  return false;
}
