-- End-Users' passkeys (WebAuthn credentials) by credential id; they go with their End-User.
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    sub           TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    data          TEXT NOT NULL
);
CREATE INDEX passkeys_sub ON passkeys (sub, created_at);
