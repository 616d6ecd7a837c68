// Shared helpers for the interop tests: start the real `keybound serve` binary on a free
// loopback port with a temporary data directory, provision it with `keybound admin`, and sign
// in through the OP's HTML forms the way a browser without JavaScript would.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createServer } from 'node:net';
import { get as httpsGet } from 'node:https';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Debian's Chromium (CHROMIUM_PATH to use another). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Headless Chromium as every browser test runs it, with `args` added. */
export async function launchChromium(args = []) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
}
export const BIN = process.env.KEYBOUND_BIN ?? join(here, '..', 'target', 'debug', 'keybound');

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function admin(dataDir, args) {
  return execFileSync(BIN, ['--data-dir', dataDir, 'admin', ...args], { encoding: 'utf8' });
}

/**
 * Start an OP; returns { issuer, dataDir, port, stop }. Waits (bounded: 5 s) until /healthz
 * answers. `host` names the issuer's host (default 127.0.0.1; `localhost` for passkeys, whose
 * RP ID cannot be an IP address); it listens on 127.0.0.1 either way.
 */
export async function startOp(provision, { host = '127.0.0.1', env = {}, tls } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'keybound-interop-'));
  provision(dataDir);
  const port = await freePort();
  const issuer = `${tls ? 'https' : 'http'}://${host}:${port}`;
  if (tls) env = { ...env, KEYBOUND_TLS_CERT: tls.cert, KEYBOUND_TLS_KEY: tls.key };
  const child = spawn(BIN, ['--data-dir', dataDir, 'serve', '--listen', `127.0.0.1:${port}`, '--issuer', issuer], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, RUST_LOG: 'warn', KEYBOUND_METRICS_LISTEN: 'off', ...env },
  });
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      if (tls ? (await httpsStatus(`https://127.0.0.1:${port}/healthz`)) === 200
        : (await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('keybound serve did not become ready within 5 s');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    issuer,
    dataDir,
    port,
    stop() {
      child.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The status of a GET over https to a server with a throwaway certificate. */
export function httpsStatus(url) {
  return new Promise((resolve, reject) => {
    httpsGet(url, { rejectUnauthorized: false }, (r) => { r.resume(); resolve(r.statusCode); }).on('error', reject);
  });
}

const decode = (s) => s.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/** The hidden fields of a page's first form (a login page also has a passkey form). */
export function hiddenFields(html) {
  const start = html.indexOf('<form');
  const end = start < 0 ? -1 : html.indexOf('</form>', start);
  if (end > 0) html = html.slice(start, end);
  return [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [decode(m[1]), decode(m[2])]);
}

/**
 * Sign in and consent through the OP's forms; returns the redirect URL carrying the code. The
 * OP's cookies are kept in `cookies` (a Map; pass one to use the session afterwards).
 */
export async function signIn(authorizationUrl, username, password, cookies = new Map()) {
  const absorb = (r) => {
    for (const c of r.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const i = kv.indexOf('=');
      cookies.set(kv.slice(0, i), kv.slice(i + 1));
    }
  };
  const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const post = async (action, html, extra) => {
    const body = new URLSearchParams([...hiddenFields(html), ...Object.entries(extra)]);
    const r = await fetch(new URL('/authorize', action), {
      method: 'POST', redirect: 'manual', body,
      headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' },
    });
    absorb(r);
    return r;
  };
  let r = await fetch(authorizationUrl, { redirect: 'manual', headers: { cookie: cookie() } });
  absorb(r);
  let html = await r.text();
  if (html.includes('name="password"')) {
    r = await post(authorizationUrl, html, { username, password });
    if (r.status === 303) return r.headers.get('location');
    html = await r.text();
  }
  if (html.includes('name="decision"')) {
    r = await post(authorizationUrl, html, { decision: 'allow' });
  }
  if (r.status !== 303) throw new Error(`sign-in did not redirect: ${r.status}`);
  return r.headers.get('location');
}

/** The `cookie` header value for a cookie Map filled by `signIn`. */
export function cookieHeader(cookies) {
  return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
}
