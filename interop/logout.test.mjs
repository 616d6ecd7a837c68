// Interop, logout (issue 23 item 3): openid-client signs in (code flow, PKCE, offline_access),
// builds the RP-Initiated Logout URL itself (buildEndSessionUrl) with the ID Token as hint, a
// registered post-logout redirect URI and state; the OP ends the session at once (the hint
// names it) and redirects back with the state. A real back-channel logout receiver on loopback
// gets the logout token and verifies it with jose against the OP's JWKS (typ logout+jwt, iss,
// aud, events, sid of the ID Token, no nonce). Afterwards the session is gone (prompt=none:
// login_required) and, the client following the session, its refresh token is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import * as client from 'openid-client';
import * as jose from 'jose';
import { startOp, admin, signIn, cookieHeader, freePort } from './common.mjs';

const REDIRECT = 'http://127.0.0.1:9/cb';
const BYE = 'http://127.0.0.1:9/bye';
let op, receiver, backchannel;
const received = [];

before(async () => {
  const port = await freePort();
  backchannel = `http://127.0.0.1:${port}/backchannel`;
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ type: req.headers['content-type'], token: new URLSearchParams(body).get('logout_token') });
      res.writeHead(200, { 'cache-control': 'no-store' });
      res.end();
    });
  });
  await new Promise((r) => receiver.listen(port, '127.0.0.1', r));
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'rp', '--auth-method', 'client_secret_basic',
      '--secret', 'rp-secret', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', BYE,
      '--backchannel-logout-uri', backchannel, '--backchannel-logout-session-required']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
});
after(() => { op?.stop(); receiver?.close(); });

const insecure = { execute: [client.allowInsecureRequests] };

test('openid-client logs out by buildEndSessionUrl; the back-channel receiver verifies the logout token', async () => {
  const config = await client.discovery(new URL(op.issuer), 'rp', undefined, client.ClientSecretBasic('rp-secret'), insecure);
  const meta = config.serverMetadata();
  assert.equal(meta.end_session_endpoint, `${op.issuer}/end_session`);
  assert.equal(meta.backchannel_logout_supported, true);
  assert.equal(meta.backchannel_logout_session_supported, true);
  const verifier = client.randomPKCECodeVerifier();
  const params = {
    redirect_uri: REDIRECT, scope: 'openid offline_access', state: 'st-in',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  };
  const cookies = new Map();
  const callback = await signIn(client.buildAuthorizationUrl(config, params), 'alice', 'wonderland', cookies);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: 'st-in',
  });
  const sid = tokens.claims().sid;
  assert.ok(sid, 'the ID Token names the OP session');

  const logout = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: BYE, state: 'st-out',
  });
  const r = await fetch(logout, { redirect: 'manual', headers: { cookie: cookieHeader(cookies) } });
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), `${BYE}?state=st-out`);

  // the back-channel receiver: a form POST with a logout token (bounded wait: 10 s)
  const deadline = Date.now() + 10_000;
  while (received.length === 0 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(received.length, 1);
  assert.match(received[0].type, /^application\/x-www-form-urlencoded/);
  const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri));
  const { payload, protectedHeader } = await jose.jwtVerify(received[0].token, jwks, {
    issuer: op.issuer, audience: 'rp', typ: 'logout+jwt', maxTokenAge: '2m',
  });
  assert.equal(protectedHeader.typ, 'logout+jwt');
  assert.deepEqual(payload.events, { 'http://schemas.openid.net/event/backchannel-logout': {} });
  assert.equal(payload.sid, sid);
  assert.equal(payload.sub, tokens.claims().sub);
  assert.ok(payload.jti && payload.iat && payload.exp);
  assert.equal(payload.nonce, undefined);

  // the OP session is gone
  const none = client.buildAuthorizationUrl(config, { ...params, prompt: 'none' });
  const again = await fetch(none, { redirect: 'manual', headers: { cookie: cookieHeader(cookies) } });
  assert.match(again.headers.get('location') ?? '', /error=login_required/);
  // and the refresh token of a client that follows the session with it
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (e) => e.error === 'invalid_grant');
});

test('an unregistered post_logout_redirect_uri is refused, never followed', async () => {
  const config = await client.discovery(new URL(op.issuer), 'rp', undefined, client.ClientSecretBasic('rp-secret'), insecure);
  const url = client.buildEndSessionUrl(config, { post_logout_redirect_uri: 'https://attacker.example/' });
  const r = await fetch(url, { redirect: 'manual' });
  assert.equal(r.status, 400);
  assert.equal(r.headers.get('location'), null);
});
