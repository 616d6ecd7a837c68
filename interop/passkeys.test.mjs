// Passkeys in a real browser (issue 27 item 4): headless Debian Chromium with the DevTools
// protocol's virtual authenticator (ctap2, internal transport, resident keys, user
// verification), against the real `keybound serve` whose issuer is http://localhost:PORT (an IP
// address cannot be a WebAuthn RP ID). An End-User registers a passkey on the account page,
// signs out, signs in with it — no password typed — and openid-client gets a key-bound ID Token
// whose amr says swk and whose acr is the passkey's; that ID Token is exchanged into an ID-JAG
// carrying the same acr/amr, redeemed at a second OP. An API protected by keybound-verify
// (examples/api) that demands the passkey acr accepts that ID Token and refuses a
// password sign-in's with the RFC 9470 challenge; the app then signs in again with the
// challenge's acr_values and max_age — a passkey after the password — and the API accepts.
// An authenticator without a credential for this RP ID, and the OP's page opened on another
// origin, get no passkey sign-in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import * as client from 'openid-client';
import * as jose from 'jose';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { startOp, admin, freePort, BIN, launchChromium } from './common.mjs';

const PASSKEY_ACR = 'urn:keybound:acr:passkey';
let a, b, browser, callback, redirectUri, api, apiProcess;

