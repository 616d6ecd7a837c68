-- Dynamic client registration (RFC 7591): initial access tokens, by hash.
CREATE TABLE registration_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    uses_left  INTEGER,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
