-- Identity chaining, resource AS role (issue 11): trusted ID-JAG issuers and the links from
-- their subjects to local users.
CREATE TABLE trusted_issuers (
    issuer TEXT PRIMARY KEY NOT NULL,
    data   TEXT NOT NULL
);

CREATE TABLE user_links (
    issuer       TEXT NOT NULL REFERENCES trusted_issuers (issuer) ON DELETE CASCADE,
    external_sub TEXT NOT NULL,
    sub          TEXT NOT NULL,
    PRIMARY KEY (issuer, external_sub)
);
