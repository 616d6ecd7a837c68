// The attacker's process for spa.test.mjs: it reads what an injected script copied out of the
// page (JSON on stdin: tokens, stored state, the OP and API URLs) and tries every use of it —
// at the API, the token endpoint and userinfo — with no proof, with a Bearer scheme and with
// proofs by its own key. It prints one line of JSON: each attempt's HTTP status.
import * as jose from 'jose';

const input = JSON.parse(await new Promise((ok) => {
  let s = '';
  process.stdin.on('data', (c) => { s += c; });
  process.stdin.on('end', () => ok(s));
}));
const { loot, op, api } = input;
const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
const jwk = await jose.exportJWK(publicKey);
const sha = async (s) => jose.base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s))));

async function proof(htm, url, token) {
  const claims = { jti: crypto.randomUUID(), htm, htu: url, iat: Math.floor(Date.now() / 1000) };
  if (token) claims.ath = await sha(token);
  return new jose.SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk }).sign(privateKey);
}

const results = {};
async function attempt(name, url, init) {
  const r = await fetch(url, { redirect: 'manual', ...init });
  results[name] = r.status;
}

const at = loot.accessToken;
const idt = loot.idToken;
await attempt('api access token, no proof', `${api}/orders`, { headers: { authorization: `DPoP ${at}` } });
await attempt('api access token as Bearer', `${api}/orders`, { headers: { authorization: `Bearer ${at}` } });
await attempt('api access token, own key', `${api}/orders`, {
  headers: { authorization: `DPoP ${at}`, dpop: await proof('GET', `${api}/orders`, at) },
});
await attempt('api ID Token, no proof', `${api}/me`, { headers: { 'id-token': idt } });
await attempt('api ID Token, own key', `${api}/me`, {
  headers: { 'id-token': idt, dpop: await proof('GET', `${api}/me`, idt) },
});
for (const [name, rt] of Object.entries(loot.refreshTokens)) {
  const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, client_id: 'spa' });
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  await attempt(`token endpoint ${name}, no proof`, `${op}/token`, { method: 'POST', headers: form, body });
  await attempt(`token endpoint ${name}, own key`, `${op}/token`, {
    method: 'POST', headers: { ...form, dpop: await proof('POST', `${op}/token`) }, body,
  });
}
await attempt('userinfo, own key', `${op}/userinfo`, {
  headers: { authorization: `DPoP ${at}`, dpop: await proof('GET', `${op}/userinfo`, at) },
});
await attempt('userinfo as Bearer', `${op}/userinfo`, { headers: { authorization: `Bearer ${at}` } });
// the ID Token as an access token
await attempt('api ID Token as access token, own key', `${api}/orders`, {
  headers: { authorization: `DPoP ${idt}`, dpop: await proof('GET', `${api}/orders`, idt) },
});
console.log(JSON.stringify(results));
