-- Spend logs: one row per model request (src/spend), and the running spend of each key, team,
-- user and end user. Totals live in their own table so that adding spend never touches an
-- identity's updated_at (which the identity cache polls). Amounts are nano-dollars.

CREATE TABLE switchyard_spend_logs (
    id                TEXT    NOT NULL PRIMARY KEY,
    request_id        TEXT    NOT NULL,
    started_at        BIGINT  NOT NULL,
    api_key           TEXT    NOT NULL,   -- SHA-256 of the key; '' for the master key
    key_alias         TEXT,
    team_id           TEXT,
    user_id           TEXT,
    end_user          TEXT,
    requested_model   TEXT    NOT NULL,
    model_group       TEXT,
    deployment_id     TEXT,
    provider          TEXT,
    prompt_tokens     BIGINT  NOT NULL,
    completion_tokens BIGINT  NOT NULL,
    cached_tokens     BIGINT  NOT NULL,
    cost_nanos        BIGINT  NOT NULL,
    cost_source       TEXT    NOT NULL,
    latency_ms        BIGINT  NOT NULL,
    ttft_ms           BIGINT,
    status            BIGINT  NOT NULL,
    outcome           TEXT    NOT NULL,
    stream            BOOLEAN NOT NULL,
    cache_hit         BOOLEAN NOT NULL,
    metadata          JSONB
);
CREATE INDEX switchyard_spend_logs_started_at ON switchyard_spend_logs (started_at);
CREATE INDEX switchyard_spend_logs_api_key ON switchyard_spend_logs (api_key, started_at);
CREATE INDEX switchyard_spend_logs_team_id ON switchyard_spend_logs (team_id, started_at);
CREATE INDEX switchyard_spend_logs_user_id ON switchyard_spend_logs (user_id, started_at);
CREATE INDEX switchyard_spend_logs_request_id ON switchyard_spend_logs (request_id);

CREATE TABLE switchyard_spend_totals (
    kind        TEXT    NOT NULL,   -- key, team, user, end_user
    id          TEXT    NOT NULL,
    spend_nanos BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
