-- Counts of failed attempts (password and client-secret back-off, user codes at the device
-- page) and client secrets verified recently, shared by every node so that N nodes allow what
-- one allows. Keys are SHA-256 digests of the counted principal (an account, an address, a
-- client id); a verified secret is an HMAC under a key derived from the key-encryption key.
-- Both expire and are purged like the other expiring tables.
CREATE TABLE IF NOT EXISTS counters (
    key        BYTEA PRIMARY KEY,
    n          BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS counters_expires ON counters (expires_at);

CREATE TABLE IF NOT EXISTS verified_secrets (
    client_id  TEXT PRIMARY KEY,
    mac        BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS verified_secrets_expires ON verified_secrets (expires_at);
