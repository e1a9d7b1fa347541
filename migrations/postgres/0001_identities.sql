-- Identities: virtual keys, teams, internal users, end users ("customers").
-- Times are Unix milliseconds. Lists and maps are JSONB. Deletions are recorded in
-- switchyard_deletions so that changes_since can report them (see src/store/mod.rs).

CREATE TABLE switchyard_keys (
    token                 TEXT    NOT NULL PRIMARY KEY, -- SHA-256 (hex) of the key, never the key
    key_name              TEXT    NOT NULL,
    key_alias             TEXT    CONSTRAINT switchyard_keys_key_alias_key UNIQUE,
    models                JSONB   NOT NULL DEFAULT '[]',
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    model_rpm_limit       JSONB   NOT NULL DEFAULT '{}',
    model_tpm_limit       JSONB   NOT NULL DEFAULT '{}',
    metadata              JSONB   NOT NULL DEFAULT '{}',
    tags                  JSONB   NOT NULL DEFAULT '[]',
    team_id               TEXT,
    user_id               TEXT,
    allowed_routes        JSONB   NOT NULL DEFAULT '[]',
    expires               BIGINT,
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    created_by            TEXT,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    extra                 JSONB   NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_keys_team_id ON switchyard_keys (team_id);
CREATE INDEX switchyard_keys_user_id ON switchyard_keys (user_id);
CREATE INDEX switchyard_keys_created_at ON switchyard_keys (created_at);
CREATE INDEX switchyard_keys_updated_at ON switchyard_keys (updated_at);

CREATE TABLE switchyard_teams (
    team_id               TEXT    NOT NULL PRIMARY KEY,
    team_alias            TEXT,
    models                JSONB   NOT NULL DEFAULT '[]',
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    members               JSONB   NOT NULL DEFAULT '[]',
    metadata              JSONB   NOT NULL DEFAULT '{}',
    tags                  JSONB   NOT NULL DEFAULT '[]',
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    extra                 JSONB   NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_teams_team_alias ON switchyard_teams (team_alias);
CREATE INDEX switchyard_teams_updated_at ON switchyard_teams (updated_at);

CREATE TABLE switchyard_users (
    user_id               TEXT    NOT NULL PRIMARY KEY,
    user_email            TEXT,
    user_alias            TEXT,
    user_role             TEXT    NOT NULL,
    models                JSONB   NOT NULL DEFAULT '[]',
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    teams                 JSONB   NOT NULL DEFAULT '[]',
    metadata              JSONB   NOT NULL DEFAULT '{}',
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    extra                 JSONB   NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_users_user_email ON switchyard_users (user_email);
CREATE INDEX switchyard_users_created_at ON switchyard_users (created_at);
CREATE INDEX switchyard_users_updated_at ON switchyard_users (updated_at);

CREATE TABLE switchyard_end_users (
    user_id               TEXT    NOT NULL PRIMARY KEY,
    alias                 TEXT,
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    models                JSONB   NOT NULL DEFAULT '[]',
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    metadata              JSONB   NOT NULL DEFAULT '{}',
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    extra                 JSONB   NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_end_users_updated_at ON switchyard_end_users (updated_at);

-- One row per deleted identity (kind: key, team, user, end_user). Writing an identity again
-- removes its tombstone, so an id is either a live row or a tombstone, never both.
CREATE TABLE switchyard_deletions (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    deleted_at BIGINT  NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX switchyard_deletions_deleted_at ON switchyard_deletions (deleted_at);

-- The clock of every write: the server's, the one clock all instances share, so a cache polling
-- changes_since on one instance sees writes made through another whatever their clocks say.
CREATE FUNCTION switchyard_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
    SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
$$;
