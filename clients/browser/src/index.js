// keybound for single-page apps: OpenID Connect Key Binding and DPoP with a key the page can
// use but nobody can read.
//
// The page creates a non-extractable ECDSA P-256 key (WebCrypto) and keeps the CryptoKey in
// IndexedDB, one per issuer and client. Every token it receives is bound to that key: the ID
// Token (`cnf.jwk`, header `typ: dpop+id_token`), the refresh token and the access tokens (DPoP).
// A script that copies them out of the page gets tokens that need a proof it cannot make
// elsewhere. What it does not stop: a script running *in* the page can ask the key to sign
// while it runs (README.md, threat model).

import {
  decodeJws, dpopProof, generateKeyPair, random, sha256b64u, thumbprint, verifyJws,
} from './jose.js';
import { IndexedDbStorage, MemoryStorage } from './storage.js';

export { IndexedDbStorage, MemoryStorage };
export { dpopProof, thumbprint } from './jose.js';

/** A refusal or failure, with a stable `code` an app can branch on. */
export class KeyboundError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'KeyboundError';
    this.code = code;
    Object.assign(this, details);
  }
}

const fail = (code, message, details) => { throw new KeyboundError(code, message, details); };

/** Allowed clock skew for `exp` and `iat`, seconds. */
const SKEW = 60;

/**
 * Validate a key-bound ID Token (OpenID Connect Core 3.1.3.7 and Key Binding): the signature by
 * a key of the OP's JWK Set, header `typ: dpop+id_token`, `iss`, `aud` (and `azp` with several
 * audiences), `exp`, `iat`, `nonce` when one was sent, and `cnf.jwk` a public key whose
 * thumbprint is `jkt` (this page's key). Returns the claims; throws KeyboundError otherwise.
 */
export async function validateIdToken(token, { jwks, issuer, clientId, nonce, jkt, now }) {
  const d = decodeJws(token);
  if (!d) fail('id_token_malformed', 'the ID Token is not a compact JWS');
  if (!(await verifyJws(d, jwks))) fail('id_token_signature', 'the ID Token is not signed by a key of the OP');
  const c = d.claims;
  if (d.header.typ !== 'dpop+id_token') {
    fail('id_token_typ', `the ID Token is not key-bound: header typ is ${JSON.stringify(d.header.typ)}, not "dpop+id_token"`);
  }
  if (c.iss !== issuer) fail('id_token_iss', `the ID Token's iss is ${JSON.stringify(c.iss)}, not ${issuer}`);
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (!aud.includes(clientId) || (aud.length > 1 && c.azp !== clientId)) {
    fail('id_token_aud', `the ID Token is not for client ${clientId}`);
  }
  if (typeof c.exp !== 'number' || c.exp + SKEW <= now) fail('id_token_expired', 'the ID Token has expired');
  if (typeof c.iat !== 'number' || c.iat - SKEW > now) fail('id_token_iat', 'the ID Token was issued in the future');
  if (nonce !== undefined && c.nonce !== nonce) fail('id_token_nonce', 'the ID Token\'s nonce is not the one this sign-in sent');
  const key = c.cnf?.jwk;
  if (!key || typeof key !== 'object' || 'd' in key) fail('id_token_cnf', 'the ID Token has no public cnf.jwk');
  let bound;
  try {
    bound = await thumbprint(key);
  } catch {
    fail('id_token_cnf', 'the ID Token\'s cnf.jwk is not an EC P-256 public key');
  }
  if (bound !== jkt) fail('id_token_key_mismatch', 'the ID Token is bound to another key than this page\'s');
  return c;
}

/** The `error` and `error_description` of an OAuth error answer, or of a DPoP challenge. */
function challenge(resp) {
  const h = resp.headers.get('www-authenticate') ?? '';
  const error = /error="([^"]*)"/.exec(h)?.[1];
  return { error, nonce: resp.headers.get('dpop-nonce') };
}

/**
 * RFC 9470 §3: what an API's `insufficient_user_authentication` challenge asks of the sign-in —
 * `{ acr_values, max_age }` as authorization request parameters (each only when the challenge
 * names it) — or `null` for any other response.
 */
