// RFC 9470 step-up in the package: an API's insufficient_user_authentication challenge is read
// (stepUpOf), the client signs in again with its acr_values and max_age (stepUp), and the ID
// Token of that sign-in must say one of the acr values asked for (else id_token_acr).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyboundClient, KeyboundError, MemoryStorage, stepUpOf } from '../src/index.js';
import { generateKeyPair, signJws } from '../src/jose.js';

const ISS = 'https://op.example';
const NOW = 1_763_683_200;
const PASSKEY = 'urn:keybound:acr:passkey';

const challenged = (value, status = 401) => new Response('{}', {
  status, headers: { 'www-authenticate': value },
});

test('stepUpOf reads acr_values and max_age of the challenge, and nothing else', () => {
  const r = challenged(`DPoP error="insufficient_user_authentication", error_description="more", algs="ES256", acr_values="${PASSKEY} urn:keybound:acr:mfa", max_age=600`);
  assert.deepEqual(stepUpOf(r), { acr_values: `${PASSKEY} urn:keybound:acr:mfa`, max_age: '600' });
  assert.deepEqual(stepUpOf(challenged('Bearer error="insufficient_user_authentication", max_age=5')), { max_age: '5' });
  assert.equal(stepUpOf(challenged('DPoP error="invalid_token"')), null);
  assert.equal(stepUpOf(challenged('DPoP error="insufficient_user_authentication"', 403)), null);
  assert.equal(stepUpOf(new Response('ok')), null);
});

test('stepUp signs in with the values, and the answer must carry one of the acr values', async () => {
  const op = await generateKeyPair();
  const storage = new MemoryStorage();
  let navigated;
  let acr = 'urn:keybound:acr:pwd';
  const c = new KeyboundClient({
    issuer: ISS, clientId: 'spa', redirectUri: 'https://app.example/cb', storage,
    navigate: (u) => { navigated = u; }, now: () => NOW, par: false,
    fetch: async (url) => {
      if (url === `${ISS}/jwks`) return new Response(JSON.stringify({ keys: [{ ...op.jwk, kid: 'k1' }] }));
      // the token endpoint: an ID Token for the nonce of the sign-in in progress
      const tx = await storage.get(`${ISS}|spa|tx-copy`);
      const keys = await c.keys();
      const idToken = await signJws({ typ: 'dpop+id_token', kid: 'k1' }, {
        iss: ISS, sub: 'u-1', aud: 'spa', iat: NOW, exp: NOW + 300, nonce: tx.nonce, acr, cnf: { jwk: keys.jwk },
      }, op.privateKey);
      return new Response(JSON.stringify({ token_type: 'DPoP', access_token: 'at', id_token: idToken }));
    },
  });
  c.meta = { issuer: ISS, jwks_uri: `${ISS}/jwks`, token_endpoint: `${ISS}/token`, authorization_endpoint: `${ISS}/authorize` };
  assert.equal(await c.stepUp(new Response('ok')), null, 'no challenge, no sign-in');
  const url = new URL(await c.stepUp(challenged(`DPoP error="insufficient_user_authentication", acr_values="${PASSKEY}", max_age=600`)));
  assert.equal(url.toString(), navigated);
  assert.equal(url.searchParams.get('acr_values'), PASSKEY);
  assert.equal(url.searchParams.get('max_age'), '600');
  const callback = async () => {
    const tx = await storage.get(`${ISS}|spa|tx`);
    await storage.put(`${ISS}|spa|tx-copy`, tx);
    return `https://app.example/cb?code=c1&state=${tx.state}&iss=${encodeURIComponent(ISS)}`;
  };
  // the OP answered with a password sign-in: refused
  await assert.rejects(c.handleCallback(await callback()), (e) => e instanceof KeyboundError && e.code === 'id_token_acr');
  assert.equal(c.user, null);
  // a passkey sign-in is accepted
  await c.stepUp(challenged(`DPoP error="insufficient_user_authentication", acr_values="${PASSKEY}"`));
  acr = PASSKEY;
  const claims = await c.handleCallback(await callback());
  assert.equal(claims.acr, PASSKEY);
});
