// What the client keeps in memory: the page's key is read from storage once per page (and
// concurrent first calls share one key), the OP's key set is fetched once and again only when
// an ID Token is signed by a key it does not hold (a rotation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyboundClient, MemoryStorage } from '../src/index.js';
import { generateKeyPair, signJws } from '../src/jose.js';

const ISS = 'https://op.example';
const NOW = 1_763_683_200;

function client(storage, fetch) {
  const c = new KeyboundClient({
    issuer: ISS, clientId: 'spa', redirectUri: 'https://app.example/cb', storage, fetch,
    navigate: () => {}, now: () => NOW,
  });
  c.meta = { issuer: ISS, jwks_uri: `${ISS}/jwks`, token_endpoint: `${ISS}/token` };
  return c;
}

test('the key is read from storage once, and concurrent first calls share it', async () => {
  const storage = new MemoryStorage();
  let gets = 0;
  const counting = Object.assign(Object.create(storage), {
    get: (k) => { gets += 1; return storage.get(k); },
  });
  const c = client(counting, () => { throw new Error('no network'); });
  const [a, b] = await Promise.all([c.keys(), c.keys()]);
  assert.equal(a.jkt, b.jkt);
  for (let i = 0; i < 5; i += 1) assert.equal((await c.keys()).jkt, a.jkt);
  assert.equal(gets, 1, 'one storage read for seven calls');
  assert.equal((await client(storage, null).keys()).jkt, a.jkt, 'a reload finds the same key');
});

test('the JWK Set is fetched once, and again for a key it does not hold', async () => {
  const page = await generateKeyPair();
  const storage = new MemoryStorage();
  await storage.put(`${ISS}|spa|key`, page);
  const op1 = await generateKeyPair();
  const op2 = await generateKeyPair();
  let published = [{ ...op1.jwk, kid: 'k1', use: 'sig', alg: 'ES256' }];
  let fetches = 0;
  const fetch = async (url) => {
    assert.equal(url, `${ISS}/jwks`);
    fetches += 1;
    return new Response(JSON.stringify({ keys: published }));
  };
  const c = client(storage, fetch);
  const idToken = (op, kid) => signJws({ typ: 'dpop+id_token', kid }, {
    iss: ISS, sub: 'u-1', aud: 'spa', iat: NOW, exp: NOW + 300, cnf: { jwk: page.jwk },
  }, op.privateKey);
  const answer = async (op, kid) => new Response(JSON.stringify({
    token_type: 'DPoP', access_token: 'at', id_token: await idToken(op, kid),
  }));
  await c.accept(await answer(op1, 'k1'));
  await c.accept(await answer(op1, 'k1'));
  assert.equal(fetches, 1, 'two token responses, one fetch');
  // the OP rotates: its new key is published, the cached set does not hold it
  published = [...published, { ...op2.jwk, kid: 'k2', use: 'sig', alg: 'ES256' }];
  await c.accept(await answer(op2, 'k2'));
  assert.equal(fetches, 2, 'fetched again for the new key');
  // a token no published key signed is still refused, after one more fetch
  const stranger = await generateKeyPair();
  await assert.rejects(c.accept(await answer(stranger, 'k9')), (e) => e.code === 'id_token_signature');
  assert.equal(fetches, 3);
});
