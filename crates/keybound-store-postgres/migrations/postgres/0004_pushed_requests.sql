-- Pushed authorization requests (RFC 9126), by the hash of their request_uri, until their one
-- use at the authorization endpoint (taken with DELETE … RETURNING, so one of two racing nodes
-- gets it) or their expiry (purged).
CREATE TABLE IF NOT EXISTS pushed_requests (
    request_hash BYTEA PRIMARY KEY,
    data         TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pushed_requests_expires ON pushed_requests (expires_at);
