// Key binding in the browser (issue 24): `keybound demo --spa` serves the OP and, on another
// origin, the example single-page app of clients/browser with its API. Headless Chromium signs
// in, calls the API, reloads (the key survives, the session resumes without a sign-in),
// refreshes, presents the ID Token and signs out. Then an injected script copies every token
// and all stored state out to a separate process (thief.mjs), which fails with each of them at
// the API, the token endpoint and userinfo while the page keeps working; exporting the stored
// key is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BIN } from './common.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let demo, browser, app, op, api;

before(async () => {
  demo = spawn(BIN, ['demo', '--spa'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  let out = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo --spa did not start within 10 s: ${out}`)), 10_000);
    demo.stdout.on('data', (c) => {
      out += c;
      if (out.includes('Ctrl-C')) { clearTimeout(timer); resolve(); }
    });
    demo.on('exit', (code) => reject(new Error(`demo --spa exited (${code}): ${out}`)));
  });
  op = /OP:\s+(\S+)/.exec(out)[1];
  app = /app:\s+(\S+)/.exec(out)[1];
  api = `${app}api`;
  assert.notEqual(new URL(op).origin, new URL(app).origin, 'the app is on its own origin');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  demo?.kill('SIGINT');
});

/** Everything the app stored in IndexedDB, as an injected script sees it (keys' CryptoKeys
 * become their type and extractability). */
async function stored(page) {
  return page.evaluate(async () => {
    const db = await new Promise((ok, ko) => {
      const r = indexedDB.open('keybound');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => ko(r.error);
    });
    const tx = db.transaction('kv', 'readonly').objectStore('kv');
    const [keys, values] = await Promise.all([tx.getAllKeys(), tx.getAll()].map((r) => new Promise((ok) => { r.onsuccess = () => ok(r.result); })));
    db.close();
    const out = {};
    keys.forEach((k, i) => {
      const v = values[i];
      out[k.split('|').at(-1)] = v && typeof v === 'object' && 'privateKey' in v
        ? { jkt: v.jkt, privateKey: `${v.privateKey.type}, extractable: ${v.privateKey.extractable}` }
        : v;
    });
    return out;
  });
}

async function status(page) {
  return (await page.textContent('#status')).trim();
}

async function signIn(page) {
  await page.goto(app);
  await page.waitForSelector('#sign-in:not([hidden])');
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(op)), page.click('#sign-in')]);
  await page.fill('#username', 'demo');
  await page.fill('#password', 'demo-password');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(app)), page.click('button[value=allow]')]);
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('signed in as'));
}

async function callApi(page) {
  await page.$eval('#api-result', (el) => { el.textContent = ''; });
  await page.click('#call-api');
  await page.waitForFunction(() => document.querySelector('#api-result').textContent !== '');
  return page.textContent('#api-result');
}

test('sign in, call the API, reload, refresh, present, sign out', async () => {
  const page = await browser.newPage();
  await signIn(page);
  assert.equal(await status(page), 'signed in as demo-user');
  const before = await stored(page);
  assert.equal(before.key.privateKey, 'private, extractable: false');
  assert.ok(before.refresh, 'the refresh token is kept in IndexedDB');
  const orders = JSON.parse(await callApi(page));
  assert.equal(orders.by, 'DPoP access token');
  assert.equal(orders.proved_key, before.key.jkt);

  // reload: the same key, the session resumes by a refresh, no visit to the OP
  const visits = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) visits.push(f.url()); });
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('signed in as'));
  assert.ok(visits.every((u) => u.startsWith(app)), visits.join(' '));
  const after = await stored(page);
  assert.equal(after.key.jkt, before.key.jkt, 'the key survived the reload');
  assert.notEqual(after.refresh, before.refresh, 'resuming rotated the refresh token');
  assert.equal(JSON.parse(await callApi(page)).proved_key, before.key.jkt);

  // an explicit refresh rotates again
  await page.evaluate(() => window.keybound.refresh());
  assert.notEqual((await stored(page)).refresh, after.refresh);

  // the ID Token presented to the app's own API
  await page.click('#present');
  await page.waitForFunction(() => document.querySelector('#present-result').textContent !== '');
  const me = JSON.parse(await page.textContent('#present-result'));
  assert.equal(me.by, 'key-bound ID Token');
  assert.equal(me.sub, 'demo-user');
  assert.equal(me.proved_key, before.key.jkt);

  // sign out: back at the app, signed out, key and tokens gone, and the OP session too
  // (the OP's end-session endpoint: the hint names this session, so no question, straight back)
  const visited = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(r.url()); });
  await Promise.all([page.waitForNavigation({ url: (u) => u.toString().startsWith(app) }), page.click('#sign-out')]);
  assert.ok(visited.some((u) => u.startsWith(`${op}/end_session?`)), visited.join(' '));
  await page.waitForFunction(() => document.querySelector('#status').textContent === 'signed out');
  assert.ok(page.url().startsWith(app));
  const gone = await stored(page);
  assert.equal(gone.key, undefined);
  assert.equal(gone.refresh, undefined);
  const none = new URL('/authorize', op);
  none.search = new URLSearchParams({
    response_type: 'code', client_id: 'spa', redirect_uri: app, scope: 'openid', prompt: 'none',
    state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  }).toString();
  await page.goto(none.toString());
  assert.equal(new URL(page.url()).searchParams.get('error'), 'login_required', 'the OP session ended too');
  await page.close();
});

test('an injected script copies every token out; a separate process can use none of them', async () => {
  const page = await browser.newPage();
  await signIn(page);
  // the injected script: the app's tokens (it left its client reachable) and all stored state
  const loot = await page.evaluate(async () => ({
    accessToken: window.keybound.tokens.accessToken,
    idToken: window.keybound.tokens.idToken,
  }));
  const state = await stored(page);
  loot.refreshTokens = { current: state.refresh };
  loot.stored = state;
  // the key itself cannot be read out
  const exported = await page.evaluate(async () => {
    const k = await window.keybound.keys();
    const tries = [];
    for (const format of ['jwk', 'pkcs8']) {
      try { await crypto.subtle.exportKey(format, k.privateKey); tries.push('exported'); } catch (e) { tries.push(e.name); }
    }
    return tries;
  });
  assert.deepEqual(exported, ['InvalidAccessError', 'InvalidAccessError']);

  // the thief, in another process
  const child = spawn(process.execPath, [join(here, 'thief.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(JSON.stringify({ loot, op, api }));
  let out = '';
  for await (const c of child.stdout) out += c;
  const results = JSON.parse(out);
  assert.ok(Object.keys(results).length >= 10, out);
  for (const [attempt, code] of Object.entries(results)) {
    assert.ok(code === 400 || code === 401, `${attempt}: HTTP ${code}`);
  }

  // meanwhile the page keeps working, with the same refresh token
  const orders = JSON.parse(await callApi(page));
  assert.equal(orders.by, 'DPoP access token');
  await page.evaluate(() => window.keybound.refresh());
  assert.match(await status(page), /^signed in as/);
  await page.close();
});
