//! Why a request is refused, as data: one reason enum per stage of the provider.
//!
//! A call site names the rule that failed and the facts of the failure ("expected X, got Y");
//! it never chooses an OAuth error code or an HTTP status. [`crate::OpError::wire`] (in
//! `error.rs`) is the one place that turns a reason into a code and a status, so two endpoints
//! cannot answer the same failure differently, and a new grant or page cannot invent a code of
//! its own. Each variant's documentation names the rule it enforces (checklist ID of
//! `../shared/specs/` or RFC section); its `Display` is the `error_description` the client or
//! End-User sees, written for a developer who must act on it.

use keybound_jose::Jkt;
use keybound_proto::wire::token_type;

use crate::client_auth::JWT_BEARER_ASSERTION;

/// A refusal, by stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// the request's shape, at any endpoint
    #[error(transparent)]
    Request(#[from] RequestRefusal),
    /// client authentication
    #[error(transparent)]
    ClientAuth(#[from] ClientAuthRefusal),
    /// the DPoP proof and what it is bound to
    #[error(transparent)]
    Binding(#[from] BindingRefusal),
    /// the `authorization_code` grant
    #[error(transparent)]
    Code(#[from] CodeRefusal),
    /// the `refresh_token` grant
    #[error(transparent)]
    Refresh(#[from] RefreshRefusal),
    /// the device authorization endpoint and the `device_code` grant
    #[error(transparent)]
    Device(#[from] DeviceRefusal),
    /// token exchange into an ID-JAG
    #[error(transparent)]
    Exchange(#[from] ExchangeRefusal),
    /// the jwt-bearer grant redeeming an ID-JAG
    #[error(transparent)]
    JwtBearer(#[from] JwtBearerRefusal),
    /// the client credentials grant
    #[error(transparent)]
    ClientCredentials(#[from] ClientCredentialsRefusal),
    /// the FAPI 2.0 Security Profile
    #[error(transparent)]
    Fapi2(#[from] Fapi2Refusal),
    /// the authorization request (code, implicit and hybrid flows)
    #[error(transparent)]
    Authorize(#[from] AuthorizeRefusal),
    /// dynamic client registration
    #[error(transparent)]
    Registration(#[from] RegistrationRefusal),
    /// a protected resource of the provider (userinfo)
    #[error(transparent)]
    Resource(#[from] ResourceRefusal),
    /// the End-User's pages (login, consent, device verification, logout)
    #[error(transparent)]
    Page(#[from] PageRefusal),
    /// RFC 8707 resource indicators
    #[error(transparent)]
    Target(#[from] TargetRefusal),
    /// RP-Initiated and Back-Channel Logout
    #[error(transparent)]
    Logout(#[from] LogoutRefusal),
    /// passkeys (WebAuthn) and the strength of a sign-in
    #[error(transparent)]
    Passkey(#[from] PasskeyRefusal),
    /// Device Bound Session Credentials (the browser's session key)
    #[error(transparent)]
    Dbsc(#[from] DbscRefusal),
    /// the operator's API (`/admin/v1/`)
    #[error(transparent)]
    Admin(#[from] AdminRefusal),
}

/// The admin API (crate::admin): who may call it, and what its documents must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminRefusal {
    /// The admin API takes DPoP-bound tokens only (a Bearer token that leaks is useless).
    #[error("the admin API takes DPoP-bound access tokens only: get one with the client credentials grant and a DPoP proof, and send it as Authorization: DPoP")]
    NotBound,
    /// The token lacks the admin scope.
    #[error("this access token lacks the scope keybound:admin")]
    Scope,
    /// The token is an End-User's, not an admin client's own.
    #[error(
        "the admin API takes a client's own token (client credentials grant), not an End-User's"
    )]
    EndUserToken,
    /// The client lost the admin scope after its token was issued.
    #[error("client '{0}' no longer has the scope keybound:admin")]
    NoLongerAdmin(String),
    /// RFC 9110 §15.5.5: nothing of that kind by that id.
    #[error("no {kind} '{id}'")]
    NotFound {
        /// client, user, trusted issuer, passkey
        kind: &'static str,
        /// the id asked for
        id: String,
    },
    /// RFC 9110 §13.1.2: `If-None-Match: *` and it exists.
    #[error("{kind} '{id}' exists already (If-None-Match: *)")]
    Exists {
        /// what kind of thing
        kind: &'static str,
        /// its id
        id: String,
    },
    /// RFC 9110 §13.1.1: `If-Match` names another version than the current one.
    #[error("{kind} '{id}' changed since it was read (If-Match does not match its ETag): read it again and reapply the change")]
    Changed {
        /// what kind of thing
        kind: &'static str,
        /// its id
        id: String,
    },
    /// A member that names the resource disagrees with the path.
    #[error("{member} in the body differs from the one in the path")]
    PathMismatch {
        /// the member
        member: &'static str,
    },
    /// A read-only member was changed.
    #[error("{member} is read-only")]
    ReadOnly {
        /// the member
        member: &'static str,
    },
    /// A member's value is not acceptable.
    #[error("{member}: {reason}")]
    Invalid {
        /// the member
        member: &'static str,
        /// what it must be
        reason: String,
    },
    /// The body is not the document expected.
    #[error("the body is not a valid document: {0}")]
    Body(String),
    /// `limit` out of range.
    #[error("limit must be 1 to {max}")]
    PageLimit {
        /// the largest page
        max: u32,
    },
    /// A client document breaks a rule of client registration (crate::check_client).
    #[error(transparent)]
    Client(RegistrationRefusal),
}

/// Device Bound Session Credentials at `/dbsc/start` and `/dbsc/refresh` (specs/dbsc.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DbscRefusal {
    /// This OP does not offer device-bound sessions (`dbsc = "off"`).
    #[error("device-bound sessions are off at this OP")]
    Off,
    /// The request carries no live session to bind or refresh.
    #[error("no session to bind: sign in first")]
    NoSession,
    /// The session is bound already (one key per session).
    #[error("this session is bound to a key already")]
    AlreadyBound,
    /// A refresh for a session that never registered a key, or names another DBSC session.
    #[error("no device-bound session '{0}' here")]
    UnknownSession(String),
    /// DBSC: the `dbsc+jwt` fails a rule (typ, alg, key, signature).
    #[error("{0}")]
    Jwt(keybound_proto::Error),
    /// The JWT answers no challenge of this OP for this session, or one expired or used.
    #[error("the JWT's jti is not a live challenge of this OP for this session")]
    Challenge,
    /// The registration JWT does not echo the offer's `authorization`.
    #[error("the registration JWT does not echo this session's authorization value")]
    Authorization,
    /// The browser sent no `Secure-Session-Response`.
    #[error("no Secure-Session-Response header")]
    NoResponse,
    /// `dbsc = "require"` or the client's `--require-dbsc`: the session was not bound to the
    /// browser's key (the browser does not speak DBSC, or the OP offers none).
    #[error("This sign-in must be bound to this device, and this browser did not bind it: use a browser with Device Bound Session Credentials (Chrome 146 or later), or ask the app's operator.")]
    Required,
}

/// Passkeys: registering, signing in, managing them (crate::passkey), and what a sign-in must
/// have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasskeyRefusal {
    /// WebAuthn §5.1.3 (RP ID): passkeys need an issuer on a host name.
    #[error("{0}")]
    Unavailable(String),
    /// The ceremony's sealed state was not issued by this OP for this browser and step.
    #[error(
        "This passkey request was not started in this browser; reload the page and try again."
    )]
    ForeignCeremony,
    /// A ceremony finishes once, within its lifetime (a replayed response is refused).
    #[error("This passkey request expired or was already used; reload the page and try again.")]
    CeremonyUsedOrExpired,
    /// The browser's credential is not WebAuthn JSON.
    #[error("the passkey response is malformed: {0}")]
    Malformed(String),
    /// The library refused to start a ceremony.
    #[error("passkey ceremony: {0}")]
    Library(String),
    /// WebAuthn §7.1/§7.2: signature, challenge, origin, RP ID, user verification — or an
    /// unknown credential, answered alike (no answer tells which accounts exist).
    #[error("The passkey could not be verified, or is not registered here.")]
    NotVerified(String),
    /// WebAuthn §6.1.1: the signature counter did not move forward: a cloned authenticator.
    #[error("This passkey was refused: its signature counter went back, so it may have been copied. Sign in another way and check your passkeys.")]
    ClonedAuthenticator {
        /// the credential
        credential_id: String,
    },
    /// The authenticator's credential is registered already.
    #[error("This passkey is registered already.")]
    AlreadyRegistered,
    /// A passkey ceremony for an End-User that does not exist.
    #[error("no such End-User")]
    NoSuchUser,
    /// A second factor was asked of an End-User without passkeys.
    #[error("This account has no passkey yet: add one on your account page first.")]
    NoPasskey,
    /// Passkeys of an account that has one are managed only by a sign-in that used one.
    #[error("Confirm with one of your passkeys to add, rename or remove passkeys.")]
    StepUpToManage,
    /// Rename or remove a passkey the End-User does not have.
    #[error("You have no passkey with this id.")]
    NotYours,
    /// A passkey name: 1 to 64 characters, no control characters.
    #[error("Give the passkey a name of 1 to 64 characters.")]
    Name,
}

/// OpenID Connect RP-Initiated Logout 1.0 at the end-session endpoint, and Back-Channel Logout
/// 1.0's end of the grants of a logged-out session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutRefusal {
    /// RP-Initiated Logout §2: `id_token_hint` is an ID Token this OP issued (its signature,
    /// issuer and an ID Token's `typ`; expired ones are accepted).
    #[error("id_token_hint: {0}")]
    Hint(keybound_proto::Error),
    /// The hint names several audiences and no `azp`: it does not say which client asks.
    #[error("id_token_hint has several audiences and no azp: send client_id instead")]
    HintAudience,
    /// RP-Initiated Logout §2: with both, `client_id` is the client the hint was issued to.
    #[error(
        "client_id '{client_id}' is not the client the id_token_hint was issued to ('{hinted}')"
    )]
    ClientMismatch {
        /// `client_id` sent
        client_id: String,
        /// the hint's client
        hinted: String,
    },
    /// The client the request names is not registered.
    #[error("unknown client '{0}'")]
    UnknownClient(String),
    /// RP-Initiated Logout §3: a post-logout redirect URI belongs to a client, named by
    /// `id_token_hint` or `client_id`.
    #[error("post_logout_redirect_uri needs id_token_hint or client_id to say whose it is")]
    RedirectWithoutClient,
    /// RP-Initiated Logout §3: only a registered post-logout redirect URI, exactly.
    #[error("post_logout_redirect_uri '{uri}' is not registered for client '{client_id}' (register it with --post-logout-redirect-uri or post_logout_redirect_uris)")]
    RedirectNotRegistered {
        /// the URI asked for
        uri: String,
        /// the client
        client_id: String,
    },
    /// Back-Channel Logout (docs/operations.md, logout): a client that follows the OP session
    /// cannot use a grant from a session that was logged out.
    #[error("the End-User logged out of the session this grant began in; sign in again")]
    SessionEnded,
}

/// RFC 8707 resource indicators at the token endpoint: the resources an access token is for
/// become its `aud` (RFC 9068 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetRefusal {
    /// RFC 8707 §2: a resource is an absolute URI without a fragment.
    #[error("resource '{0}' must be an absolute URI without a fragment (RFC 8707 §2)")]
    Malformed(String),
    /// The resources a client may obtain tokens for are registered
    /// (`keybound admin client add --resource`, registration metadata `resources`).
    #[error("resource '{resource}' is not registered for client '{client}'")]
    NotRegistered {
        /// the resource asked for
        resource: String,
        /// the client
        client: String,
    },
    /// RFC 8707 §2.2, ID-JAG: a request may narrow the resources its grant names, never add.
    #[error("resource '{0}' is not one the grant allows (the authorization request's or the ID-JAG's resources)")]
    NotGranted(String),
}

/// The shape of a request, wherever it arrives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// RFC 6749 §3.1, §3.2: request parameters must not be included more than once.
    #[error("parameter '{0}' appears more than once")]
    DuplicateParameter(String),
    /// RFC 6749 §4.1.3, §5.2: a required parameter is missing (an empty value counts as absent).
    #[error("missing parameter '{0}'")]
    MissingParameter(String),
    /// RFC 6749 §3.2: token-style endpoints (and our forms) take
    /// `application/x-www-form-urlencoded`.
    #[error("the body must be application/x-www-form-urlencoded")]
    NotAForm,
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error(
        "grant_type '{0}' is not supported; use authorization_code, refresh_token, {dc}, {te} or {jb}",
        dc = keybound_proto::wire::grant_type::DEVICE_CODE,
        te = keybound_proto::wire::grant_type::TOKEN_EXCHANGE,
        jb = keybound_proto::wire::grant_type::JWT_BEARER
    )]
    UnsupportedGrantType(String),
    /// RFC 7591 §2 `grant_types`, RFC 6749 §5.2 `unauthorized_client`: a client uses the
    /// grants it registered.
    #[error("client '{client}' is not registered for grant_type '{grant}'")]
    GrantNotRegistered {
        /// the client
        client: String,
        /// the grant it asked for
        grant: String,
    },
    /// OIDC Core 3.1.2.1, RFC 8628 §3.1: an OpenID request carries the `openid` scope.
    #[error("scope must include openid")]
    OpenidScopeRequired,
    /// Key Binding KB-OP1/KB-OP2: the binding parameters (`bound_key` needs `dpop_jkt`, which
    /// must be a thumbprint).
    #[error("{0}")]
    Binding(keybound_proto::Error),
}

/// Client authentication (RFC 6749 §2.3, §3.2.1; RFC 7523 §3; RFC 7521 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthRefusal {
    /// RFC 6749 §2.3: the `Authorization: Basic` value does not decode to `id:secret`.
    #[error("malformed HTTP Basic credentials")]
    MalformedBasic,
    /// RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    #[error("use exactly one client authentication method per request")]
    SeveralMethods,
    /// RFC 6749 §2.3.1: the form's `client_id` names another client than HTTP Basic.
    #[error("client_id differs from the HTTP Basic user")]
    BasicIdMismatch,
    /// RFC 6749 §2.3.1: `client_secret` in the body goes with `client_id`.
    #[error("client_secret without client_id")]
    SecretWithoutId,
    /// RFC 7521 §4.2: the assertion type of a client assertion.
    #[error("client_assertion_type must be {JWT_BEARER_ASSERTION}")]
    AssertionType,
    /// RFC 7523 §3: the form's `client_id` names another client than the assertion's `iss`.
    #[error("client_id differs from the assertion's iss")]
    AssertionIdMismatch,
    /// RFC 6749 §3.2.1: the request names no client at all.
    #[error("no client authentication: send client_id (public clients) or credentials")]
    NoCredentials,
    /// RFC 6749 §5.2: no client is registered with this id.
    #[error("unknown client '{0}'")]
    UnknownClient(String),
    /// A confidential client sent only its `client_id`.
    #[error("client '{client}' must authenticate with {method}")]
    MustAuthenticate {
        /// the client
        client: String,
        /// its registered method
        method: &'static str,
    },
    /// A client must use the method it registered (`token_endpoint_auth_method`).
    #[error("client '{client}' is registered for {registered}, not {used}")]
    WrongMethod {
        /// the client
        client: String,
        /// its registered method
        registered: &'static str,
        /// the method the request used
        used: &'static str,
    },
    /// RFC 6749 §2.3.1: the secret does not verify (no detail, so nothing is learned).
    #[error("client authentication failed")]
    Failed,
    /// RFC 7523 §3: the client assertion breaks a rule.
    #[error("client_assertion: {0}")]
    Assertion(AssertionDefect),
    /// RFC 7662 §2.1: the caller of introspection must be authorised; a public client's id is
    /// no credential.
    #[error("introspection needs client authentication: public clients cannot introspect (RFC 7662 §2.1)")]
    PublicClientIntrospection,
}

/// What is wrong with a `private_key_jwt` client assertion (RFC 7523 §3, rfc7523bis).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionDefect {
    /// RFC 7523 §3 item 9: not a well-formed JWS.
    #[error("{0}")]
    Malformed(String),
    /// RFC 7523 §3 item 1: `iss` is required (the client id).
    #[error("iss is required")]
    IssRequired,
    /// RFC 7523 §3 item 2: `sub` is the client id, like `iss`.
    #[error("iss and sub must both be the client_id")]
    SubNotIss,
    /// RFC 7523 §3 item 9: signed by one of the client's registered keys.
    #[error("signature does not verify with the client's registered keys")]
    Signature,
    /// rfc7523bis: `aud` is the issuer identifier.
    #[error("aud must be the issuer '{0}'")]
    Audience(String),
    /// RFC 7523 §3 item 4: `exp` is required.
    #[error("exp is required")]
    ExpRequired,
    /// RFC 7523 §3 item 4: the assertion expired.
    #[error("expired")]
    Expired,
    /// RFC 7523 §3 item 6: `iat` is not in the future.
    #[error("iat is in the future")]
    IatInFuture,
    /// A bounded lifetime: an assertion valid for years is a long-lived secret.
    #[error("lifetime too long: exp may be at most {0} s after iat (or now)")]
    LifetimeTooLong(u64),
    /// RFC 7523 §3 item 7: `jti` is required (and at most 256 characters here).
    #[error("jti is required")]
    JtiRequired,
    /// RFC 7523 §3 item 7: each assertion is used once.
    #[error("replayed (jti already used)")]
    Replayed,
}

/// What a DPoP key is bound to, for the binding checks' messages and codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// an authorization code (`dpop_jkt`, RFC 9449 §10)
    AuthorizationCode,
    /// a device code (Key Binding device profile)
    DeviceCode,
    /// a refresh token (RFC 9449 §5, KB-RF2)
    RefreshToken,
    /// an access token (RFC 9449 §7.1)
    AccessToken,
    /// the subject ID Token of a token exchange (`cnf.jwk`, Key Binding ID1 §6)
    SubjectIdToken,
    /// an ID-JAG redeemed with jwt-bearer (`cnf`, ID-JAG §"cnf")
    IdJag,
}

impl Bound {
    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::AuthorizationCode => "authorization code",
            Bound::DeviceCode => "device code",
            Bound::RefreshToken => "refresh token",
            Bound::AccessToken => "access token",
            Bound::SubjectIdToken => "subject ID Token",
            Bound::IdJag => "ID-JAG",
        }
    }

    /// Whether the bound thing is an assertion presented as a grant (token exchange subject,
    /// ID-JAG): its binding failures are `invalid_grant` (ID-JAG: "cnf but no proof →
    /// invalid_grant"), where a code's or token's missing proof is a proof defect.
    pub fn is_assertion(self) -> bool {
        matches!(self, Bound::SubjectIdToken | Bound::IdJag)
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DPoP proof against what it must prove (RFC 9449 §5, §7.1, §10; Key Binding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingRefusal {
    /// RFC 9449 §10, §7.1, KB-OP6, KB-RF2, IJ (cnf): what is bound to a key needs a proof by
    /// that key; none was sent.
    #[error("proof of possession required: the {bound} is bound to a DPoP key; send a DPoP proof signed by that key")]
    ProofRequired {
        /// what is bound
        bound: Bound,
    },
    /// RFC 9449 §10, §7.1, KB-OP6, KB-RF2, IJ (cnf): the proof is by another key than the
    /// bound one.
    #[error("the {bound} is bound to key {expected}, but the DPoP proof is signed by {got}: prove possession of the bound key")]
    KeyMismatch {
        /// the bound key
        expected: Jkt,
        /// the proof's key
        got: Jkt,
        /// what is bound
        bound: Bound,
    },
    /// RFC 9449 §5.2, DP-T7: a client registered with `dpop_bound_access_tokens` sends a
    /// proof with every token request.
    #[error("this client is registered with dpop_bound_access_tokens: send a DPoP proof")]
    ClientRequiresProof,
    /// Key Binding KB-OP4: a `bound_key` grant is redeemed only with a proof (with `c_s256`).
    #[error("bound_key requires a DPoP proof")]
    BoundKeyNeedsProof,
    /// Key Binding device profile (device-flow.md §8.5): `dpop_jkt` and a proof at the device
    /// authorization endpoint name the same key.
    #[error("dpop_jkt and the DPoP proof name different keys")]
    DpopJktDisagrees,
}

/// The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6, Security BCP §4.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeRefusal {
    /// RFC 6749 §4.1.3: no such code.
    #[error("unknown authorization code")]
    Unknown,
    /// RFC 6749 §4.1.2: codes are short-lived.
    #[error("authorization code expired")]
    Expired,
    /// RFC 6749 §4.1.3: the code was issued to the authenticated client.
    #[error("authorization code was issued to another client")]
    OtherClient,
    /// RFC 6749 §4.1.2: a code used twice revokes what it issued.
    #[error("authorization code was already used; the tokens issued from it are revoked")]
    Reused,
    /// The code stopped being redeemable between lookup and consumption.
    #[error("authorization code is no longer valid")]
    NoLongerValid,
    /// RFC 6749 §4.1.3: `redirect_uri` equals the authorization request's.
    #[error("redirect_uri must equal the one of the authorization request")]
    RedirectUri,
    /// RFC 7636 §4.1: the verifier's shape.
    #[error(
        "PKCE: code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)"
    )]
    VerifierShape,
    /// RFC 7636 §4.6: `S256(code_verifier) == code_challenge`.
    #[error("PKCE: code_verifier does not match the code_challenge")]
    VerifierMismatch,
    /// RFC 7636 §4.5: a code issued with a challenge needs the verifier.
    #[error("PKCE: code_verifier is required")]
    VerifierRequired,
    /// Security BCP §4.8.2 (PKCE downgrade): a verifier without a challenge is refused.
    #[error("PKCE: code_verifier sent but no code_challenge was")]
    VerifierWithoutChallenge,
}

