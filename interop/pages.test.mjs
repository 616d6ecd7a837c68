// The End-User's pages in headless Chromium, under an operator's theme (issue 28 item 3):
// axe-core (pinned in package.json) finds no accessibility violation on the login, consent,
// account, device (code entry and approval) and error pages, in English and German, in the
// light and the dark colour scheme; the pages speak the browser's language; and a screenshot
// of the themed login page, kept in target/test-artefacts/, shows the configured logo and
// colours (checked on the rendered page, not just in the markup).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOp, admin, launchChromium } from './common.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const here = dirname(fileURLToPath(import.meta.url));
const ARTEFACTS = join(here, '..', 'target', 'test-artefacts');
const REDIRECT = 'http://127.0.0.1:9/cb';
const LIGHT_PRIMARY = 'rgb(11, 83, 148)'; // #0b5394
const DARK_PRIMARY = 'rgb(159, 197, 232)'; // #9fc5e8
const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="#c2185b"/></svg>';

let op, browser, themeDir;

before(async () => {
  themeDir = mkdtempSync(join(tmpdir(), 'keybound-theme-'));
  writeFileSync(join(themeDir, 'theme.json'), JSON.stringify({
    product_name: 'Acme ID',
    logo: 'logo.svg',
    stylesheet: 'extra.css',
    colors: { light: { primary: '#0b5394' }, dark: { primary: '#9fc5e8' } },
  }));
  writeFileSync(join(themeDir, 'logo.svg'), LOGO);
  writeFileSync(join(themeDir, 'extra.css'), 'header{border-bottom:2px solid var(--kb-primary);padding-bottom:.4rem}');
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'web', '--name', 'Acme Web', '--redirect-uri', REDIRECT]);
    admin(dir, ['client', 'add', '--client-id', 'tv', '--name', 'Living Room TV', '--redirect-uri', REDIRECT]);
    admin(dir, ['user', 'add', '--username', 'alice', '--password', 'wonderland']);
  }, { host: 'localhost', env: { KEYBOUND_THEME_DIR: themeDir } });
  browser = await launchChromium();
  mkdirSync(ARTEFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  op?.stop();
  if (themeDir) rmSync(themeDir, { recursive: true, force: true });
});

function authorizeUrl() {
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'web', redirect_uri: REDIRECT, state: 's', nonce: 'n',
    scope: 'openid profile email offline_access',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  });
  return `${op.issuer}/authorize?${q}`;
}

/** A device authorization of `tv`: its user code. */
async function deviceCode() {
  const r = await fetch(`${op.issuer}/device_authorization`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'tv', scope: 'openid profile' }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()).user_code;
}

/** The RGBA of pixel (x, y) of the image at `src`, drawn in `page`. */
function pixelOf(page, src, x, y) {
  return page.evaluate(async ([src, x, y]) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    return [...g.getImageData(x, y, 1, 1).data];
  }, [src, x, y]);
}

/** axe-core's violations on `page` (CSP is bypassed in the context to inject it). */
async function violations(page) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Every page once, in `locale` and `colorScheme`: [name, page] as each is reached. */
async function* pages(locale, colorScheme) {
  const context = await browser.newContext({ locale, colorScheme, bypassCSP: true });
  const page = await context.newPage();
  try {
    await page.goto(authorizeUrl());
    yield ['login', page];
    await page.fill('#username', 'alice');
    await page.fill('#password', 'wonderland');
    await Promise.all([page.waitForNavigation(), page.click('form:not(#passkey-form) button[type=submit]')]);
    yield ['consent', page];
    await page.goto(`${op.issuer}/account`);
    yield ['account', page];
    await page.goto(`${op.issuer}/device`);
    yield ['device code entry', page];
    const code = await deviceCode();
    await page.fill('#user_code', code);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    yield ['device approval', page];
    await page.goto(`${op.issuer}/authorize?client_id=nobody&response_type=code`);
    yield ['error', page];
  } finally {
    await context.close();
  }
}

for (const [locale, lang, heading] of [['en-US', 'en', /Sign in/], ['de-DE', 'de', /Anmelden/]]) {
  for (const colorScheme of ['light', 'dark']) {
    test(`no axe-core violations on every page, ${lang}, ${colorScheme}`, { timeout: 60000 }, async () => {
      const seen = [];
      for await (const [name, page] of pages(locale, colorScheme)) {
        seen.push(name);
        assert.equal(await page.evaluate(() => document.documentElement.lang), lang, name);
        if (name === 'login') assert.match(await page.textContent('h1'), heading);
        const found = await violations(page);
        assert.deepEqual(found, [], `${name} (${lang}, ${colorScheme}):\n${found.join('\n')}`);
        // the theme's colour for this scheme on the page's main button
        const primary = await page.evaluate(() => getComputedStyle(document.querySelector('main button:not(.secondary)') ?? document.body).backgroundColor);
        if (name !== 'error') assert.equal(primary, colorScheme === 'light' ? LIGHT_PRIMARY : DARK_PRIMARY, name);
      }
      assert.deepEqual(seen, ['login', 'consent', 'account', 'device code entry', 'device approval', 'error']);
    });
  }
}

test('a screenshot of the themed login page shows the logo and the colours', { timeout: 30000 }, async () => {
  const context = await browser.newContext({ locale: 'en-US', colorScheme: 'light', bypassCSP: true });
  const page = await context.newPage();
  try {
    await page.goto(authorizeUrl());
    assert.match(await page.title(), /· Acme ID$/);
    assert.equal(await page.textContent('#product'), 'Acme ID');
    // the logo was loaded and rendered: its pixels are the logo's colour
    const pixel = await pixelOf(page, await page.getAttribute('#logo', 'src'), 20, 20);
    assert.deepEqual(pixel, [0xc2, 0x18, 0x5b, 255]);
    // the extra stylesheet applies, in the theme's colour
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('header')).borderBottomColor), LIGHT_PRIMARY);
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('button[type=submit]')).backgroundColor), LIGHT_PRIMARY);
    const path = join(ARTEFACTS, 'themed-login.png');
    const png = await page.screenshot({ path, fullPage: true });
    assert.ok(png.length > 1000, 'a screenshot was written');
    // the logo's colour is in the screenshot where the logo is
    const box = await page.locator('#logo').boundingBox();
    const crop = await page.screenshot({ clip: { x: box.x + 10, y: box.y + 10, width: 4, height: 4 } });
    const shown = await pixelOf(page, `data:image/png;base64,${crop.toString('base64')}`, 1, 1);
    assert.deepEqual(shown, [0xc2, 0x18, 0x5b, 255], 'the screenshot shows the logo');
  } finally {
    await context.close();
  }
});
