// The peer for docs/performance.md's side-by-side runs: panva's oidc-provider (DPoP on by
// default in v9), ES256 signing, an in-memory adapter that never evicts, PKCE, refresh tokens
// with rotation, and a scripted End-User (every interaction: "demo" signs in and consents).
// Usage: PORT=18100 node interop/peer-oidc-provider.mjs
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 18100);
const issuer = `http://127.0.0.1:${port}`;
const stores = new Map();

class MemoryAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.m = stores.get(name);
  }
  async upsert(id, payload) { this.m.set(id, payload); }
  async find(id) { return this.m.get(id); }
  async findByUserCode(userCode) { for (const p of this.m.values()) if (p.userCode === userCode) return p; return undefined; }
  async findByUid(uid) { for (const p of this.m.values()) if (p.uid === uid) return p; return undefined; }
  async consume(id) { const p = this.m.get(id); if (p) p.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { this.m.delete(id); }
  async revokeByGrantId(grantId) { for (const [k, p] of this.m) if (p.grantId === grantId) this.m.delete(k); }
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'peer-es256' };

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  jwks: { keys: [jwk] },
  clients: [{
    client_id: 'demo-public',
    token_endpoint_auth_method: 'none',
    redirect_uris: ['http://127.0.0.1:8081/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
  }],
  features: { devInteractions: { enabled: false } },
  scopes: ['openid', 'offline_access'],
  issueRefreshToken: async () => true,
  rotateRefreshToken: true,
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});
const callback = provider.callback();

createServer(async (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    try {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: 'demo', clientId: details.params.client_id });
      grant.addOIDCScope('openid offline_access');
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: 'demo' }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 500;
      res.end(String(e));
    }
    return;
  }
  if (req.url === '/healthz') { res.end('ok'); return; }
  callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`peer oidc-provider ready at ${issuer}`));