/// The `refresh_token` grant (RFC 6749 §6, Security BCP §4.14.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshRefusal {
    /// RFC 6749 §6: no such refresh token.
    #[error("unknown refresh token")]
    Unknown,
    /// The refresh token's lifetime ended.
    #[error("refresh token expired")]
    Expired,
    /// RFC 7009: revoked.
    #[error("refresh token was revoked")]
    Revoked,
    /// Security BCP §4.14.2: a rotated token used again revokes the grant.
    #[error(
        "refresh token was already used: reuse detected, the grant and all its tokens are revoked"
    )]
    Reused,
    /// RFC 6749 §6: the token was issued to the authenticated client.
    #[error("refresh token was issued to another client")]
    OtherClient,
    /// The token stopped being usable between lookup and rotation.
    #[error("refresh token is no longer valid")]
    NoLongerValid,
    /// RFC 6749 §6: the scope may not exceed what was granted.
    #[error("scope '{0}' was not granted to this refresh token")]
    ScopeNotGranted(String),
}

/// The device flow (RFC 8628 §3.5, Key Binding device profile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceRefusal {
    /// RFC 8628 §3.5: no such device code.
    #[error("unknown device code")]
    Unknown,
    /// RFC 8628 §3.5 `expired_token`.
    #[error("the device code expired; start again")]
    Expired,
    /// RFC 8628 §3.4: the device code was issued to the authenticated client.
    #[error("device code was issued to another client")]
    OtherClient,
    /// RFC 8628 §3.5 `authorization_pending`.
    #[error("the End-User has not yet approved; keep polling at the interval")]
    Pending,
    /// RFC 8628 §3.5 `slow_down`: the interval grows.
    #[error("polling too fast: wait at least {0} s between polls from now on")]
    SlowDown(u64),
    /// RFC 8628 §3.5 `access_denied`.
    #[error("the End-User denied the request")]
    Denied,
    /// A redeemed device code presented again revokes what it issued (like a code, RFC 6749
    /// §4.1.2).
    #[error("the device code was already redeemed; the tokens issued from it are revoked")]
    Redeemed,
}