before(async () => {
  const port = await freePort();
  redirectUri = `http://127.0.0.1:${port}/cb`;
  callback = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('callback reached');
  });
  await new Promise((r) => callback.listen(port, '127.0.0.1', r));
  b = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'svc-at-b', '--auth-method', 'client_secret_basic',
      '--secret', 'secret-at-b', '--redirect-uri', redirectUri, '--grant-type', 'jwt-bearer']);
    admin(dir, ['user', 'add', '--username', 'alice-b', '--password', 'unused-pw', '--email', 'alice@example.com']);
  });
  a = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'svc', '--name', 'Passkey App', '--auth-method', 'client_secret_basic',
      '--secret', 'secret-at-a', '--redirect-uri', redirectUri,
      '--exchange-audience', `${b.issuer}=svc-at-b`, '--exchange-scope', 'orders.read']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland', '--email', 'alice@example.com']);
    admin(dir, ['user', 'add', '--username', 'bob', '--password', 'wonderland']);
    admin(dir, ['user', 'add', '--username', 'carol', '--password', 'wonderland']);
    admin(dir, ['user', 'add', '--username', 'dave', '--password', 'wonderland']);
    admin(dir, ['client', 'add', '--client-id', 'tv', '--name', 'Living-room TV', '--grant-type', 'device_code']);
  }, { host: 'localhost' });
  admin(b.dataDir, ['issuer', 'add', '--issuer', a.issuer, '--subject', 'email']);
  // the API: examples/api, built next to the keybound binary
  const apiPort = await freePort();
  api = `http://127.0.0.1:${apiPort}`;
  apiProcess = spawn(join(dirname(BIN), 'example-api'), [], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env, KEYBOUND_ISSUER: a.issuer, API_AUDIENCE: 'svc',
      API_LISTEN: `127.0.0.1:${apiPort}`, API_STEP_UP_MAX_AGE: '600',
    },
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      if ((await fetch(`${api}/`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error('example-api did not start within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  browser = await launchChromium();
});

after(async () => {
  apiProcess?.kill('SIGTERM');
  await browser?.close();
  a?.stop();
  b?.stop();
  callback?.close();
});

/** A page with a virtual platform authenticator (resident keys, user verification). */
async function withAuthenticator(context) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  return { page, cdp, authenticatorId };
}

async function passwordSignIn(page, username = 'alice') {
  await page.fill('#username', username);
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

/** Register a passkey on the account page (signing in with the password first). */
async function registerPasskey(page, username, name = 'Test laptop') {
  await page.goto(`${a.issuer}/account`);
  if (await page.$('#password')) await passwordSignIn(page, username);
  await page.fill('#passkey-name', name);
  await Promise.all([page.waitForURL(/done=added/), page.click('#add-passkey')]);
}

const b64sha256 = (s) => createHash('sha256').update(s, 'ascii').digest('base64url');
const insecure = { execute: [client.allowInsecureRequests] };

/** openid-client at A with a DPoP key: the authorization URL and how to redeem its callback. */
async function rpAtA(extra = {}) {
  const config = await client.discovery(new URL(a.issuer), 'svc', undefined, client.ClientSecretBasic('secret-at-a'), insecure);
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  let pendingCode;
  const dpop = client.getDPoPHandle(config, keyPair, {
    [client.modifyAssertion]: (_h, payload) => {
      if (pendingCode) payload.c_s256 = b64sha256(pendingCode);
    },
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid bound_key', nonce, dpop_jkt: jkt,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    ...extra,
  });
  return {
    config, keyPair, jkt, dpop, url: url.toString(),
    async redeem(callbackUrl) {
      const cb = new URL(callbackUrl);
      pendingCode = cb.searchParams.get('code');
      try {
        return await client.authorizationCodeGrant(config, cb, {
          pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true,
        }, undefined, { DPoP: dpop });
      } finally {
        pendingCode = undefined;
      }
    },
  };
}

/** Present `idToken` to the API's `path` with a DPoP proof by `keyPair` (docs/presentation.md). */
async function present(path, idToken, keyPair) {
  const jwk = await jose.exportJWK(keyPair.publicKey);
  const proof = await new jose.SignJWT({
    htm: 'GET', htu: `${api}${path}`, jti: crypto.randomUUID(), ath: b64sha256(idToken),
  }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(keyPair.privateKey);
  return fetch(`${api}${path}`, { headers: { 'ID-Token': idToken, DPoP: proof } });
}

/** RFC 9470 §3: the acr_values and max_age of an insufficient_user_authentication challenge. */
function stepUpOf(wwwAuthenticate) {
  assert.match(wwwAuthenticate, /error="insufficient_user_authentication"/);
  const acr = /acr_values="([^"]*)"/.exec(wwwAuthenticate);
  const maxAge = /max_age=(\d+)/.exec(wwwAuthenticate);
  return { ...(acr && { acr_values: acr[1] }), ...(maxAge && { max_age: maxAge[1] }) };
}

/** Follow the OP's pages after the sign-in: consent once, then the redirect to the app. */
async function toCallback(page) {
  if (!page.url().startsWith(redirectUri) && await page.$('button[value=allow]')) {
    await Promise.all([page.waitForURL((u) => u.toString().startsWith(redirectUri)), page.click('button[value=allow]')]);
  }
  await page.waitForURL((u) => u.toString().startsWith(redirectUri));
  return page.url();
}

test('register a passkey, sign out, sign in with it: a key-bound ID Token with the passkey acr, chained into B', async () => {
  const context = await browser.newContext();
  const { page, cdp, authenticatorId } = await withAuthenticator(context);
  await registerPasskey(page, 'alice');
  const items = await page.$$('#passkeys > li');
  assert.equal(items.length, 1);
  assert.match(await items[0].textContent(), /Test laptop/);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential');
  assert.equal(credentials[0].rpId, 'localhost');

  // sign out (the OP's session cookie gone), then sign in with the passkey: no password typed
  await context.clearCookies();
  const rp = await rpAtA();
  await page.goto(rp.url);
  assert.ok(await page.$('#password'), 'the password form is offered too');
  await Promise.all([page.waitForNavigation(), page.click('#passkey-sign-in')]);
  const tokens = await rp.redeem(await toCallback(page));
  const claims = tokens.claims();
  assert.equal(claims.acr, PASSKEY_ACR);
  assert.ok(claims.amr.includes('swk') || claims.amr.includes('hwk'), JSON.stringify(claims.amr));
  assert.ok(claims.amr.includes('user'));
  assert.ok(!claims.amr.includes('pwd'), 'no password');
  assert.equal(claims.cnf.jwk.x, (await jose.exportJWK(rp.keyPair.publicKey)).x, 'key-bound');
  assert.equal(jose.decodeProtectedHeader(tokens.id_token).typ, 'dpop+id_token');
  // the API that demands the passkey acr accepts it
  const ok = await present('/hello/passkey', tokens.id_token, rp.keyPair);
  assert.equal(ok.status, 200, await ok.clone().text());
  assert.match(await ok.text(), /Hello/);
  const { credentials: after } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(after[0].signCount, credentials[0].signCount + 1, 'the authenticator signed once more');

  // the ID-JAG carries the same acr/amr, and so does B's access token
  const exchanged = await client.genericGrantRequest(rp.config, 'urn:ietf:params:oauth:grant-type:token-exchange', {
    requested_token_type: 'urn:ietf:params:oauth:token-type:id-jag',
    subject_token: tokens.id_token,
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
    audience: b.issuer,
    scope: 'orders.read',
  }, { DPoP: rp.dpop });
  const jag = jose.decodeJwt(exchanged.access_token);
  assert.equal(jag.acr, PASSKEY_ACR);
  assert.deepEqual(jag.amr, claims.amr);
  const atB = await client.discovery(new URL(b.issuer), 'svc-at-b', undefined, client.ClientSecretBasic('secret-at-b'), insecure);
  const redeemed = await client.genericGrantRequest(atB, 'urn:ietf:params:oauth:grant-type:jwt-bearer', {
    assertion: exchanged.access_token,
  }, { DPoP: client.getDPoPHandle(atB, rp.keyPair) });
  const at = jose.decodeJwt(redeemed.access_token);
  assert.equal(at.acr, PASSKEY_ACR);
  assert.deepEqual(at.amr, claims.amr);
  await context.close();
});

test('a password session steps up with a passkey when the app asks for the passkey acr', async () => {
  const context = await browser.newContext();
  const { page } = await withAuthenticator(context);
  await registerPasskey(page, 'bob', 'Step-up key');
  await context.clearCookies();
  // a password sign-in first
  const first = await rpAtA();
  await page.goto(first.url);
  await passwordSignIn(page, 'bob');
  const pwdTokens = await first.redeem(await toCallback(page));
  const pwd = pwdTokens.claims();
  assert.equal(pwd.acr, 'urn:keybound:acr:pwd');
  assert.deepEqual(pwd.amr, ['pwd']);
  // the API refuses the password sign-in with the RFC 9470 challenge…
  const refused = await present('/hello/passkey', pwdTokens.id_token, first.keyPair);
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error, 'insufficient_user_authentication');
  const stepUp = stepUpOf(refused.headers.get('www-authenticate'));
  assert.equal(stepUp.acr_values, `${PASSKEY_ACR} urn:keybound:acr:mfa`);
  assert.equal(stepUp.max_age, '600');
  // …and the app signs in again with its values: no password form, only the passkey
  const rp = await rpAtA(stepUp);
  await page.goto(rp.url);
  assert.equal(await page.$('#password'), null, 'a password does not satisfy it');
  assert.match(await page.textContent('body'), /passkey/i);
  await Promise.all([page.waitForNavigation(), page.click('#passkey-sign-in')]);
  const stepped = await rp.redeem(await toCallback(page));
  const claims = stepped.claims();
  assert.equal(claims.acr, PASSKEY_ACR);
  assert.deepEqual(claims.amr, ['pwd', 'swk', 'user', 'mfa'], 'the password and the passkey');
  const ok = await present('/hello/passkey', stepped.id_token, rp.keyPair);
  assert.equal(ok.status, 200, await ok.clone().text());
  await context.close();
});

