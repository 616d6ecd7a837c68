-- Pushed authorization requests (RFC 9126), by the hash of their request_uri, until their one
-- use at the authorization endpoint (taken with DELETE … RETURNING) or their expiry (purged).
CREATE TABLE pushed_requests (
    request_hash BLOB PRIMARY KEY NOT NULL,
    data         TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX pushed_requests_expires ON pushed_requests (expires_at);