/// Token exchange of an ID Token into an ID-JAG (RFC 8693, ID-JAG §4; docs/chaining.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeRefusal {
    /// TE-2: only clients with an exchange policy may exchange.
    #[error("client '{0}' may not use token exchange: no exchange policy is registered for it")]
    NotAllowed(String),
    /// ID-JAG §4.5 (SHOULD): public clients only where the policy says so.
    #[error("token exchange is for confidential clients; this public client is not allowed it")]
    PublicClient,
    /// TE-3: `actor_token` and `actor_token_type` travel together.
    #[error("{0}")]
    Actor(keybound_proto::Error),
    /// RFC 8693 §2.1: delegation (actor tokens) is not offered here.
    #[error("actor tokens (delegation) are not supported")]
    ActorNotSupported,
    /// IJ-2: only ID-JAGs are issued here.
    #[error("requested_token_type '{0}' is not issued here; ask for '{id_jag}'", id_jag = token_type::ID_JAG)]
    RequestedType(String),
    /// IJ-1: the subject is an ID Token.
    #[error("subject_token_type '{0}' is not accepted; send an ID Token as '{id_token}'", id_token = token_type::ID_TOKEN)]
    SubjectType(String),
    /// TE-1, IJ-1 (RFC 8693 §2.2.2: `invalid_request`): the subject ID Token is not ours,
    /// not valid, or not issued to this client.
    #[error("subject_token: {0}")]
    Subject(keybound_proto::Error),
    /// ID-JAG (a confirmation method the server does not support MUST be refused): the subject
    /// carries a `cnf` without a key this server can carry into the ID-JAG.
    #[error("the subject ID Token's cnf names no key this server can check (cnf.jwk): its binding cannot be carried over, so it is not exchanged")]
    UncheckableCnf,
    /// The client's policy exchanges only key-bound ID Tokens.
    #[error("only key-bound ID Tokens may be exchanged by this client")]
    UnboundRefused,
    /// The grant behind the subject stands: the subject names it (keybound's `gid`).
    #[error(
        "the subject ID Token names no grant of this server (gid): sign in again for a fresh one"
    )]
    NoGrant,
    /// The grant behind the subject stands: it was not revoked (RFC 7009, refresh-token reuse).
    #[error("the grant the subject ID Token came from was revoked")]
    GrantRevoked,
    /// The grant behind the subject stands: its End-User exists.
    #[error("the End-User of the subject ID Token no longer exists")]
    UserGone,
    /// The grant behind the subject stands: the consent was not withdrawn.
    #[error("the End-User's consent for this client was withdrawn")]
    ConsentWithdrawn,
    /// TE-6, IJ-3: the audience is one of the policy's.
    #[error("audience '{0}' is not one this client may obtain ID-JAGs for")]
    Audience(String),
    /// RFC 9470 at the exchange: the client's policy demands a stronger or fresher sign-in
    /// than the subject ID Token says; sign the End-User in again with these values.
    #[error("{why}: sign the End-User in again with acr_values={acr_values:?}{}", max_age.map(|m| format!(" and max_age={m}")).unwrap_or_default())]
    InsufficientUserAuthentication {
        /// how the subject ID Token falls short
        why: String,
        /// what would do
        acr_values: Vec<String>,
        /// the longest time since the sign-in
        max_age: Option<u64>,
    },
    /// TE-6: the resource is one of the policy's.
    #[error("resource '{0}' is not one this client may obtain ID-JAGs for")]
    Resource(String),
    /// IJ-3: the scopes are the policy's.
    #[error("scope '{0}' is not one this client may obtain ID-JAGs for")]
    Scope(String),
}