test('an authenticator without a passkey for this RP ID signs nothing in', async () => {
  const context = await browser.newContext();
  const { page, cdp, authenticatorId } = await withAuthenticator(context);
  // a resident credential, but for another site's RP ID
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const pkcs8 = await jose.exportPKCS8(privateKey);
  await cdp.send('WebAuthn.addCredential', {
    authenticatorId,
    credential: {
      credentialId: Buffer.from('another-site-credential').toString('base64'),
      isResidentCredential: true,
      rpId: 'another.example',
      privateKey: pkcs8.replace(/-----[^-]+-----|\s/g, ''),
      userHandle: Buffer.from('someone').toString('base64'),
      signCount: 0,
    },
  });
  const rp = await rpAtA();
  await page.goto(rp.url);
  await page.click('#passkey-sign-in');
  await page.waitForFunction(() => document.querySelector('#passkey-message')?.textContent.length > 0, null, { timeout: 20000 });
  assert.match(await page.textContent('#passkey-message'), /closed or timed out/);
  assert.ok(page.url().startsWith(a.issuer), 'still on the sign-in page');
  await context.close();
});

test('the sign-in page opened on another origin (127.0.0.1, not the issuer) cannot use the passkey', async () => {
  const context = await browser.newContext();
  const { page } = await withAuthenticator(context);
  await registerPasskey(page, 'carol', 'Origin key');
  await context.clearCookies();
  const rp = await rpAtA();
  // the same server reached by its IP address: the page's origin is not the issuer's
  await page.goto(rp.url.replace('localhost', '127.0.0.1'));
  await page.click('#passkey-sign-in');
  await page.waitForFunction(() => document.querySelector('#passkey-message')?.textContent.length > 0, null, { timeout: 20000 });
  // the browser refuses an RP ID that is not the page's domain, before any authenticator
  assert.match(await page.textContent('#passkey-message'), /invalid domain|SecurityError|not allowed/i);
  assert.ok(page.url().includes('127.0.0.1'), 'no sign-in happened');
  assert.equal(await page.$('button[value=allow]'), null);
  await context.close();
});

test('the device page signs in with a passkey: the device gets tokens with the passkey acr', async () => {
  const context = await browser.newContext();
  const { page } = await withAuthenticator(context);
  await registerPasskey(page, 'dave', 'Sofa key');
  await context.clearCookies();
  // the device asks for a code (RFC 8628 §3.1)
  const started = await fetch(`${a.issuer}/device_authorization`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'tv', scope: 'openid profile' }),
  });
  assert.equal(started.status, 200, await started.clone().text());
  const device = await started.json();
  // the End-User opens the verification page, confirms the code and signs in with the passkey:
  // no password typed
  await page.goto(device.verification_uri_complete);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.ok(await page.$('#password'), 'the password form is offered too');
  await Promise.all([page.waitForNavigation(), page.click('#passkey-sign-in')]);
  await Promise.all([page.waitForNavigation(), page.click('button[value=allow]')]);
  // the device's next poll gets the tokens
  const polled = await fetch(`${a.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: device.device_code,
      client_id: 'tv',
    }),
  });
  const tokens = await polled.json();
  assert.equal(polled.status, 200, JSON.stringify(tokens));
  const claims = jose.decodeJwt(tokens.id_token);
  assert.equal(claims.acr, PASSKEY_ACR);
  assert.ok(claims.amr.includes('user'), JSON.stringify(claims.amr));
  assert.ok(!claims.amr.includes('pwd'), 'no password');
  await context.close();
});
