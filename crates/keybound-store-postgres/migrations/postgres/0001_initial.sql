-- keybound OP store, PostgreSQL (and PostgreSQL-wire distributed SQL: CockroachDB, YugabyteDB).
-- The same tables as the SQLite backend's migrations 0001-0006. Secrets are never stored in
-- clear: codes, refresh tokens, device codes, sessions and registration tokens under their
-- SHA-256; signing keys sealed (AES-256-GCM) with a key kept outside the database. Records are
-- JSON text in `data`; the columns beside it are what statements filter or change atomically.
-- Only plain tables, B-tree and partial unique indexes, INSERT ... ON CONFLICT and
-- UPDATE ... RETURNING: nothing a distributed engine lacks (no advisory locks, sequences'
-- ordering, SKIP LOCKED or triggers).
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    data      TEXT NOT NULL
);

CREATE TABLE users (
    sub      TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    data     TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT,
    seq          BIGINT NOT NULL,
    sealed       BYTEA NOT NULL
);
-- at most one current and one next key: nodes racing to create the key set create one
CREATE UNIQUE INDEX signing_keys_one_per_live_state ON signing_keys (state)
WHERE state IN ('current', 'next');

CREATE TABLE auth_codes (
    code_hash   BYTEA PRIMARY KEY,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    redeemed_at BIGINT
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE refresh_families (
    family_id  TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX refresh_families_grant ON refresh_families (grant_id);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (family_id),
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE revoked_grants (
    grant_id   TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE consents (
    sub       TEXT NOT NULL,
    client_id TEXT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (sub, client_id)
);

CREATE TABLE replay (
    digest     BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_expires ON replay (expires_at);

CREATE TABLE sessions (
    session_hash BYTEA PRIMARY KEY,
    data         TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- RFC 8628: poll_interval, last_poll, slowed and decision change atomically (slow_down and
-- redemption hold across nodes)
CREATE TABLE device_codes (
    device_hash   BYTEA PRIMARY KEY,
    user_code     TEXT NOT NULL UNIQUE,
    data          TEXT NOT NULL,
    decision      TEXT,
    redeemed      BOOLEAN NOT NULL DEFAULT FALSE,
    poll_interval BIGINT NOT NULL,
    last_poll     BIGINT,
    slowed        BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);

CREATE TABLE trusted_issuers (
    issuer TEXT PRIMARY KEY,
    data   TEXT NOT NULL
);

CREATE TABLE user_links (
    issuer       TEXT NOT NULL REFERENCES trusted_issuers (issuer) ON DELETE CASCADE,
    external_sub TEXT NOT NULL,
    sub          TEXT NOT NULL,
    PRIMARY KEY (issuer, external_sub)
);

CREATE TABLE registration_tokens (
    token_hash BYTEA PRIMARY KEY,
    uses_left  BIGINT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
