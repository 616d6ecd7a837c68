-- keybound OP store, SQLite. Secrets are never stored in clear: codes, refresh tokens and
-- session ids under their SHA-256; signing keys sealed (AES-256-GCM) with a key kept outside.
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    data      TEXT NOT NULL
);

CREATE TABLE users (
    sub      TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    data     TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    alg          TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at   INTEGER,
    seq          INTEGER NOT NULL,
    sealed       BLOB NOT NULL
);

CREATE TABLE auth_codes (
    code_hash   BLOB PRIMARY KEY NOT NULL,
    data        TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    redeemed_at INTEGER
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE refresh_families (
    family_id  TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX refresh_families_grant ON refresh_families (grant_id);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL REFERENCES refresh_families (family_id),
    data       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE revoked_grants (
    grant_id   TEXT PRIMARY KEY NOT NULL,
    revoked_at INTEGER NOT NULL
);

CREATE TABLE consents (
    sub       TEXT NOT NULL,
    client_id TEXT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (sub, client_id)
);

CREATE TABLE replay (
    digest     BLOB PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX replay_expires ON replay (expires_at);

CREATE TABLE sessions (
    session_hash BLOB PRIMARY KEY NOT NULL,
    data         TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
);
