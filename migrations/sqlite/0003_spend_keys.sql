-- Spend logs, cheaper to write (issue 9). A row used to go into the table and six B-trees: the
-- row id's unique index and five secondary indexes. Now:
-- - the primary key is (started_at, id): it dedupes a retried or replayed row (a row keeps its
--   id and started_at through the spill file) and is the time index every date filter,
--   `spend_logs`' newest-first order and retention use, so the separate started_at index and
--   the id index become one;
-- - team_id, user_id and end_user are indexed only where set (partial indexes; `col = ?`
--   implies `col IS NOT NULL`, so filters still use them): a row without a team, user or end
--   user costs no insert there. end_user gains an index (budgets and reports filter by it).
-- SQLite cannot change a primary key in place: the table is rebuilt, every row copied.

CREATE TABLE switchyard_spend_logs_new (
    id                TEXT    NOT NULL,
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
    metadata          TEXT,
    PRIMARY KEY (started_at, id)
);
INSERT INTO switchyard_spend_logs_new (id, request_id, started_at, api_key, key_alias, team_id,
    user_id, end_user, requested_model, model_group, deployment_id, provider, prompt_tokens,
    completion_tokens, cached_tokens, cost_nanos, cost_source, latency_ms, ttft_ms, status,
    outcome, stream, cache_hit, metadata)
SELECT id, request_id, started_at, api_key, key_alias, team_id, user_id, end_user,
    requested_model, model_group, deployment_id, provider, prompt_tokens, completion_tokens,
    cached_tokens, cost_nanos, cost_source, latency_ms, ttft_ms, status, outcome, stream,
    cache_hit, metadata
FROM switchyard_spend_logs ORDER BY started_at, id;
DROP TABLE switchyard_spend_logs;
ALTER TABLE switchyard_spend_logs_new RENAME TO switchyard_spend_logs;

CREATE INDEX switchyard_spend_logs_api_key ON switchyard_spend_logs (api_key, started_at);
CREATE INDEX switchyard_spend_logs_request_id ON switchyard_spend_logs (request_id);
CREATE INDEX switchyard_spend_logs_team_id ON switchyard_spend_logs (team_id, started_at)
    WHERE team_id IS NOT NULL;
CREATE INDEX switchyard_spend_logs_user_id ON switchyard_spend_logs (user_id, started_at)
    WHERE user_id IS NOT NULL;
CREATE INDEX switchyard_spend_logs_end_user ON switchyard_spend_logs (end_user, started_at)
    WHERE end_user IS NOT NULL;
