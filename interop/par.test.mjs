// Interop, pushed authorization requests (RFC 9126) with DPoP (RFC 9449 §10.1) and a resource
// indicator (RFC 8707) in the pushed request: openid-client
// pushes the request with a DPoP proof and builds the by-reference URL itself; the browser
// (our form-posting helper) signs in through it; openid-client redeems the code with the same
// key and gets a DPoP-bound token. The client is registered --require-par, so the same request
// sent directly is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as jose from 'jose';
import { startOp, admin, signIn } from './common.mjs';

const REDIRECT = 'http://127.0.0.1:9/cb';
const API = 'https://api.example/';
let op;

before(async () => {
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'pusher', '--auth-method', 'client_secret_basic',
      '--secret', 'pusher-secret', '--redirect-uri', REDIRECT, '--require-par', '--resource', API]);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
});
after(() => op?.stop());

const insecure = { execute: [client.allowInsecureRequests] };

test('openid-client pushes with DPoP, signs in by reference, redeems with the same key', async () => {
  const config = await client.discovery(new URL(op.issuer), 'pusher', undefined, client.ClientSecretBasic('pusher-secret'), insecure);
  assert.equal(config.serverMetadata().pushed_authorization_request_endpoint, `${op.issuer}/par`);
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  const DPoP = client.getDPoPHandle(config, keyPair);
  const verifier = client.randomPKCECodeVerifier();
  const params = {
    redirect_uri: REDIRECT,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: 'st-par',
    resource: API,
  };
  // the same request sent directly is refused: this client must push
  const direct = client.buildAuthorizationUrl(config, params);
  const r = await fetch(direct, { redirect: 'manual' });
  assert.match(r.headers.get('location') ?? '', /error=invalid_request/);

  const url = await client.buildAuthorizationUrlWithPAR(config, params, { DPoP });
  assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);
  assert.match(url.searchParams.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/);
  const callback = new URL(await signIn(url, 'alice', 'wonderland'));
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedState: 'st-par',
  }, undefined, { DPoP });
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  const at = jose.decodeJwt(tokens.access_token);
  assert.equal(at.cnf.jkt, jkt);
  // RFC 8707: the resource named in the pushed request is the access token's audience
  assert.equal(at.aud, API);
});
