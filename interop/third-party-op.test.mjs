// The keybound RP (through `keybound login`) against a third-party OP that knows DPoP but not
// Key Binding: panva's oidc-provider, started here on loopback. With binding required the RP
// fails with "the OP did not bind the ID Token"; with --allow-unbound it completes the plain
// DPoP code flow and reports an unbound ID Token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Provider from 'oidc-provider';
import { BIN, freePort } from './common.mjs';

let server, issuer, cbPort, work;

before(async () => {
  const port = await freePort();
  cbPort = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'kb-rp',
      token_endpoint_auth_method: 'none',
      redirect_uris: [`http://127.0.0.1:${cbPort}/callback`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    features: { devInteractions: { enabled: false } },
    scopes: ['openid', 'profile'],
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id, name: 'Third Party Alice' }) }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  const callback = provider.callback();
  // A scripted End-User: every interaction is answered with "alice signed in and consented".
  server = createServer(async (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      try {
        const details = await provider.interactionDetails(req, res);
        const grant = new provider.Grant({ accountId: 'alice', clientId: details.params.client_id });
        grant.addOIDCScope('openid profile');
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, { login: { accountId: 'alice' }, consent: { grantId } }, { mergeWithLastSubmission: false });
      } catch (e) {
        res.statusCode = 500;
        res.end(String(e));
      }
      return;
    }
    callback(req, res);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  work = mkdtempSync(join(tmpdir(), 'keybound-3p-'));
});

after(() => {
  server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function login(extra) {
  return new Promise((resolve) => {
    execFile(BIN, ['login', '--issuer', issuer, '--client-id', 'kb-rp', '--scope', 'openid profile',
      '--port', String(cbPort), '--username', 'alice', '--password', 'unused', '--session', join(work, 's.json'), ...extra],
    { timeout: 30000 }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr }));
  });
}

test('binding required: the RP refuses the unbound ID Token with a clear error', async () => {
  const r = await login([]);
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /the OP did not bind the ID Token/);
});

test('binding optional: the plain DPoP flow completes and reports an unbound ID Token', async () => {
  const r = await login(['--allow-unbound']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /UNBOUND ID Token/);
});
