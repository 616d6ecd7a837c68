//! RFC 6749 §4.4: the client credentials grant. A confidential client gets an access token for
//! itself — no End-User, so `sub` is its client id (RFC 9068 §2.2) and there is no `auth_time`.
//! The scope is what it asked for of the scopes registered for it (`--scope`), or all of them
//! when it asked for none; `openid`, `offline_access` and `bound_key` describe an End-User's
//! sign-in and are refused. The token is DPoP-bound whenever a proof came (RFC 9449 §5), and a
//! client registered with `dpop_bound_access_tokens` gets none without one (the proof step,
//! before this module). Never a refresh token (§4.4.3) or an ID Token. RFC 8707 `resource`
//! narrows the audience through the grant pipeline like every other grant.

use keybound_proto::dpop::VerifiedProof;
use keybound_store::{Client, ClientAuthMethod};

use crate::grant::{audience, Grant, TokenSuccess};
use crate::refusal::ClientCredentialsRefusal as Why;
use crate::{Form, OpError, Provider};

/// Scopes about an End-User's sign-in, meaningless without one.
const END_USER_SCOPES: [&str; 3] = ["openid", "offline_access", "bound_key"];

impl Provider {
    pub(super) async fn client_credentials_grant(
        &self,
        client: &Client,
        form: &Form,
        proof: Option<VerifiedProof>,
    ) -> Result<TokenSuccess, OpError> {
        if client.auth_method == ClientAuthMethod::None {
            return Err(Why::PublicClient(client.client_id.clone()).into());
        }
        let scope = match form.get("scope") {
            None => client.scopes.join(" "),
            Some(asked) => {
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                for s in &asked {
                    if END_USER_SCOPES.contains(s) {
                        return Err(Why::EndUserScope((*s).to_owned()).into());
                    }
                    if !client.scopes.iter().any(|r| r == s) {
                        return Err(Why::Scope {
                            scope: (*s).to_owned(),
                            client: client.client_id.clone(),
                            registered: if client.scopes.is_empty() {
                                "none".to_owned()
                            } else {
                                client.scopes.join(" ")
                            },
                        }
                        .into());
                    }
                }
                asked.join(" ")
            }
        };
        let audience = audience(client, form.resources(), None)?;
        // a grant of its own, so RFC 7009 revocation of this token reaches only it
        let grant_id = self.random_token();
        let grant =
            Grant::access_only(client, &grant_id, &client.client_id, &scope, None, audience);
        self.mint(&grant, proof.as_ref(), None).await
    }
}
