// The package's ID Token validation: a key-bound ID Token for this page is accepted; one whose
// cnf, nonce or signature was tampered with, or that is bound to another key, is refused with
// a precise code (issue 24 acceptance), as are the other checks of OIDC Core 3.1.3.7.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateIdToken, KeyboundError } from '../src/index.js';
import { b64u, decodeJws, generateKeyPair, signJws } from '../src/jose.js';

const ISS = 'https://op.example';
const NOW = 1_763_683_200;

async function setup() {
  // the OP's signing key (its public half published in the JWK Set)
  const op = await generateKeyPair();
  const jwks = { keys: [{ ...op.jwk, kid: 'op-1', use: 'sig', alg: 'ES256' }] };
  const page = await generateKeyPair();
  const other = await generateKeyPair();
  const sign = (claims, header = {}) => signJws({ typ: 'dpop+id_token', kid: 'op-1', ...header }, {
    iss: ISS, sub: 'u-1', aud: 'spa', iat: NOW, exp: NOW + 300, nonce: 'n-1', cnf: { jwk: page.jwk }, ...claims,
  }, op.privateKey);
  const checks = { jwks, issuer: ISS, clientId: 'spa', nonce: 'n-1', jkt: page.jkt, now: NOW };
  return { op, page, other, sign, checks };
}

async function refused(token, checks, code) {
  await assert.rejects(validateIdToken(token, checks), (e) => {
    assert.ok(e instanceof KeyboundError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** The token with its payload replaced (the signature kept). */
function withClaims(token, edit) {
  const [h, , s] = token.split('.');
  const claims = decodeJws(token).claims;
  edit(claims);
  return `${h}.${b64u(new TextEncoder().encode(JSON.stringify(claims)))}.${s}`;
}

test('a key-bound ID Token for this page is accepted', async () => {
  const { sign, checks } = await setup();
  const c = await validateIdToken(await sign({}), checks);
  assert.equal(c.sub, 'u-1');
});

test('tampered cnf: refused (the signature no longer holds)', async () => {
  const { sign, checks, other } = await setup();
  const t = withClaims(await sign({}), (c) => { c.cnf.jwk = other.jwk; });
  await refused(t, { ...checks, jkt: other.jkt }, 'id_token_signature');
});

test('tampered nonce: refused', async () => {
  const { sign, checks } = await setup();
  await refused(withClaims(await sign({}), (c) => { c.nonce = 'n-2'; }), checks, 'id_token_signature');
});

test('tampered signature: refused', async () => {
  const { sign, checks } = await setup();
  const t = await sign({});
  const last = t.at(-2) === 'A' ? 'B' : 'A';
  await refused(`${t.slice(0, -2)}${last}${t.at(-1)}`, checks, 'id_token_signature');
  await refused(`${t.split('.').slice(0, 2).join('.')}.`, checks, 'id_token_signature');
});

test('genuinely signed but bound to another key: refused', async () => {
  const { sign, checks, other } = await setup();
  await refused(await sign({ cnf: { jwk: other.jwk } }), checks, 'id_token_key_mismatch');
});

test('genuinely signed with another nonce: refused', async () => {
  const { sign, checks } = await setup();
  await refused(await sign({ nonce: 'someone-else' }), checks, 'id_token_nonce');
  await refused(await sign({ nonce: undefined }), checks, 'id_token_nonce');
});

test('the other checks: typ, iss, aud, azp, exp, iat, cnf, alg', async () => {
  const { sign, checks, op } = await setup();
  await refused(await sign({}, { typ: 'JWT' }), checks, 'id_token_typ');
  await refused(await sign({ iss: 'https://evil.example' }), checks, 'id_token_iss');
  await refused(await sign({ aud: 'another-app' }), checks, 'id_token_aud');
  await refused(await sign({ aud: ['spa', 'another-app'] }), checks, 'id_token_aud');
  await validateIdToken(await sign({ aud: ['spa', 'another-app'], azp: 'spa' }), checks);
  await refused(await sign({ exp: NOW - 61 }), checks, 'id_token_expired');
  await refused(await sign({ iat: NOW + 61 }), checks, 'id_token_iat');
  await refused(await sign({ cnf: undefined }), checks, 'id_token_cnf');
  await refused(await sign({ cnf: { jwk: { ...op.jwk, d: 'private' } } }), checks, 'id_token_cnf');
  // a key the OP does not publish
  await refused(await sign({}, { kid: 'unknown' }), checks, 'id_token_signature');
  // alg none is never a signature
  const t = await sign({});
  const none = `${b64u(new TextEncoder().encode(JSON.stringify({ alg: 'none', typ: 'dpop+id_token' })))}.${t.split('.')[1]}.`;
  await refused(none, checks, 'id_token_signature');
  await refused('not-a-jwt', checks, 'id_token_malformed');
});
