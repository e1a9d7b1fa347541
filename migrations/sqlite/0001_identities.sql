-- Identities: virtual keys, teams, internal users, end users ("customers").
-- Times are Unix milliseconds. Lists and maps are JSON text. Deletions are recorded in
-- switchyard_deletions so that changes_since can report them (see src/store/mod.rs).

CREATE TABLE switchyard_keys (
    token                 TEXT    NOT NULL PRIMARY KEY, -- SHA-256 (hex) of the key, never the key
    key_name              TEXT    NOT NULL,
    key_alias             TEXT    UNIQUE,
    models                TEXT    NOT NULL DEFAULT '[]',
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    model_rpm_limit       TEXT    NOT NULL DEFAULT '{}',
    model_tpm_limit       TEXT    NOT NULL DEFAULT '{}',
    metadata              TEXT    NOT NULL DEFAULT '{}',
    tags                  TEXT    NOT NULL DEFAULT '[]',
    team_id               TEXT,
    user_id               TEXT,
    allowed_routes        TEXT    NOT NULL DEFAULT '[]',
    expires               INTEGER,
    blocked               INTEGER NOT NULL DEFAULT 0,
    created_by            TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    extra                 TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_keys_team_id ON switchyard_keys (team_id);
CREATE INDEX switchyard_keys_user_id ON switchyard_keys (user_id);
CREATE INDEX switchyard_keys_created_at ON switchyard_keys (created_at);
CREATE INDEX switchyard_keys_updated_at ON switchyard_keys (updated_at);

CREATE TABLE switchyard_teams (
    team_id               TEXT    NOT NULL PRIMARY KEY,
    team_alias            TEXT,
    models                TEXT    NOT NULL DEFAULT '[]',
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    members               TEXT    NOT NULL DEFAULT '[]',
    metadata              TEXT    NOT NULL DEFAULT '{}',
    tags                  TEXT    NOT NULL DEFAULT '[]',
    blocked               INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    extra                 TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_teams_team_alias ON switchyard_teams (team_alias);
CREATE INDEX switchyard_teams_updated_at ON switchyard_teams (updated_at);

CREATE TABLE switchyard_users (
    user_id               TEXT    NOT NULL PRIMARY KEY,
    user_email            TEXT,
    user_alias            TEXT,
    user_role             TEXT    NOT NULL,
    models                TEXT    NOT NULL DEFAULT '[]',
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    teams                 TEXT    NOT NULL DEFAULT '[]',
    metadata              TEXT    NOT NULL DEFAULT '{}',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    extra                 TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_users_user_email ON switchyard_users (user_email);
CREATE INDEX switchyard_users_created_at ON switchyard_users (created_at);
CREATE INDEX switchyard_users_updated_at ON switchyard_users (updated_at);

CREATE TABLE switchyard_end_users (
    user_id               TEXT    NOT NULL PRIMARY KEY,
    alias                 TEXT,
    blocked               INTEGER NOT NULL DEFAULT 0,
    models                TEXT    NOT NULL DEFAULT '[]',
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    metadata              TEXT    NOT NULL DEFAULT '{}',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    extra                 TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX switchyard_end_users_updated_at ON switchyard_end_users (updated_at);

-- One row per deleted identity (kind: key, team, user, end_user). Writing an identity again
-- removes its tombstone, so an id is either a live row or a tombstone, never both.
CREATE TABLE switchyard_deletions (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX switchyard_deletions_deleted_at ON switchyard_deletions (deleted_at);
