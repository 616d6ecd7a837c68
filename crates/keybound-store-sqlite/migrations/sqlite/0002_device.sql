-- RFC 8628 device authorizations: the device code under its SHA-256, the user code unique.
-- interval, last_poll and the decision change atomically (slow_down, redemption).
CREATE TABLE device_codes (
    device_hash BLOB PRIMARY KEY NOT NULL,
    user_code   TEXT NOT NULL UNIQUE,
    data        TEXT NOT NULL,
    decision    TEXT,
    redeemed    INTEGER NOT NULL DEFAULT 0,
    interval    INTEGER NOT NULL,
    last_poll   INTEGER,
    slowed      INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