export function stepUpOf(response) {
  if (response.status !== 401) return null;
  const h = response.headers.get('www-authenticate') ?? '';
  if (/error="([^"]*)"/.exec(h)?.[1] !== 'insufficient_user_authentication') return null;
  const acr = /acr_values="([^"]*)"/.exec(h)?.[1];
  const maxAge = /max_age="?(\d+)"?/.exec(h)?.[1];
  return { ...(acr && { acr_values: acr }), ...(maxAge && { max_age: maxAge }) };
}

/**
 * A single-page app's client of one OP. `create` loads discovery; then `signIn` (redirects to
 * the OP), `handleCallback` (on the redirect URI), `resume` (on load), `fetch` (an API with the
 * access token), `present` (the ID Token to the app's own API) and `signOut`.
 */
export class KeyboundClient {
  /**
   * @param {object} o issuer, clientId, redirectUri, scope (default "openid"; `bound_key` is
   *   always added), postLogoutRedirectUri, par (default: push when the OP offers PAR; false:
   *   only when its discovery requires it), storage (default IndexedDB), fetch, now (seconds),
   *   navigate (default location.assign)
   */
  static async create(o) {
    const c = new KeyboundClient(o);
    const r = await c.http(`${c.issuer}/.well-known/openid-configuration`);
    if (!r.ok) fail('discovery', `discovery answered HTTP ${r.status}`);
    c.meta = await r.json();
    if (c.meta.issuer !== c.issuer) fail('discovery', `discovery names issuer ${c.meta.issuer}, not ${c.issuer}`);
    return c;
  }

  constructor(o) {
    if (!o?.issuer || !o.clientId || !o.redirectUri) throw new TypeError('issuer, clientId and redirectUri are required');
    this.issuer = o.issuer.replace(/\/$/, '');
    this.clientId = o.clientId;
    this.redirectUri = o.redirectUri;
    this.postLogoutRedirectUri = o.postLogoutRedirectUri;
    this.par = o.par;
    const scopes = new Set((o.scope ?? 'openid').split(' ').filter(Boolean));
    scopes.add('openid');
    scopes.add('bound_key');
    this.scope = [...scopes].join(' ');
    this.storage = o.storage ?? new IndexedDbStorage();
    this.http = o.fetch ?? globalThis.fetch.bind(globalThis);
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
    this.navigate = o.navigate ?? ((url) => globalThis.location.assign(url));
    this.prefix = `${this.issuer}|${this.clientId}`;
    this.nonces = new Map(); // DPoP-Nonce per origin
    this.tokens = null; // { accessToken, idToken, claims } in memory only
    this.keyPair = null; // the promise of this page's key, once asked (one storage read per page)
    this.jwks = null; // the OP's key set, fetched again when an ID Token names a key not in it
  }

  /** This page's key for the OP and client: loaded, or created non-extractable on first use;
   * kept in memory after the first call (concurrent first calls share one load). */
  keys() {
    this.keyPair ??= (async () => {
      const k = await this.storage.get(`${this.prefix}|key`);
      if (k) return k;
      const fresh = await generateKeyPair();
      await this.storage.put(`${this.prefix}|key`, fresh);
      return fresh;
    })().catch((e) => {
      this.keyPair = null;
      throw e;
    });
    return this.keyPair;
  }

  /** An ID Token validated against the OP's key set: the cached one, or — when there is none,
   * or the token is signed by a key not in it (a rotation) — the one fetched now. */
  async validated(idToken, nonce, keys) {
    const check = (jwks) => validateIdToken(idToken, {
      jwks, issuer: this.issuer, clientId: this.clientId, nonce, jkt: keys.jkt, now: this.now(),
    });
    if (this.jwks) {
      try {
        return await check(this.jwks);
      } catch (e) {
        if (!(e instanceof KeyboundError && e.code === 'id_token_signature')) throw e;
      }
    }
    this.jwks = await (await this.http(this.meta.jwks_uri)).json();
    return check(this.jwks);
  }

  /** A request with a DPoP proof; one retry when the server asks for a nonce (RFC 9449 §8, §9). */
  async withProof(url, init, proofFor) {
    const origin = new URL(url).origin;
    for (let attempt = 0; ; attempt += 1) {
      const proof = await proofFor(this.nonces.get(origin));
      const headers = new Headers(init.headers);
      headers.set('DPoP', proof);
      const r = await this.http(url, { ...init, headers });
      const nonce = r.headers.get('dpop-nonce');
      if (nonce) this.nonces.set(origin, nonce);
      if (attempt === 0 && nonce && (r.status === 400 || r.status === 401)) {
        const asked = r.status === 401
          ? challenge(r).error === 'use_dpop_nonce'
          : (await r.clone().json().catch(() => ({}))).error === 'use_dpop_nonce';
        if (asked) continue;
      }
      return r;
    }
  }