/// What the FAPI 2.0 Security Profile forbids, by clause (for clients held to it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fapi2Refusal {
    /// §5.3.2.2-2: authorization requests only through PAR.
    #[error("FAPI 2.0 Security Profile §5.3.2.2: client '{0}' must push its authorization requests (PAR, RFC 9126)")]
    ParRequired(String),
    /// §5.3.2.2-1: only `response_type=code`.
    #[error("FAPI 2.0 Security Profile §5.3.2.2: only response_type=code")]
    CodeOnly,
    /// §5.3.2.2-3: PKCE with S256 on every authorization request.
    #[error("FAPI 2.0 Security Profile §5.3.2.2: PKCE (code_challenge with S256) is required")]
    PkceRequired,
    /// §5.3.2.1-2: client authentication only with `private_key_jwt` (no mTLS here).
    #[error("FAPI 2.0 Security Profile §5.3.2.1: client '{client}' authenticates with {method}; only private_key_jwt is allowed")]
    PrivateKeyJwtOnly {
        /// the client
        client: String,
        /// its registered method
        method: &'static str,
    },
    /// §5.3.2.1-1: only sender-constrained access tokens (a DPoP proof with the request).
    #[error("FAPI 2.0 Security Profile §5.3.2.1: access tokens are sender-constrained; send a DPoP proof")]
    SenderConstrained,
}

