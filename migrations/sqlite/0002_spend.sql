-- Spend logs: one row per model request (src/spend), and the running spend of each key, team,
-- user and end user. Totals live in their own table so that adding spend never touches an
-- identity's updated_at (which the identity cache polls). Amounts are nano-dollars.

CREATE TABLE switchyard_spend_logs (
    id                TEXT    NOT NULL PRIMARY KEY,
    request_id        TEXT    NOT NULL,
    started_at        INTEGER NOT NULL,
    api_key           TEXT    NOT NULL,   -- SHA-256 of the key; '' for the master key
    key_alias         TEXT,
    team_id           TEXT,
    user_id           TEXT,
    end_user          TEXT,
    requested_model   TEXT    NOT NULL,
    model_group       TEXT,
    deployment_id     TEXT,
    provider          TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    cost_source       TEXT    NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    status            INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    stream            INTEGER NOT NULL,
    cache_hit         INTEGER NOT NULL,
    metadata          TEXT
);
CREATE INDEX switchyard_spend_logs_started_at ON switchyard_spend_logs (started_at);
CREATE INDEX switchyard_spend_logs_api_key ON switchyard_spend_logs (api_key, started_at);
CREATE INDEX switchyard_spend_logs_team_id ON switchyard_spend_logs (team_id, started_at);
CREATE INDEX switchyard_spend_logs_user_id ON switchyard_spend_logs (user_id, started_at);
CREATE INDEX switchyard_spend_logs_request_id ON switchyard_spend_logs (request_id);

CREATE TABLE switchyard_spend_totals (
    kind        TEXT    NOT NULL,   -- key, team, user, end_user
    id          TEXT    NOT NULL,
    spend_nanos INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