  /** A form POST to an OP endpoint with a proof (token, PAR, revocation). */
  async postForm(url, form, proofExtra = {}) {
    const keys = await this.keys();
    return this.withProof(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    }, (nonce) => dpopProof(keys, { htm: 'POST', url, now: this.now(), nonce, ...proofExtra }));
  }

  /** Start the key-bound code flow: PKCE, state, nonce, `bound_key`, `dpop_jkt`; pushed (RFC
   * 9126, with a proof) when the OP offers PAR. Navigates to the OP. */
  async signIn(extra = {}) {
    const keys = await this.keys();
    const tx = { state: random(), nonce: random(), verifier: random(48) };
    // a step-up's values (RFC 9470): the ID Token must say one of these acr values
    if (extra.acr_values) tx.acrValues = String(extra.acr_values).split(' ').filter(Boolean);
    await this.storage.put(`${this.prefix}|tx`, tx);
    const params = {
      response_type: 'code',
      client_id: this.clientId,
      redirect_uri: this.redirectUri,
      scope: this.scope,
      state: tx.state,
      nonce: tx.nonce,
      code_challenge: await sha256b64u(tx.verifier),
      code_challenge_method: 'S256',
      dpop_jkt: keys.jkt,
      ...extra,
    };
    let url = new URL(this.meta.authorization_endpoint);
    // pushed whenever the OP offers PAR (a client may be required to push without discovery
    // saying so: the requirement can be per client), unless the app said `par: false`
    const push = this.meta.pushed_authorization_request_endpoint
      && (this.par !== false || this.meta.require_pushed_authorization_requests);
    if (push) {
      const r = await this.postForm(this.meta.pushed_authorization_request_endpoint, params);
      const body = await r.json().catch(() => ({}));
      if (!r.ok) fail('oauth_error', body.error_description ?? `PAR answered HTTP ${r.status}`, { error: body.error });
      url.search = new URLSearchParams({ client_id: this.clientId, request_uri: body.request_uri }).toString();
    } else {
      url.search = new URLSearchParams(params).toString();
    }
    this.navigate(url.toString());
    return url.toString();
  }

  /** On the redirect URI: check `state` and `iss` (RFC 9207), redeem the code with a proof
   * carrying `c_s256`, validate the ID Token. Returns the ID Token's claims. */
  async handleCallback(href = globalThis.location.href) {
    const q = new URL(href).searchParams;
    const tx = await this.storage.get(`${this.prefix}|tx`);
    await this.storage.delete(`${this.prefix}|tx`);
    if (!tx || q.get('state') !== tx.state) fail('state_mismatch', 'this response does not answer a sign-in this page started');
    if (q.get('iss') !== this.issuer) fail('iss_mismatch', `the response comes from ${q.get('iss')}, not ${this.issuer}`);
    if (q.get('error')) fail('oauth_error', q.get('error_description') ?? q.get('error'), { error: q.get('error') });
    const code = q.get('code') ?? fail('oauth_error', 'the response carries no code');
    const r = await this.postForm(this.meta.token_endpoint, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: this.redirectUri,
      code_verifier: tx.verifier,
      client_id: this.clientId,
    }, { code });
    const claims = await this.accept(r, tx.nonce);
    if (tx.acrValues && !tx.acrValues.includes(claims.acr)) {
      this.tokens = null;
      fail('id_token_acr', `the ID Token's acr is ${JSON.stringify(claims.acr)}, not one of ${tx.acrValues.join(', ')} that this sign-in asked for`);
    }
    return claims;
  }

  /** When `response` is an API's `insufficient_user_authentication` challenge (RFC 9470),
   * sign in again with its `acr_values` and `max_age` (navigates to the OP) and return the
   * URL; `null` for any other response. */
  async stepUp(response, extra = {}) {
    const asked = stepUpOf(response);
    if (!asked) return null;
    return this.signIn({ ...extra, ...asked });
  }

  /** A token response: refresh token kept (it is DPoP-bound), ID Token validated. */
  async accept(r, nonce) {
    const body = await r.json().catch(() => ({}));
    if (!r.ok) fail('oauth_error', body.error_description ?? `the token endpoint answered HTTP ${r.status}`, { error: body.error });
    if (String(body.token_type).toLowerCase() !== 'dpop') fail('token_type', `the access token is ${body.token_type}, not DPoP-bound`);
    const keys = await this.keys();
    const claims = await this.validated(body.id_token, nonce, keys);
    if (body.refresh_token) await this.storage.put(`${this.prefix}|refresh`, body.refresh_token);
    this.tokens = { accessToken: body.access_token, idToken: body.id_token, claims };
    return claims;
  }

  /** Rotate the refresh token (with a proof by this page's key): new access and ID Tokens. */
  async refresh() {
    const rt = await this.storage.get(`${this.prefix}|refresh`);
    if (!rt) fail('not_signed_in', 'no refresh token: sign in');
    const r = await this.postForm(this.meta.token_endpoint, {
      grant_type: 'refresh_token', refresh_token: rt, client_id: this.clientId,
    });
    if (!r.ok) await this.storage.delete(`${this.prefix}|refresh`);
    return this.accept(r, undefined);
  }

  /** On page load: the session so far, resumed by a refresh when the page was reloaded, or
   * `null` when there is none. */
  async resume() {
    if (this.tokens) return this.tokens.claims;
    if (!(await this.storage.get(`${this.prefix}|refresh`))) return null;
    try {
      return await this.refresh();
    } catch (e) {
      if (e instanceof KeyboundError && (e.code === 'oauth_error' || e.code === 'not_signed_in')) return null;
      throw e;
    }
  }

  /** The signed-in End-User's ID Token claims, or `null`. */
  get user() { return this.tokens?.claims ?? null; }

  /** A request with a proof by this page's key (and `ath` over `token`); retried once for a
   * nonce. `scheme` "DPoP" puts the token in Authorization, "ID-Token" in its own header. */
  async proven(input, init, token, scheme) {
    const keys = await this.keys();
    const req = new Request(input, init);
    const headers = new Headers(init?.headers);
    if (scheme === 'DPoP') headers.set('Authorization', `DPoP ${token}`);
    else headers.set('ID-Token', token);
    return this.withProof(req.url, { ...init, method: req.method, headers },
      (nonce) => dpopProof(keys, { htm: req.method, url: req.url, now: this.now(), nonce, accessToken: token }));
  }

  /** `fetch` an API with the DPoP-bound access token; a token the API refuses as invalid is
   * refreshed once. */
  async fetch(input, init = {}) {
    if (!this.tokens) await this.refresh();
    let r = await this.proven(input, init, this.tokens.accessToken, 'DPoP');
    if (r.status === 401 && challenge(r).error === 'invalid_token') {
      await this.refresh();
      r = await this.proven(input, init, this.tokens.accessToken, 'DPoP');
    }
    return r;
  }

  /** Present the key-bound ID Token to the app's own API (docs/presentation.md: `ID-Token`
   * and a DPoP proof with `ath` over it). */
  async present(input, init = {}) {
    if (!this.tokens) await this.refresh();
    return this.proven(input, init, this.tokens.idToken, 'ID-Token');
  }

  /** Sign out: revoke the refresh token, forget the tokens and delete the key (a fresh one
   * at the next sign-in), then RP-Initiated Logout at the OP when it has an end-session
   * endpoint. */
  async signOut() {
    const rt = await this.storage.get(`${this.prefix}|refresh`);
    const idToken = this.tokens?.idToken;
    if (rt && this.meta.revocation_endpoint) {
      await this.postForm(this.meta.revocation_endpoint, {
        token: rt, token_type_hint: 'refresh_token', client_id: this.clientId,
      }).catch(() => undefined);
    }
    for (const k of ['refresh', 'key', 'tx']) await this.storage.delete(`${this.prefix}|${k}`);
    this.tokens = null;
    this.keyPair = null;
    if (!this.meta.end_session_endpoint) return null;
    const url = new URL(this.meta.end_session_endpoint);
    const q = { client_id: this.clientId };
    if (idToken) q.id_token_hint = idToken;
    if (this.postLogoutRedirectUri) q.post_logout_redirect_uri = this.postLogoutRedirectUri;
    url.search = new URLSearchParams(q).toString();
    this.navigate(url.toString());
    return url.toString();
  }
}
