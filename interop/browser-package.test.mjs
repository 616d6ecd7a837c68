// The browser package (clients/browser) driven from node against the real `keybound serve`:
// WebCrypto is the same API, storage in memory, and the navigation to the OP is handed to the
// form-posting helper. Covers what the Chromium test's OP does not ask for: a client that must
// push its requests (PAR with a DPoP proof, RFC 9126 + RFC 9449 §10.1) and that must use DPoP
// nonces (the package retries once with the nonce, RFC 9449 §8), at the token endpoint and at
// userinfo (the WWW-Authenticate challenge).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KeyboundClient, MemoryStorage } from '../clients/browser/src/index.js';
import { startOp, admin, signIn } from './common.mjs';

const REDIRECT = 'http://127.0.0.1:9/cb';
let op;

before(async () => {
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'strict-spa', '--redirect-uri', REDIRECT,
      '--require-par', '--require-nonce', '--dpop-bound-access-tokens']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
});
after(() => op?.stop());

test('PAR with a proof, nonce retries, key-bound ID Token, refresh, userinfo', async () => {
  let navigated;
  const sent = [];
  const kb = await KeyboundClient.create({
    issuer: op.issuer, clientId: 'strict-spa', redirectUri: REDIRECT, scope: 'openid profile offline_access',
    storage: new MemoryStorage(),
    navigate: (url) => { navigated = url; },
    fetch: (url, init) => { sent.push({ url: String(url), dpop: new Headers(init?.headers).get('dpop') }); return fetch(url, init); },
  });
  await kb.signIn();
  const u = new URL(navigated);
  assert.deepEqual([...u.searchParams.keys()].sort(), ['client_id', 'request_uri'], 'pushed, by reference');
  assert.ok(sent.some((r) => r.url.endsWith('/par') && r.dpop), 'a proof at /par');
  const claims = await kb.handleCallback(await signIn(navigated, 'alice', 'wonderland'));
  assert.equal(claims.cnf.jwk.x, (await kb.keys()).jwk.x, 'bound to the package\'s key');
  // the OP demanded a nonce: the first push was answered use_dpop_nonce and sent again with it;
  // the token request then carried the nonce from the start
  const claimsOf = (proof) => JSON.parse(Buffer.from(proof.split('.')[1], 'base64url'));
  const pushes = sent.filter((r) => r.url.endsWith('/par'));
  assert.equal(pushes.length, 2);
  assert.equal(claimsOf(pushes[0].dpop).nonce, undefined);
  assert.ok(claimsOf(pushes[1].dpop).nonce);
  const tokens = sent.filter((r) => r.url.endsWith('/token'));
  assert.equal(tokens.length, 1);
  assert.ok(claimsOf(tokens[0].dpop).nonce && claimsOf(tokens[0].dpop).c_s256);

  const userinfo = await kb.fetch(`${op.issuer}/userinfo`);
  assert.equal(userinfo.status, 200, await userinfo.clone().text());
  assert.equal((await userinfo.json()).sub, claims.sub);

  const again = await kb.refresh();
  assert.equal(again.sub, claims.sub);
  assert.equal(again.cnf.jwk.x, claims.cnf.jwk.x, 'a refreshed ID Token keeps its binding');
});
