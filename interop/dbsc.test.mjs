// Device Bound Session Credentials in a real browser (issue 27 item 5, specs/dbsc.md): headless
// Debian Chromium with DBSC on (feature flags, software keys) against the real `keybound serve`
// over https (a throwaway certificate Chromium accepts by its SPKI hash), bound cookies living
// 8 s. Chromium registers its key when the End-User signs in, and refreshes the bound cookie
// with a signed challenge; the session cookie and bound cookie copied into this (another)
// process work only until the bound cookie expires, and a refresh signed by the thief's key is
// refused. For a client registered with --require-dbsc the OP waits, after the password, until
// Chromium has bound the session, and only then asks for consent and issues the code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';
import { startOp, admin, freePort, launchChromium } from './common.mjs';

const LIFETIME = 8;
let op, browser, certDir, callback, redirectUri;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'keybound-dbsc-cert-'));
  const cert = join(certDir, 'cert.pem');
  const key = join(certDir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  // the SPKI hash Chromium is told to accept (the blanket --ignore-certificate-errors makes it
  // ignore DBSC offers)
  const spki = execFileSync('sh', ['-c',
    `openssl x509 -in '${cert}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`],
  { encoding: 'utf8' }).trim();
  const port = await freePort();
  redirectUri = `http://127.0.0.1:${port}/cb`;
  callback = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('callback reached');
  });
  await new Promise((r) => callback.listen(port, '127.0.0.1', r));
  op = await startOp((dir) => {
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
    admin(dir, ['client', 'add', '--client-id', 'web', '--name', 'Bound App', '--redirect-uri', redirectUri, '--require-dbsc']);
  }, { host: 'localhost', tls: { cert, key }, env: { KEYBOUND_DBSC_COOKIE_LIFETIME: String(LIFETIME) } });
  browser = await launchChromium([
    `--ignore-certificate-errors-spki-list=${spki}`,
    '--enable-features=DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false,'
      + 'EnableBoundSessionCredentialsSoftwareKeysForManualTesting',
  ]);
});

/** A page in a new context whose DBSC events (DevTools protocol) are collected in `events`. */
async function dbscPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const events = [];
  cdp.on('Network.deviceBoundSessionEventOccurred', (e) => events.push(e));
  await cdp.send('Network.enable');
  await cdp.send('Network.enableDeviceBoundSessions', { enable: true });
  return { context, page, events };
}

after(async () => {
  await browser?.close();
  op?.stop();
  callback?.close();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

/** A request from this process (not the browser) with `cookies`: status, headers, body. */
function send(path, { method = 'GET', cookies = [], headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${op.issuer.replace('localhost', '127.0.0.1')}${path}`, {
      method, rejectUnauthorized: false,
      headers: { cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; '), ...headers },
    }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('Chromium binds the session to its key; copied cookies die with the bound cookie; only its key refreshes', async () => {
  const { context, page, events } = await dbscPage();

  await page.goto(`${op.issuer}/account`);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal((await page.textContent('h1')).trim(), 'Your account');

  // registration: Chromium posts its dbsc+jwt to /dbsc/start in the background
  let created;
  for (let i = 0; i < 100 && !created; i += 1) {
    created = events.find((e) => e.creationEventDetails);
    if (!created) await sleep(100);
  }
  assert.ok(created, 'Chromium did not register a device-bound session within 10 s: does this Chromium '
    + `(${browser.version()}) offer DBSC with these feature flags? (specs/dbsc.md)`);
  assert.equal(created.succeeded, true, JSON.stringify(created));
  const sessionId = created.sessionId;
  assert.equal(created.creationEventDetails.newSession.refreshUrl, `${op.issuer}/dbsc/refresh`);
  const cookies = await context.cookies();
  const stolen = cookies.filter((c) => c.name === '__Host-kb_session' || c.name === '__Host-kb_bound');
  assert.equal(stolen.length, 2, 'the session cookie and the bound cookie');

  // the copies work from this process while the bound cookie lives…
  assert.match((await send('/account', { cookies: stolen })).body, /Your account/);
  // …the session cookie alone does not
  const sessionOnly = stolen.filter((c) => c.name === '__Host-kb_session');
  assert.doesNotMatch((await send('/account', { cookies: sessionOnly })).body, /Your account/);

  // after the bound cookie expired, the copies are refused
  const exp = Number(stolen.find((c) => c.name === '__Host-kb_bound').value.split('.')[0]);
  while (Date.now() / 1000 <= exp + 1) await sleep(250);
  const late = await send('/account', { cookies: stolen });
  assert.doesNotMatch(late.body, /Your account/);
  assert.match(late.body, /Sign in/);

  // the thief asks for a refresh: a challenge, answered with its own key, is refused
  const asked = await send('/dbsc/refresh', { method: 'POST', cookies: stolen, headers: { 'sec-secure-session-id': sessionId } });
  assert.equal(asked.status, 403);
  const challenge = /^"([^"]+)"/.exec(asked.headers['secure-session-challenge'])[1];
  const { privateKey } = await jose.generateKeyPair('ES256');
  const forged = await new jose.SignJWT({ jti: challenge })
    .setProtectedHeader({ alg: 'ES256', typ: 'dbsc+jwt' }).sign(privateKey);
  const refused = await send('/dbsc/refresh', {
    method: 'POST', cookies: stolen,
    headers: { 'sec-secure-session-id': sessionId, 'secure-session-response': forged },
  });
  assert.equal(refused.status, 400);
  assert.equal(JSON.parse(refused.body).error, 'access_denied');
  assert.equal(refused.headers['set-cookie'], undefined, 'no bound cookie for the thief');

  // the browser goes on: it refreshed with a challenge signed by its key
  await page.goto(`${op.issuer}/account`);
  assert.equal((await page.textContent('h1')).trim(), 'Your account');
  const refreshed = events.filter((e) => e.refreshEventDetails?.refreshResult === 'Refreshed');
  assert.ok(refreshed.length >= 1, `at least one refresh: ${JSON.stringify(events.map((e) => Object.keys(e)))}`);
  const now = (await context.cookies()).find((c) => c.name === '__Host-kb_bound');
  assert.notEqual(now.value, stolen.find((c) => c.name === '__Host-kb_bound').value, 'a new bound cookie');
  await context.close();
});

test('a client that requires DBSC gets its code only after Chromium bound the session', async () => {
  const { context, page, events } = await dbscPage();
  const u = new URL('/authorize', op.issuer);
  u.search = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: redirectUri, scope: 'openid', state: 'st',
    nonce: 'nn', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  }).toString();
  await page.goto(u.toString());
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  const seen = [];
  page.on('domcontentloaded', async () => { seen.push(await page.title().catch(() => '')); });
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  // the waiting page posts on by itself once the session is bound: consent comes next
  await page.waitForSelector('button[value=allow]', { timeout: 15000 });
  assert.ok(seen.some((t) => t.startsWith('Securing your sign-in')), `pages: ${seen}`);
  assert.ok(events.some((e) => e.creationEventDetails && e.succeeded), 'Chromium registered its key first');
  await Promise.all([page.waitForURL((x) => x.toString().startsWith(redirectUri)), page.click('button[value=allow]')]);
  assert.ok(new URL(page.url()).searchParams.get('code'));
  await context.close();
});
