// Login and consent in a real browser: headless Debian Chromium driven by playwright-core,
// against the real `keybound serve` on loopback. Covers a wrong password, a CSRF failure, the
// consent page naming the key thumbprint, Allow (code delivered) and Deny (access_denied).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import * as jose from 'jose';
import { startOp, admin, freePort } from './common.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let op, browser, callback, redirectUri;
let lastPost; // the body the last form_post delivered to the callback

before(async () => {
  const port = await freePort();
  redirectUri = `http://127.0.0.1:${port}/cb`;
  callback = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.method === 'POST') lastPost = new URLSearchParams(body);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('callback reached');
    });
  });
  await new Promise((r) => callback.listen(port, '127.0.0.1', r));
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'web', '--name', 'Browser Test App', '--redirect-uri', redirectUri]);
    admin(dir, ['client', 'add', '--client-id', 'spa', '--name', 'Implicit App', '--redirect-uri', redirectUri,
      '--response-type', 'id_token token', '--response-type', 'id_token']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  op?.stop();
  callback?.close();
});

async function authorizeUrl() {
  const { publicKey } = await jose.generateKeyPair('ES256');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(publicKey));
  const u = new URL('/authorize', op.issuer);
  u.search = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: redirectUri,
    scope: 'openid profile bound_key', state: 'st', nonce: 'nn', dpop_jkt: jkt,
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
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
// tokens to the app by itself (its CSP allows exactly that script, by hash, and that target);
// by default they arrive in the fragment.
async function implicit(page, extra) {
  const u = new URL('/authorize', op.issuer);
  u.search = new URLSearchParams({
    client_id: 'spa', redirect_uri: redirectUri, scope: 'openid', state: 'st', nonce: 'nn', ...extra,
  }).toString();
  await page.goto(u.toString());
  if (await page.$('#password')) {
    await page.fill('#username', 'alice');
    await page.fill('#password', 'wonderland');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }
  // consent is asked once; afterwards the response comes at once
  if (await page.$('button[value=allow]')) {
    await Promise.all([page.waitForURL((x) => x.toString().startsWith(redirectUri)), page.click('button[value=allow]')]);
  } else {
    await page.waitForURL((x) => x.toString().startsWith(redirectUri));
  }
}

test('implicit flow: form_post auto-submits under its CSP; fragment by default', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  lastPost = undefined;
  await implicit(page, { response_type: 'id_token token', response_mode: 'form_post' });
  assert.equal(page.url(), redirectUri, 'the browser posted to the app');
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
