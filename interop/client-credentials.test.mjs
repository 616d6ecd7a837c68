// Interop, client credentials (RFC 6749 §4.4) with DPoP (RFC 9449) and a resource indicator
// (RFC 8707): openid-client asks keybound for a token for the client itself; jose, on its own,
// verifies the RFC 9068 access token against the OP's JWKS (typ, iss, aud = the resource,
// sub = the client, cnf.jkt = the thumbprint of openid-client's DPoP key); the OP's
// introspection says the same; a scope the client is not registered for is invalid_scope.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as jose from 'jose';
import { startOp, admin } from './common.mjs';

const API = 'https://api.example/';
let op;

before(async () => {
  op = await startOp((dir) => {
    admin(dir, ['client', 'add', '--client-id', 'm2m', '--auth-method', 'client_secret_basic',
      '--secret', 'm2m-secret', '--grant-type', 'client_credentials',
      '--scope', 'orders.read', '--scope', 'orders.write', '--resource', API]);
  });
});
after(() => op?.stop());

const insecure = { execute: [client.allowInsecureRequests] };

test('openid-client gets a DPoP-bound client-credentials token for a resource; jose verifies it', async () => {
  const config = await client.discovery(new URL(op.issuer), 'm2m', undefined, client.ClientSecretBasic('m2m-secret'), insecure);
  assert.ok(config.serverMetadata().grant_types_supported.includes('client_credentials'));
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  const tokens = await client.clientCredentialsGrant(config, { scope: 'orders.read', resource: API },
    { DPoP: client.getDPoPHandle(config, keyPair) });
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  assert.equal(tokens.scope, 'orders.read');
  assert.equal(tokens.refresh_token, undefined);
  assert.equal(tokens.id_token, undefined);

  const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
  const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
    issuer: op.issuer, audience: API, typ: 'at+jwt',
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assert.equal(payload.sub, 'm2m');
  assert.equal(payload.client_id, 'm2m');
  assert.equal(payload.cnf.jkt, jkt);

  const info = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(info.active, true);
  assert.equal(info.cnf.jkt, jkt);
  assert.equal(info.sub, 'm2m');

  await assert.rejects(
    client.clientCredentialsGrant(config, { scope: 'orders.delete' }),
    (e) => e.error === 'invalid_scope',
  );
});
