// Interop, request objects (RFC 9101): openid-client signs the authorization request as a JWT
// with the client's key (buildAuthorizationUrlWithJAR), the browser signs in through it, and
// openid-client redeems the code authenticating with private_key_jwt by the same key; then the
// same request object pushed to /par (buildAuthorizationUrlWithPAR with a signed request).
// A request object signed by another key is refused with invalid_request_object.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from 'openid-client';
import * as jose from 'jose';
import { startOp, admin, signIn } from './common.mjs';

const REDIRECT = 'http://127.0.0.1:9/cb';
let op;
let key;

before(async () => {
  const pair = await jose.generateKeyPair('ES256', { extractable: true });
  key = { key: pair.privateKey, kid: 'ck1' };
  const jwk = { ...(await jose.exportJWK(pair.publicKey)), kid: 'ck1', alg: 'ES256', use: 'sig' };
  const file = join(mkdtempSync(join(tmpdir(), 'keybound-jar-')), 'jwks.json');
  writeFileSync(file, JSON.stringify({ keys: [jwk] }));
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'jar', '--auth-method', 'private_key_jwt',
      '--jwks', file, '--redirect-uri', REDIRECT]);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
});
after(() => op?.stop());

const insecure = { execute: [client.allowInsecureRequests] };

test('openid-client signs the request (JAR), by value and pushed; another key is refused', async () => {
  const config = await client.discovery(new URL(op.issuer), 'jar', undefined, client.PrivateKeyJwt(key), insecure);
  assert.equal(config.serverMetadata().request_parameter_supported, true);
  const verifier = client.randomPKCECodeVerifier();
  const params = {
    redirect_uri: REDIRECT,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: 'st-jar',
  };
  const url = await client.buildAuthorizationUrlWithJAR(config, params, key);
  assert.ok(url.searchParams.get('request'), 'the parameters travel signed');
  const callback = new URL(await signIn(url, 'alice', 'wonderland'));
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedState: 'st-jar',
  });
  assert.ok(tokens.id_token);

  // signed, then pushed
  const signed = await client.buildAuthorizationUrlWithJAR(config, { ...params, state: 'st-jar-par' }, key);
  const pushed = await client.buildAuthorizationUrlWithPAR(config, signed.searchParams);
  const cb = new URL(await signIn(pushed, 'alice', 'wonderland'));
  assert.equal(cb.searchParams.get('state'), 'st-jar-par');

  // another key: refused, with the reason, without a redirect
  const other = await jose.generateKeyPair('ES256');
  const forged = await client.buildAuthorizationUrlWithJAR(config, params, { key: other.privateKey, kid: 'ck1' });
  const r = await fetch(forged, { redirect: 'manual' });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /request object/);
});