/// RFC 6749 §4.4: the client credentials grant, a client acting for itself (no End-User).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCredentialsRefusal {
    /// RFC 6749 §4.4: the grant is for confidential clients only.
    #[error("client '{0}' is a public client: the client credentials grant is for confidential clients (RFC 6749 §4.4)")]
    PublicClient(String),
    /// RFC 6749 §3.3: a scope the client is not registered for.
    #[error("scope '{scope}' is not registered for client '{client}' (registered: {registered})")]
    Scope {
        /// the scope asked for
        scope: String,
        /// the client
        client: String,
        /// what it is registered for, space-separated (or "none")
        registered: String,
    },
    /// `openid`, `offline_access` and `bound_key` describe an End-User's sign-in; a client
    /// acting for itself has none (and gets no ID Token or refresh token, RFC 6749 §4.4.3).
    #[error("scope '{0}' needs an End-User; the client credentials grant has none")]
    EndUserScope(String),
}

/// The jwt-bearer grant redeeming an ID-JAG (RFC 7523 §3, ID-JAG §5; JB-*, IJ-*).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtBearerRefusal {
    /// Only clients allowed jwt-bearer redeem ID-JAGs.
    #[error("client '{0}' may not redeem ID-JAGs (jwt-bearer is not enabled for it)")]
    NotAllowed(String),
    /// ID-JAG §5: redemption is for confidential clients.
    #[error("client '{0}' is a public client: ID-JAGs are redeemed only by confidential clients (ID-JAG §5)")]
    PublicClient(String),
    /// JB-2: the assertion is one JWS.
    #[error("assertion: not a usable JWT: {0}")]
    Malformed(String),
    /// IJ-8: header `typ` exactly `oauth-id-jag+jwt`; nothing in another JWT is believed.
    #[error("assertion: header typ must be '{typ}' (an ID-JAG), got '{0}'", typ = keybound_proto::idjag::TYP_ID_JAG)]
    Typ(String),
    /// JB-3: `iss` is required.
    #[error("assertion: iss is required")]
    IssRequired,
    /// IJ-14: an ID-JAG must cross a trust domain.
    #[error("assertion: an ID-JAG issued by this server is not redeemed here (it must cross a trust domain)")]
    OwnIssuer,
    /// IJ-11: the issuer is trusted here.
    #[error("assertion: issuer '{0}' is not trusted here")]
    UntrustedIssuer(String),
    /// IJ-11: a disabled issuer is refused (Keycloak CVE-2026-1486).
    #[error("assertion: issuer '{0}' is disabled")]
    DisabledIssuer(String),
    /// JB-8: the issuer's keys could not be had.
    #[error("assertion: no usable key of '{issuer}' ({cause})")]
    NoKeys {
        /// the issuer
        issuer: String,
        /// why
        cause: String,
    },
    /// JB-8: signed by one of the issuer's keys.
    #[error("assertion: the signature does not verify with the keys of '{0}'")]
    Signature(String),
    /// IJ-9, IJ-10, JB-4, JB-5: audience, client and times.
    #[error("assertion: {0}")]
    Claims(keybound_proto::Error),
    /// The issuer's policy: unbound ID-JAGs only where allowed (`--allow-unbound`), whatever
    /// proof comes with them.
    #[error("assertion: ID-JAGs from '{0}' must be key-bound (cnf); this issuer is not allowed unbound ones")]
    UnboundRefused(String),
    /// A bounded lifetime (`jwt_bearer_max_lifetime`): `exp` − the issuer's `iat`.
    #[error(
        "assertion: lifetime {lifetime} s (exp − iat) is longer than the {max} s accepted here"
    )]
    LifetimeTooLong {
        /// the ID-JAG's lifetime
        lifetime: u64,
        /// the longest accepted
        max: u64,
    },
    /// ID-JAG `resource`: a URI or an array of URIs.
    #[error("assertion: resource must be a string or an array of strings")]
    ResourceClaim,
    /// JB-7: each unbound ID-JAG is redeemed once.
    #[error("assertion: this ID-JAG was already redeemed (jti)")]
    Replayed,
    /// The subject maps to a local End-User by the issuer's subject mode.
    #[error("assertion: subject '{sub}' of '{issuer}' is not known here (subject mode {mode})")]
    UnknownSubject {
        /// the ID-JAG's `sub`
        sub: String,
        /// its issuer
        issuer: String,
        /// the issuer's subject mode
        mode: &'static str,
    },
    /// IJ-12: the scope is at most what the ID-JAG grants.
    #[error("scope '{0}' is not granted by the ID-JAG")]
    Scope(String),
}

