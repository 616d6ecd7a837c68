// Login and consent in a real browser: headless Debian Chromium driven by playwright-core,
// against the real `keybound serve` on loopback. Covers a wrong password, a CSRF failure, the
// consent page naming the key thumbprint, Allow (code delivered) and Deny (access_denied), the
// implicit flow to an https app (tokens go only to https redirect URIs that are not localhost:
// `rp.test` is mapped to 127.0.0.1 inside Chromium, with a certificate made here by openssl),
// a form_post to a callback that answers with a cross-origin 303, and logging out from the app
// (RP-Initiated Logout: the confirmation page, back at the app, `prompt=none` → login_required).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';
import { startOp, admin, freePort, launchChromium } from './common.mjs';

let op, browser, callback, spaCallback, redirectUri, hopUri, landedUri, spaRedirectUri, certDir, byeUri;
let lastPost; // the body the last form_post delivered to a callback

/** Answer a callback request: remember a POST body, then `then(res)`. */
function receive(then) {
  return (req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.method === 'POST') lastPost = new URLSearchParams(body);
      then(req, res);
    });
  };
}

before(async () => {
  const port = await freePort();
  redirectUri = `http://127.0.0.1:${port}/cb`;
  // a callback that answers the form_post with a 303 to another origin (localhost is not
  // 127.0.0.1 to the browser), as many web RPs do after reading the response
  hopUri = `http://127.0.0.1:${port}/hop`;
  landedUri = `http://localhost:${port}/landed`;
  // where the app takes its users after logging out (RP-Initiated Logout)
  byeUri = `http://127.0.0.1:${port}/bye`;
  callback = createServer(receive((req, res) => {
    if (req.url.startsWith('/hop')) {
      res.writeHead(303, { location: landedUri });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(req.url.startsWith('/landed') ? 'landed' : 'callback reached');
  }));
  await new Promise((r) => callback.listen(port, '127.0.0.1', r));
  // the implicit app: https at a name that is not localhost (Chromium maps it to loopback)
  certDir = mkdtempSync(join(tmpdir(), 'keybound-rp-cert-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-days', '1', '-subj', '/CN=rp.test', '-addext', 'subjectAltName=DNS:rp.test',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
  const spaPort = await freePort();
  spaRedirectUri = `https://rp.test:${spaPort}/cb`;
  spaCallback = createHttpsServer({
    key: readFileSync(join(certDir, 'key.pem')),
    cert: readFileSync(join(certDir, 'cert.pem')),
  }, receive((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('callback reached');
  }));
  await new Promise((r) => spaCallback.listen(spaPort, '127.0.0.1', r));
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'web', '--name', 'Browser Test App',
      '--redirect-uri', redirectUri, '--redirect-uri', hopUri, '--post-logout-redirect-uri', byeUri]);
    admin(dir, ['client', 'add', '--client-id', 'spa', '--name', 'Implicit App', '--redirect-uri', spaRedirectUri,
      '--response-type', 'id_token token', '--response-type', 'id_token']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
  browser = await launchChromium(['--host-resolver-rules=MAP rp.test 127.0.0.1']);
});

after(async () => {
  await browser?.close();
  op?.stop();
  callback?.close();
  spaCallback?.close();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

async function authorizeUrl(extra = {}) {
  const { publicKey } = await jose.generateKeyPair('ES256');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(publicKey));
  const u = new URL('/authorize', op.issuer);
  u.search = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: redirectUri,
    scope: 'openid profile bound_key', state: 'st', nonce: 'nn', dpop_jkt: jkt,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    ...extra,
  }).toString();
  return { url: u.toString(), jkt };
}

test('wrong password, then login and consent deliver the code', async () => {
  const page = await browser.newPage();
  const { url, jkt } = await authorizeUrl();
  await page.goto(url);
  assert.match(await page.textContent('body'), /Browser Test App/);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'not-the-password');
  const [wrong] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(wrong.status(), 401);
  assert.match(await page.textContent('[role=alert]'), /Wrong username or password/);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal((await page.textContent('#key-thumbprint')).trim(), jkt);
  assert.match(await page.textContent('body'), /will be able to prove that it received this sign-in/);
  if (process.env.KEYBOUND_SCREENSHOTS) await page.screenshot({ path: `${process.env.KEYBOUND_SCREENSHOTS}/consent.png`, fullPage: true });
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(redirectUri)), page.click('button[value=allow]')]);
  const cb = new URL(page.url());
  assert.ok(cb.searchParams.get('code'));
  assert.equal(cb.searchParams.get('state'), 'st');
  assert.equal(cb.searchParams.get('iss'), op.issuer);
  await page.close();
});

