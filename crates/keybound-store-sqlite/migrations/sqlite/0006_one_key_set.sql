-- At most one current and one next signing key (issue 13): two nodes starting at once on an
-- empty store used to create two of each. Older databases that got duplicates keep the newest
-- of each state; the others retire (they stay in the JWKS until the retention purge).
UPDATE signing_keys SET state = 'retired', retired_at = created_at
WHERE state = 'current' AND seq <> (SELECT MAX(seq) FROM signing_keys WHERE state = 'current');
UPDATE signing_keys SET state = 'retired', retired_at = created_at
WHERE state = 'next' AND seq <> (SELECT MAX(seq) FROM signing_keys WHERE state = 'next');
CREATE UNIQUE INDEX signing_keys_one_per_live_state ON signing_keys (state)
WHERE state IN ('current', 'next');