/// The authorization request (RFC 6749 §4.1.2.1, OIDC Core 3.1.2.6, 3.2.2, 3.3.2). Those
/// refused before the client and redirect URI are established are shown on a page; the rest go
/// back to the client ([`crate::AuthorizeError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizeRefusal {
    /// RFC 6749 §4.1.1: `client_id` is required.
    #[error("the request has no client_id")]
    NoClientId,
    /// RFC 6749 §4.1.2.1: an unknown client is never redirected to.
    #[error("unknown client '{0}'")]
    UnknownClient(String),
    /// OIDC Core 3.1.2.1: `redirect_uri` is required.
    #[error("the request has no redirect_uri")]
    NoRedirectUri,
    /// OIDC Core 3.1.2.1, RFC 9700 §2.1: exact match with a registered URI.
    #[error("redirect_uri '{uri}' is not registered for client '{client}'; keybound only redirects to exactly registered URIs")]
    UnregisteredRedirectUri {
        /// the URI sent
        uri: String,
        /// the client
        client: String,
    },
    /// The parameters do not form an authorization request.
    #[error("malformed authorization request: {0}")]
    Malformed(String),
    /// OAuth 2.0 Multiple Response Type Encoding Practices §2.1: known modes only.
    #[error("response_mode '{0}' is not supported: use query, fragment or form_post")]
    ResponseMode(String),
    /// OIDC Core 6: a request object reached validation unopened (callers open it first with
    /// `Provider::open_request_object`); refused rather than ignored.
    #[error(
        "the request object (request) was not opened; send it to the authorization or PAR endpoint"
    )]
    RequestObject,
    /// OIDC Core 6 `request_uri_not_supported`: only this server's own pushed requests
    /// (RFC 9126) are accepted by reference.
    #[error("request_uri: only request_uri values from this server's pushed authorization request endpoint are accepted; push the request there, or send the parameters directly")]
    RequestUri,
    /// RFC 9101 §6: a request object that cannot be trusted, and why.
    #[error("request object: {0}")]
    InvalidRequestObject(String),
    /// The FAPI 2.0 Security Profile's rules for the authorization request.
    #[error(transparent)]
    Fapi2(#[from] Fapi2Refusal),
    /// RFC 8707 §2 at the authorization endpoint (`invalid_target`).
    #[error(transparent)]
    Target(#[from] TargetRefusal),
    /// RFC 9126 §4: a pushed request is used once, before it expires, by the client that
    /// pushed it.
    #[error(
        "request_uri is unknown, already used or expired: push the authorization request again"
    )]
    PushedRequestUnusable,
    /// RFC 9126 §4: the `client_id` of the authorization request names the pushing client.
    #[error("request_uri was pushed by another client than '{0}'")]
    PushedByAnotherClient(String),
    /// RFC 9126 §5–6: this client (or every client here) must push its requests.
    #[error("client '{0}' must push its authorization requests (pushed authorization request endpoint, RFC 9126)")]
    PushRequired(String),
    /// RFC 9126 §2.1: `request_uri` is not a parameter of a pushed request.
    #[error("request_uri must not be pushed (RFC 9126 §2.1)")]
    RequestUriPushed,
    /// RFC 9126 §2.1: the pushed request's `client_id` is the authenticated client.
    #[error("client_id '{pushed}' is not the client that authenticated ('{authenticated}')")]
    PushedClientId {
        /// `client_id` in the pushed parameters
        pushed: String,
        /// the authenticated client
        authenticated: String,
    },
    /// OIDC Core 5.5: the `claims` parameter is a JSON object.
    #[error("the claims parameter is not a JSON object: {0}")]
    ClaimsParameter(String),
    /// OIDC Core 5.5.1.1: an essential `acr` this OP cannot satisfy (it issues only the values
    /// of `acr_values_supported`).
    #[error("the essential acr values {0:?} are none of this OP's acr_values_supported")]
    UnknownEssentialAcr(Vec<String>),
    /// OIDC Core 3.1.2.6 with `prompt=none`: the session's sign-in is weaker than the `acr`
    /// the request, the client or the End-User's account demands.
    #[error("the End-User's sign-in ({have}) is weaker than required ({need}); send the request without prompt=none to let them sign in again")]
    SignInTooWeak {
        /// the session's acr
        have: &'static str,
        /// the acr required
        need: &'static str,
    },
    /// RFC 6749 §4.1.2.1 `unsupported_response_type`.
    #[error("response_type '{0}' is not supported: use code, id_token, id_token token, code id_token, code token or code id_token token")]
    UnsupportedResponseType(String),
    /// RFC 6749 §4.1.2.1 `unauthorized_client`: the client registered its response types.
    #[error("client '{client}' is not registered for response_type '{response_type}'")]
    ResponseTypeNotRegistered {
        /// the client
        client: String,
        /// the response type asked for
        response_type: &'static str,
    },
    /// Implicit/hybrid, OIDC Core 3.2.2.1: tokens from the authorization endpoint go only to an
    /// `https` redirect URI that is not `localhost` (shown on a page, never redirected to).
    #[error("redirect_uri '{0}' cannot receive tokens from the authorization endpoint: the implicit and hybrid flows need an https redirect URI that is not localhost (OpenID Connect Core 3.2.2.1); use response_type=code")]
    TokenUnsafeRedirectUri(String),
    /// Implicit/hybrid, Multiple Response Type Encoding §2.1: tokens never in the query.
    #[error("response_mode=query must not be used when the response carries tokens; use fragment or form_post")]
    QueryWithTokens,
    /// Implicit/hybrid, OIDC Core 3.2.2.1, 3.3.2.11: the nonce is required.
    #[error("nonce is required for the implicit and hybrid flows")]
    NonceRequired,
    /// Implicit/hybrid, Key Binding ID1 §1.4: never key-bound.
    #[error("bound_key cannot be used with the implicit or hybrid flows (Key Binding ID1 §1.4): use response_type=code")]
    BoundKeyFrontChannel,
    /// RFC 9449 §10: `dpop_jkt` binds an authorization code.
    #[error("dpop_jkt binds an authorization code: it needs a response type with code")]
    DpopJktWithoutCode,
    /// RFC 7636 §4.3: only `S256` here.
    #[error("code_challenge_method must be S256, got {0:?}")]
    ChallengeMethod(Option<String>),
    /// RFC 7636 §4.3: a method without a challenge.
    #[error("code_challenge_method without code_challenge")]
    MethodWithoutChallenge,
    /// RFC 9700 §2.1.1: public clients use PKCE.
    #[error("public clients must use PKCE: send code_challenge with code_challenge_method=S256")]
    PkceRequired,
    /// RFC 7636 §4.2: an S256 challenge is 43 base64url characters.
    #[error("code_challenge must be base64url(SHA-256(code_verifier)), 43 characters")]
    ChallengeShape,
    /// OIDC Core 3.1.2.1: known `prompt` values only.
    #[error("unknown prompt value '{0}'")]
    UnknownPrompt(String),
    /// OIDC Core 3.1.2.1: `prompt=none` stands alone.
    #[error("prompt=none cannot be combined with other values")]
    PromptNoneCombined,
    /// OIDC Core 3.1.2.6 `login_required` (`prompt=none`, no session).
    #[error("the End-User is not signed in")]
    NotSignedIn,
    /// OIDC Core 3.1.2.6 `login_required` (`prompt=none`, `max_age` exceeded).
    #[error("authentication is older than max_age")]
    AuthenticationTooOld,
    /// OIDC Core 3.1.2.6 `consent_required`.
    #[error("consent is required")]
    ConsentRequired,
    /// RFC 6749 §4.1.2.1 `access_denied`.
    #[error("the End-User denied the request")]
    Denied,
    /// A request parameter's shape ([`RequestRefusal`]), sent back to the client.
    #[error(transparent)]
    Request(#[from] RequestRefusal),
}

