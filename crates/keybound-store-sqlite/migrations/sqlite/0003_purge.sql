-- The expired-row purge (issue 10 item 5) finds rows by expiry in every table it cleans.
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
