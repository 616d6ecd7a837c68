-- A jwt-bearer redemption whose issuer maps subjects by e-mail finds the local End-User by
-- verified address; without this index every redemption read and parsed every user's record.
-- The expressions are exactly those of the lookup, so the planner can use the index.
CREATE INDEX IF NOT EXISTS users_verified_email ON users (lower((data::jsonb) ->> 'email'))
    WHERE ((data::jsonb) ->> 'email_verified') = 'true';