/// Dynamic client registration (RFC 7591 §3.2.2, OIDC Registration §3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationRefusal {
    /// RFC 7591 §3: a JSON document.
    #[error("the registration request must be application/json")]
    NotJson,
    /// RFC 7591 §3, RFC 6750 §3.1: registration here needs an initial access token.
    #[error("registration needs an initial access token: Authorization: Bearer <token>")]
    TokenRequired,
    /// RFC 7591 §3: the initial access token is not usable.
    #[error("the initial access token is unknown, expired or used up")]
    TokenUnusable,
    /// RFC 7591 §3.1: the body is a JSON object.
    #[error("the body must be a JSON object of client metadata: {0}")]
    NotAnObject(String),
    /// RFC 7591 §2: a member has the wrong JSON type.
    #[error("{member}: expected {expected}")]
    MemberType {
        /// the member
        member: String,
        /// what it must be
        expected: &'static str,
    },
    /// RFC 7591 §2: `token_endpoint_auth_method`.
    #[error("token_endpoint_auth_method '{0}' is not supported: use none, client_secret_basic, client_secret_post or private_key_jwt")]
    AuthMethod(String),
    /// RFC 7591 §2: a grant type not offered.
    #[error("grant_types: '{0}' is not offered here")]
    GrantType(String),
    /// Token exchange is an operator's decision (docs/chaining.md).
    #[error("grant_types: token exchange is granted by an operator's exchange policy, not by registration")]
    TokenExchangeByPolicy,
    /// RFC 7591 §2: a response type not offered.
    #[error("response_types: '{0}' is not offered: use code, id_token, id_token token, code id_token, code token or code id_token token")]
    ResponseType(String),
    /// RFC 7591 §2.1: grant types and response types agree.
    #[error("grant_types and response_types disagree: response types with code go with authorization_code, those returning tokens with implicit")]
    GrantsAndResponsesDisagree,
    /// RFC 7591 §2: redirect URIs for redirect-based grants.
    #[error("redirect_uris is required for the authorization_code and implicit grants")]
    RedirectUrisRequired,
    /// RFC 7591 §2, RFC 6749 §3.1.2: absolute, no fragment.
    #[error("redirect_uri '{0}' must be an absolute http(s) URI without a fragment")]
    RedirectUri(String),
    /// OIDC Registration §2, Core 3.2.2.1: tokens from the authorization endpoint travel only
    /// to `https` redirect URIs that are not `localhost`.
    #[error("redirect_uri '{0}': clients of the implicit and hybrid flows use https redirect URIs that are not localhost or a loopback address (OpenID Connect Registration §2)")]
    ImplicitRedirectUri(String),
    /// ID-JAG §5: redeeming ID-JAGs (jwt-bearer) is for confidential clients.
    #[error("grant_types: jwt-bearer (redeeming ID-JAGs) is for confidential clients; this client authenticates with none")]
    PublicJwtBearer,
    /// RFC 6749 §4.4: the client credentials grant is for confidential clients.
    #[error("grant_types: client_credentials is for confidential clients; this client authenticates with none")]
    PublicClientCredentials,
    /// A client held to the FAPI 2.0 Security Profile is registered within it.
    #[error(transparent)]
    Fapi2(Fapi2Refusal),
    /// RFC 6749 §3.3: a scope it may get for itself is a scope token, and not about an
    /// End-User's sign-in (`openid`, `offline_access`, `bound_key`).
    #[error("scope: '{0}' is not a scope a client can get for itself (a scope token other than openid, offline_access and bound_key)")]
    Scope(String),
    /// RFC 8707 §2: a resource is an absolute URI without a fragment.
    #[error("resources: '{0}' must be an absolute URI without a fragment (RFC 8707 §2)")]
    Resource(String),
    /// A redirect URI is stored in its normal form only, so what is stored and sent in a
    /// header is exactly what was parsed.
    #[error("redirect_uri '{uri}' is not in its normal form; register '{normal}'")]
    RedirectUriNotNormal {
        /// the URI sent
        uri: String,
        /// its normal form
        normal: String,
    },
    /// RFC 9700 §2.1, RFC 8252 §7.3: `http` redirect URIs only on the loopback interface.
    #[error("redirect_uri '{0}': http is only for the loopback interface (localhost, 127.0.0.1, [::1]); use https")]
    HttpNotLoopback(String),
    /// CORS: a web origin is an origin's serialisation, `http(s)://host[:port]` (RFC 6454
    /// §6.2), nothing more.
    #[error("web origin '{0}' must be scheme://host[:port] with http or https, no path (e.g. https://app.example)")]
    WebOrigin(String),
    /// OIDC Registration §2 `default_acr_values`: values this OP issues (`acr_values_supported`;
    /// a default it never issues would lock the client's End-Users out).
    #[error("default_acr_values: '{0}' is not one of this OP's acr_values_supported (urn:keybound:acr:pwd, urn:keybound:acr:passkey, urn:keybound:acr:mfa)")]
    DefaultAcr(String),
    /// CORS: only public clients run in pages; a confidential client's secret cannot live in one.
    #[error("web origins are for public clients (--auth-method none): a page cannot keep a client secret")]
    WebOriginConfidential,
    /// RP-Initiated Logout §3.1, Back-Channel Logout §2.2: `post_logout_redirect_uris` and
    /// `backchannel_logout_uri` follow the rules of redirect URIs (absolute `http(s)`, no
    /// fragment, normal form, `http` only on loopback).
    #[error("{member} '{uri}': {rule}")]
    LogoutUri {
        /// the metadata member
        member: &'static str,
        /// the value
        uri: String,
        /// the rule it breaks
        rule: String,
    },
    /// Bounds on registration members (docs/operations.md).
    #[error("{member}: at most {limit}")]
    TooLarge {
        /// the member
        member: &'static str,
        /// its bound
        limit: String,
    },
    /// Keys by value only.
    #[error("jwks_uri is not supported: send the keys as jwks")]
    JwksUri,
    /// RFC 7591 §2: `jwks` is a JWK Set of public keys.
    #[error("jwks: {0}")]
    Jwks(String),
    /// RFC 7523: `private_key_jwt` needs the client's keys.
    #[error("private_key_jwt needs jwks (the client's public keys)")]
    PrivateKeyJwtNeedsJwks,
    /// `jwks` goes with `private_key_jwt` only.
    #[error("jwks is only used with token_endpoint_auth_method private_key_jwt")]
    JwksWithoutPrivateKeyJwt,
    /// Token Bound Authentication draft 04: only `tbh`.
    #[error("id_token_token_binding_cnf '{0}' is not supported: only tbh")]
    TokenBindingCnf(String),
    /// Key Binding profiles.
    #[error("key_binding_profile: {0}")]
    Profile(keybound_proto::Error),
}

