// Interop: the third-party client openid-client (v6, DPoP) completes the Key Binding flow
// against keybound; its modifyAssertion hook adds c_s256 (or draft-00 c_hash) to the token
// request proof. The ID Token is then verified independently with jose.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import * as jose from 'jose';
import { startOp, admin, signIn } from './common.mjs';

const REDIRECT = 'http://127.0.0.1:9/cb';
let op;

before(async () => {
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'interop', '--redirect-uri', REDIRECT]);
    admin(dir, ['client', 'add', '--client-id', 'interop-draft00', '--redirect-uri', REDIRECT, '--profile', 'draft-00']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland', '--name', 'Alice']);
  });
});
after(() => op?.stop());

const b64sha256 = (s) => createHash('sha256').update(s, 'ascii').digest('base64url');

async function keyBoundFlow(clientId, codeClaim) {
  const config = await client.discovery(new URL(op.issuer), clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const dpopJkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  let pendingCode; // the code the next token-request proof must commit to
  const DPoP = client.getDPoPHandle(config, keyPair, {
    [client.modifyAssertion]: (_header, payload) => {
      if (pendingCode) payload[codeClaim] = b64sha256(pendingCode);
    },
  });
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope: 'openid profile offline_access bound_key',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    dpop_jkt: dpopJkt,
  });
  const callback = new URL(await signIn(url, 'alice', 'wonderland'));
  pendingCode = callback.searchParams.get('code');
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  }, undefined, { DPoP });
  pendingCode = undefined;
  return { config, keyPair, dpopJkt, DPoP, tokens };
}

async function verifyIndependently(idToken, clientId, typ) {
  const jwks = jose.createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
  return jose.jwtVerify(idToken, jwks, { issuer: op.issuer, audience: clientId, typ });
}

test('openid-client completes the key-bound flow; jose verifies the ID Token', async () => {
  const { config, dpopJkt, DPoP, tokens } = await keyBoundFlow('interop', 'c_s256');
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  const { payload, protectedHeader } = await verifyIndependently(tokens.id_token, 'interop', 'dpop+id_token');
  assert.equal(protectedHeader.typ, 'dpop+id_token');
  assert.equal(await jose.calculateJwkThumbprint(payload.cnf.jwk), dpopJkt, 'thumbprint(cnf.jwk) == dpop_jkt');

  // refresh with the same key keeps cnf
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  const again = await verifyIndependently(refreshed.id_token, 'interop', 'dpop+id_token');
  assert.deepEqual(again.payload.cnf, payload.cnf);

  // userinfo works with the matching proof ...
  const info = await client.fetchUserInfo(config, refreshed.access_token, payload.sub, { DPoP });
  assert.equal(info.name, 'Alice');
  // ... and not with a proof by another key
  const otherDPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  // RFC 9449 §7.1: 401 with a DPoP challenge naming the broken key binding (invalid_token),
  // not any failure (a 500 or a network error would not do)
  await assert.rejects(
    client.fetchUserInfo(config, refreshed.access_token, payload.sub, { DPoP: otherDPoP }),
    (err) => err.status === 401
      && Array.isArray(err.cause)
      && err.cause.some((c) => c.scheme === 'dpop' && c.parameters.error === 'invalid_token'),
  );
  // ... nor as a Bearer token
  const bearer = await fetch(`${op.issuer}/userinfo`, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
  assert.equal(bearer.status, 401);
  // the error goes on the scheme the client used, with DPoP offered beside it (DP-R3, DP-R4)
  assert.match(bearer.headers.get('www-authenticate'), /^Bearer error="invalid_token".*, DPoP algs="/);
});

test('a draft-00 client sends c_hash and gets typ id_token+cnf', async () => {
  const { dpopJkt, tokens } = await keyBoundFlow('interop-draft00', 'c_hash');
  const { payload, protectedHeader } = await verifyIndependently(tokens.id_token, 'interop-draft00', 'id_token+cnf');
  assert.equal(protectedHeader.typ, 'id_token+cnf');
  assert.equal(await jose.calculateJwkThumbprint(payload.cnf.jwk), dpopJkt);
});

test('without the code commitment the OP refuses the token request', async () => {
  await assert.rejects(keyBoundFlow('interop', 'x_not_c_s256'), (e) => {
    assert.equal(e.error, 'invalid_dpop_proof');
    assert.match(e.error_description, /c_s256/);
    return true;
  });
});
