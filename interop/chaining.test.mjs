// Interop, identity chaining: openid-client (which nobody here wrote) signs in with Key Binding
// at keybound A, performs the RFC 8693 token exchange for an ID-JAG with its generic grant
// request and a DPoP proof by the same key, and redeems the ID-JAG at keybound B with the
// jwt-bearer grant. jose, independently, validates the ID-JAG per the draft's rules (typ, iss,
// single aud, client_id, cnf.jkt of the client's key) and the access token B issued.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import * as jose from 'jose';
import { startOp, admin, signIn } from './common.mjs';

const REDIRECT = 'http://127.0.0.1:9/cb';
let a;
let b;

before(async () => {
  b = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'svc-at-b', '--auth-method', 'client_secret_basic',
      '--secret', 'secret-at-b', '--redirect-uri', REDIRECT, '--grant-type', 'jwt-bearer']);
    admin(dir, ['user', 'add', '--username', 'alice-b', '--password', 'unused-pw', '--email', 'alice@example.com']);
  });
  a = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'svc', '--auth-method', 'client_secret_basic',
      '--secret', 'secret-at-a', '--redirect-uri', REDIRECT,
      '--exchange-audience', `${b.issuer}=svc-at-b`, '--exchange-scope', 'orders.read']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland', '--email', 'alice@example.com']);
  });
  // B trusts A; its keys come from A's discovery document
  admin(b.dataDir, ['issuer', 'add', '--issuer', a.issuer, '--subject', 'email']);
});
after(() => {
  a?.stop();
  b?.stop();
});

const b64sha256 = (s) => createHash('sha256').update(s, 'ascii').digest('base64url');
const insecure = { execute: [client.allowInsecureRequests] };

test('openid-client chains a key-bound ID Token into B; jose validates the ID-JAG', async () => {
  const atA = await client.discovery(new URL(a.issuer), 'svc', undefined, client.ClientSecretBasic('secret-at-a'), insecure);
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  let pendingCode;
  const dpopA = client.getDPoPHandle(atA, keyPair, {
    [client.modifyAssertion]: (_h, payload) => {
      if (pendingCode) payload.c_s256 = b64sha256(pendingCode);
    },
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(atA, {
    redirect_uri: REDIRECT,
    scope: 'openid bound_key',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    dpop_jkt: jkt,
  });
  const callback = new URL(await signIn(url, 'alice', 'wonderland'));
  pendingCode = callback.searchParams.get('code');
  const tokens = await client.authorizationCodeGrant(atA, callback, {
    pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true,
  }, undefined, { DPoP: dpopA });
  pendingCode = undefined;

  // RFC 8693 token exchange with openid-client's generic grant and a DPoP proof
  const exchanged = await client.genericGrantRequest(atA, 'urn:ietf:params:oauth:grant-type:token-exchange', {
    requested_token_type: 'urn:ietf:params:oauth:token-type:id-jag',
    subject_token: tokens.id_token,
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    audience: b.issuer,
    scope: 'orders.read',
  }, { DPoP: dpopA });
  assert.equal(exchanged.issued_token_type, 'urn:ietf:params:oauth:token-type:id-jag');
  assert.equal(exchanged.token_type, 'n_a');
  const jag = exchanged.access_token;

  // jose validates the ID-JAG per the draft: typ, signature by A, iss, exactly one aud = B
  const { payload, protectedHeader } = await jose.jwtVerify(jag, jose.createRemoteJWKSet(new URL(`${a.issuer}/jwks`)), {
    issuer: a.issuer, audience: b.issuer, typ: 'oauth-id-jag+jwt', requiredClaims: ['jti', 'iat', 'exp', 'sub', 'client_id'],
  });
  assert.equal(protectedHeader.typ, 'oauth-id-jag+jwt');
  assert.equal(typeof payload.aud, 'string', 'a single audience');
  assert.equal(payload.client_id, 'svc-at-b');
  assert.equal(payload.scope, 'orders.read');
  assert.equal(payload.cnf.jkt, jkt, 'bound to the client key');
  assert.equal(payload.exp - payload.iat, 300);

  // jwt-bearer at B with openid-client, the same key
  const atB = await client.discovery(new URL(b.issuer), 'svc-at-b', undefined, client.ClientSecretBasic('secret-at-b'), insecure);
  const dpopB = client.getDPoPHandle(atB, keyPair);
  const redeemed = await client.genericGrantRequest(atB, 'urn:ietf:params:oauth:grant-type:jwt-bearer', {
    assertion: jag,
  }, { DPoP: dpopB });
  assert.equal(redeemed.token_type, 'dpop');
  assert.equal(redeemed.refresh_token, undefined);
  const at = await jose.jwtVerify(redeemed.access_token, jose.createRemoteJWKSet(new URL(`${b.issuer}/jwks`)), {
    issuer: b.issuer, typ: 'at+jwt',
  });
  assert.equal(at.payload.cnf.jkt, jkt);
  assert.equal(at.payload.client_id, 'svc-at-b');

  // the ID Token itself is no grant at B
  await assert.rejects(
    client.genericGrantRequest(atB, 'urn:ietf:params:oauth:grant-type:jwt-bearer', { assertion: tokens.id_token }, { DPoP: dpopB }),
    (err) => err.error === 'invalid_grant' && /typ/.test(err.error_description),
  );
});