/// A protected resource of the provider (RFC 6750 §3.1, RFC 9068 §4, RFC 9449 §7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceRefusal {
    /// RFC 6750 §2.1, RFC 9449 §7.1: the schemes offered.
    #[error("Authorization scheme must be DPoP or Bearer")]
    Scheme,
    /// RFC 9068 §4, RFC 9449 §7 (`keybound_proto::access_token`, the rules every resource
    /// server shares): `typ`, signature, `iss`, `aud`, times, `cnf`, the scheme.
    #[error("{0}")]
    AccessToken(keybound_proto::Error),
    /// RFC 7009: the grant was revoked.
    #[error("access token was revoked")]
    Revoked,
    /// The client the token was issued to was removed.
    #[error("the client '{0}' this access token was issued to no longer exists")]
    ClientGone(String),
    /// OIDC Core 5.3: userinfo needs `openid`.
    #[error("userinfo needs the openid scope")]
    OpenidScopeRequired,
    /// OIDC Core 5.3: the End-User still exists.
    #[error("the End-User no longer exists")]
    UserGone,
}

/// The End-User's pages: what a person did wrong in a form, said in words for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageRefusal {
    /// CSRF (RFC 6749 §10.12): the form's token is not one this site derived for this browser.
    #[error("This form expired or was not sent by this site (CSRF check failed). {0}")]
    Csrf(&'static str),
    /// The login form came without both fields.
    #[error("Enter your username and password.")]
    MissingCredentials,
    /// The password did not verify (never saying whether the username exists).
    #[error("Wrong username or password.")]
    WrongPassword,
    /// A consent or approval form arrived without a session.
    #[error("Your session ended; sign in again.")]
    SessionEnded,
    /// A decision form without a decision.
    #[error("choose {0}")]
    ChooseDecision(&'static str),
    /// A form action this page does not have.
    #[error("unknown form action '{0}'")]
    UnknownAction(String),
    /// RFC 8628 §3.3: the typed user code names no pending authorization.
    #[error(
        "That code is not valid, has expired, or was already used. Check the code on your device."
    )]
    UnknownUserCode,
    /// RFC 8628 §3.3: the code was decided or expired while the page was open.
    #[error("This code was already used or has expired.")]
    UserCodeUsed,
}

macro_rules! into_op_error {
    ($($t:ty),*) => {$(
        impl From<$t> for crate::OpError {
            fn from(r: $t) -> Self {
                crate::OpError::Refused(Refusal::from(r))
            }
        }
    )*};
}

into_op_error!(
    RequestRefusal,
    ClientAuthRefusal,
    BindingRefusal,
    CodeRefusal,
    RefreshRefusal,
    DeviceRefusal,
    ExchangeRefusal,
    JwtBearerRefusal,
    ClientCredentialsRefusal,
    Fapi2Refusal,
    AuthorizeRefusal,
    RegistrationRefusal,
    ResourceRefusal,
    PageRefusal,
    TargetRefusal,
    LogoutRefusal,
    PasskeyRefusal,
    DbscRefusal,
    AdminRefusal
);

impl From<Refusal> for crate::OpError {
    fn from(r: Refusal) -> Self {
        crate::OpError::Refused(r)
    }
}
