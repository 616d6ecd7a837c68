-- End-Users' passkeys (WebAuthn credentials) by credential id; they go with their End-User.
CREATE TABLE IF NOT EXISTS passkeys (
    credential_id TEXT PRIMARY KEY,
    sub           TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    data          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passkeys_sub ON passkeys (sub, created_at);
