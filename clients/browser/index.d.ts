// Types of @keybound/browser (src/index.js).

/** A refusal or failure with a stable code. */
export declare class KeyboundError extends Error {
  readonly code:
    | 'discovery' | 'state_mismatch' | 'iss_mismatch' | 'oauth_error' | 'token_type' | 'not_signed_in'
    | 'id_token_malformed' | 'id_token_signature' | 'id_token_typ' | 'id_token_iss' | 'id_token_aud'
    | 'id_token_expired' | 'id_token_iat' | 'id_token_nonce' | 'id_token_cnf' | 'id_token_key_mismatch'
    | 'id_token_acr';
  /** the OAuth `error` code, for `oauth_error` */
  readonly error?: string;
}

/** Where the key, the refresh token and a sign-in in progress are kept. */
export interface Storage {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
}

/** IndexedDB (the default in a page). */
export declare class IndexedDbStorage implements Storage {
  constructor(name?: string);
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
}

/** In memory. */
export declare class MemoryStorage implements Storage {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
}

export interface ClientOptions {
  /** the OP's issuer identifier */
  issuer: string;
  /** this public client's id at the OP */
  clientId: string;
  /** the registered redirect URI the OP answers at */
  redirectUri: string;
  /** scopes; `openid` and `bound_key` are always added */
  scope?: string;
  /** a registered post-logout redirect URI */
  postLogoutRedirectUri?: string;
  /** push authorization requests (RFC 9126) when the OP offers PAR (default); false: only
   * when its discovery requires it */
  par?: boolean;
  /** default: IndexedDB */
  storage?: Storage;
  /** default: the global fetch */
  fetch?: typeof fetch;
  /** seconds since the epoch; default: the system clock */
  now?: () => number;
  /** how to go to the OP; default: location.assign */
  navigate?: (url: string) => void;
}

/** The ID Token's claims. */
export type IdTokenClaims = Record<string, unknown> & {
  iss: string; sub: string; aud: string | string[]; exp: number; iat: number;
  cnf: { jwk: JsonWebKey };
};

export declare class KeyboundClient {
  /** Load discovery and make a client. */
  static create(options: ClientOptions): Promise<KeyboundClient>;
  /** The signed-in End-User's ID Token claims, or null. */
  readonly user: IdTokenClaims | null;
  /** Go to the OP to sign in (key-bound code flow, pushed when the OP offers PAR); the URL
   * navigated to. */
  signIn(extra?: Record<string, string>): Promise<string>;
  /** When `response` is an API's `insufficient_user_authentication` challenge (RFC 9470),
   * sign in again with its `acr_values` and `max_age` (navigates); null otherwise. The ID
   * Token of that sign-in must say one of the `acr_values` (else `id_token_acr`). */
  stepUp(response: Response, extra?: Record<string, string>): Promise<string | null>;
  /** On the redirect URI: finish the sign-in. */
  handleCallback(href?: string): Promise<IdTokenClaims>;
  /** On load: the session, resumed by a refresh after a reload, or null. */
  resume(): Promise<IdTokenClaims | null>;
  /** Rotate the refresh token; new access and ID Tokens. */
  refresh(): Promise<IdTokenClaims>;
  /** fetch with the DPoP-bound access token and a proof. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Present the key-bound ID Token (ID-Token header and a DPoP proof over it). */
  present(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Revoke, forget tokens and key, then RP-Initiated Logout; the URL navigated to, if any. */
  signOut(): Promise<string | null>;
}

/** Validate a key-bound ID Token against the OP's JWK Set and this page's key thumbprint. */
export declare function validateIdToken(token: string, checks: {
  jwks: { keys: JsonWebKey[] }; issuer: string; clientId: string; nonce?: string; jkt: string; now: number;
}): Promise<IdTokenClaims>;

/** A DPoP proof (RFC 9449 §4.2) by a key pair from this package. */
export declare function dpopProof(
  keys: { privateKey: CryptoKey; jwk: JsonWebKey },
  p: { htm: string; url: string; now: number; nonce?: string; accessToken?: string; code?: string },
): Promise<string>;

/** RFC 7638 thumbprint of a public EC P-256 JWK. */
export declare function thumbprint(jwk: JsonWebKey): Promise<string>;

/** RFC 9470 §3: the authorization request parameters an `insufficient_user_authentication`
 * challenge asks for, or null for any other response. */
export declare function stepUpOf(response: Response): { acr_values?: string; max_age?: string } | null;
