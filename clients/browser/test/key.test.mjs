// The page's key and its proofs: the private key cannot be exported, one key per issuer and
// client survives in storage until sign-out, and DPoP proofs carry what RFC 9449 §4.2 and Key
// Binding ask (`htu` without query, `ath`, `c_s256`, `nonce`), verifiable with the public key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyboundClient, MemoryStorage, dpopProof } from '../src/index.js';
import { decodeJws, fromB64u, generateKeyPair, sha256b64u } from '../src/jose.js';

test('the private key is not extractable', async () => {
  const k = await generateKeyPair();
  assert.equal(k.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey('jwk', k.privateKey));
  await assert.rejects(crypto.subtle.exportKey('pkcs8', k.privateKey));
  assert.equal(k.jwk.d, undefined);
});

test('a DPoP proof verifies with the public key and carries ath, c_s256 and nonce', async () => {
  const k = await generateKeyPair();
  const p = await dpopProof(k, {
    htm: 'POST', url: 'https://op.example/token?x=1#f', now: 1000, nonce: 'srv', accessToken: 'at', code: 'cd',
  });
  const d = decodeJws(p);
  assert.equal(d.header.typ, 'dpop+jwt');
  assert.equal(d.header.alg, 'ES256');
  assert.deepEqual(d.header.jwk, k.jwk);
  assert.equal(d.claims.htu, 'https://op.example/token');
  assert.equal(d.claims.htm, 'POST');
  assert.equal(d.claims.iat, 1000);
  assert.equal(d.claims.nonce, 'srv');
  assert.equal(d.claims.ath, await sha256b64u('at'));
  assert.equal(d.claims.c_s256, await sha256b64u('cd'));
  assert.ok(fromB64u(d.claims.jti).length >= 12);
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, k.publicKey, d.signature,
    new TextEncoder().encode(d.input));
  assert.ok(ok);
});

test('one key per issuer and client, kept until sign-out', async () => {
  const storage = new MemoryStorage();
  const meta = { issuer: 'https://op.example' };
  const make = (clientId) => Object.assign(new KeyboundClient({
    issuer: meta.issuer, clientId, redirectUri: 'https://app.example/cb', storage, navigate: () => {},
  }), { meta });
  const a = make('spa');
  const first = await a.keys();
  assert.equal((await make('spa').keys()).jkt, first.jkt, 'a reload finds the same key');
  assert.notEqual((await make('other').keys()).jkt, first.jkt);
  await a.signOut();
  assert.notEqual((await a.keys()).jkt, first.jkt, 'a fresh key after sign-out');
});