test('a forged CSRF token is refused', async () => {
  const page = await browser.newPage();
  await page.goto((await authorizeUrl()).url);
  await page.$eval('input[name=csrf]', (el) => { el.value = 'forged-forged-forged-forged-forged-forged'; });
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  const [resp] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(resp.status(), 403);
  assert.match(await page.textContent('[role=alert]'), /CSRF check failed/);
  await page.close();
});

test('deny sends access_denied back to the app', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto((await authorizeUrl()).url);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(redirectUri)), page.click('button[value=deny]')]);
  const cb = new URL(page.url());
  assert.equal(cb.searchParams.get('error'), 'access_denied');
  assert.equal(cb.searchParams.get('state'), 'st');
  await context.close();
});

// The implicit flow in a real browser: with response_mode=form_post the OP's page posts the
// tokens to the app by itself (its CSP allows exactly that script, by hash); by default they
// arrive in the fragment. The app is at https://rp.test (tokens never go to http or localhost).
async function implicit(page, extra) {
  const u = new URL('/authorize', op.issuer);
  u.search = new URLSearchParams({
    client_id: 'spa', redirect_uri: spaRedirectUri, scope: 'openid', state: 'st', nonce: 'nn', ...extra,
  }).toString();
  await page.goto(u.toString());
  if (await page.$('#password')) {
    await page.fill('#username', 'alice');
    await page.fill('#password', 'wonderland');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  // consent is asked once; afterwards the response comes at once
  if (await page.$('button[value=allow]')) {
    await Promise.all([page.waitForURL((x) => x.toString().startsWith(spaRedirectUri)), page.click('button[value=allow]')]);
  } else {
    await page.waitForURL((x) => x.toString().startsWith(spaRedirectUri));
  }
}

test('implicit flow: form_post auto-submits under its CSP; fragment by default', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  lastPost = undefined;
  await implicit(page, { response_type: 'id_token token', response_mode: 'form_post' });
  assert.equal(page.url(), spaRedirectUri, 'the browser posted to the app');
  assert.ok(lastPost?.get('id_token') && lastPost.get('access_token'), `${lastPost}`);
  assert.equal(lastPost.get('token_type'), 'Bearer');
  assert.equal(lastPost.get('state'), 'st');
  const claims = jose.decodeJwt(lastPost.get('id_token'));
  assert.equal(claims.nonce, 'nn');
  assert.ok(claims.at_hash);
  await implicit(page, { response_type: 'id_token' });
  const fragment = new URLSearchParams(new URL(page.url()).hash.slice(1));
  assert.ok(fragment.get('id_token'));
  assert.equal(new URL(page.url()).search, '', 'nothing in the query');
  await context.close();
});

// Issue 22 item 4: the form_post page's CSP must not stop an RP whose callback answers the post
// with a redirect (Chromium applies form-action along the redirect chain): the code reaches the
// callback and the browser lands where the callback sent it, on another origin.
test('form_post to a callback that answers 303 to another origin', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const { url } = await authorizeUrl();
  const u = new URL(url);
  u.searchParams.set('redirect_uri', hopUri);
  u.searchParams.set('response_mode', 'form_post');
  lastPost = undefined;
  await page.goto(u.toString());
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([
    page.waitForURL((x) => x.toString().startsWith(landedUri), { timeout: 10000 }),
    page.click('button[value=allow]'),
  ]);
  assert.equal(await page.textContent('body'), 'landed');
  assert.ok(lastPost?.get('code'), `the callback got the code: ${lastPost}`);
  assert.equal(lastPost.get('state'), 'st');
  await context.close();
});

test('sign in, then log out from the app: confirmed, back at the app, and the session is gone', async () => {
  const page = await browser.newPage();
  await page.goto((await authorizeUrl()).url);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(redirectUri)), page.click('button[value=allow]')]);
  // signed in: prompt=none gets a code without any page
  await page.goto((await authorizeUrl({ prompt: 'none', scope: 'openid profile' })).url);
  assert.ok(new URL(page.url()).searchParams.get('code'));
  // the app's logout link (no id_token_hint): the OP asks first
  const logout = new URL('/end_session', op.issuer);
  logout.search = new URLSearchParams({ client_id: 'web', post_logout_redirect_uri: byeUri, state: 'lo' }).toString();
  await page.goto(logout.toString());
  assert.match(await page.textContent('h1'), /Sign out of keybound\?/);
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(byeUri)), page.click('button[value=yes]')]);
  assert.equal(new URL(page.url()).searchParams.get('state'), 'lo');
  // the session is gone: prompt=none answers login_required
  await page.goto((await authorizeUrl({ prompt: 'none', scope: 'openid profile' })).url);
  const back = new URL(page.url());
  assert.ok(back.toString().startsWith(redirectUri));
  assert.equal(back.searchParams.get('error'), 'login_required');
  await page.close();
});
