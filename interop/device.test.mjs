// The full device flow against the real server: `keybound login --device` polls while headless
// Chromium enters the code on /device, signs in and approves. The session's ID Token must be
// key-bound to the device's key, and a presentation made from it must be accepted by
// `keybound verify`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as jose from 'jose';
import { startOp, admin, BIN, launchChromium } from './common.mjs';

let op, browser;

before(async () => {
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'tv', '--name', 'Living Room TV', '--redirect-uri', 'http://127.0.0.1:9/unused']);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  });
  browser = await launchChromium();
});

let login;
after(async () => {
  login?.kill(); // a failed test must not leave `keybound login --device` polling
  await browser?.close();
  op?.stop();
});

test('keybound login --device + Chromium on /device = key-bound session, accepted presentation', { timeout: 60000 }, async () => {
  const session = join(op.dataDir, 'device-session.json');
  login = spawn(BIN, ['login', '--device', '--issuer', op.issuer, '--client-id', 'tv', '--scope', 'openid profile', '--session', session]);
  let stderr = '';
  let stdout = '';
  login.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => login.on('exit', resolve));
  const code = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no user code printed: ${stderr}`)), 10000);
    login.stderr.on('data', (d) => {
      stderr += d;
      // resolve once both the code and the URL are printed (they may arrive in separate chunks)
      const m = stderr.match(/\n\s+([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})\n/);
      if (m && /open \S+ and confirm/.test(stderr)) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  const complete = stderr.match(/open (\S+) and confirm/)[1];
  assert.ok(complete.endsWith(code));

  const page = await browser.newPage();
  await page.goto(complete);
  assert.equal(await page.inputValue('#user_code'), code, 'pre-filled, still to be confirmed');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wonderland');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.match(await page.textContent('body'), /Only approve if the code/);
  assert.match(await page.textContent('body'), /Living Room TV/);
  const shownKey = (await page.textContent('#key-thumbprint')).trim();
  await Promise.all([page.waitForNavigation(), page.click('button[value=allow]')]);
  assert.match(await page.textContent('#done'), /return to your device/);
  await page.close();

  const status = await exited;
  assert.equal(status, 0, `login failed: ${stderr}`);
  assert.match(stdout, /bound to key/);
  const s = JSON.parse(readFileSync(session, 'utf8'));
  assert.equal(jose.decodeProtectedHeader(s.id_token).typ, 'dpop+id_token');
  const claims = jose.decodeJwt(s.id_token);
  assert.equal(await jose.calculateJwkThumbprint(claims.cnf.jwk), s.jkt, 'thumbprint(cnf.jwk) == dpop_jkt');
  assert.equal(shownKey, s.jkt, 'the consent page named the device key');

  // a presentation made from the session is accepted by keybound-verify
  const url = 'https://api.example/orders';
  const headers = execFileSync(BIN, ['present', '--url', url, '--session', session], { encoding: 'utf8' });
  const idToken = headers.match(/^ID-Token: (.+)$/m)[1];
  const dpop = headers.match(/^DPoP: (.+)$/m)[1];
  const verdict = execFileSync(BIN, ['--data-dir', op.dataDir, 'verify', '--issuer', op.issuer, '--audience', 'tv', '--url', url, '--id-token', idToken, '--dpop', dpop], { encoding: 'utf8' });
  assert.match(verdict, /^accepted: /);
});
