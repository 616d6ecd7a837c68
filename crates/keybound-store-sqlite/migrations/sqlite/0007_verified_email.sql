-- A jwt-bearer redemption whose issuer maps subjects by e-mail finds the local End-User by
-- verified address; without this index every redemption read and parsed every user's record.
-- The expressions are exactly those of the lookup, so SQLite's planner can use the index.
CREATE INDEX users_verified_email ON users (lower(json_extract(data, '$.email')))
    WHERE json_extract(data, '$.email_verified') = 1;
