-- Spend logs, cheaper to write (issue 9). A row used to go into the table and six B-trees: the
-- row id's primary key and five secondary indexes. Now:
-- - the primary key is (started_at, id): it dedupes a retried or replayed row (a row keeps its
--   id and started_at through the spill file) and is the time index every date filter,
--   `spend_logs`' newest-first order and retention use, so the separate started_at index and
--   the id index become one;
-- - team_id, user_id and end_user are indexed only where set (partial indexes; `col = $1`
--   implies `col IS NOT NULL`, so filters still use them): a row without a team, user or end
--   user costs no insert there. end_user gains an index (budgets and reports filter by it).
-- The rows stay where they are; only indexes are rebuilt.

ALTER TABLE switchyard_spend_logs DROP CONSTRAINT switchyard_spend_logs_pkey;
ALTER TABLE switchyard_spend_logs ADD CONSTRAINT switchyard_spend_logs_pkey
    PRIMARY KEY (started_at, id);
DROP INDEX switchyard_spend_logs_started_at;
DROP INDEX switchyard_spend_logs_team_id;
DROP INDEX switchyard_spend_logs_user_id;
CREATE INDEX switchyard_spend_logs_team_id ON switchyard_spend_logs (team_id, started_at)
    WHERE team_id IS NOT NULL;
CREATE INDEX switchyard_spend_logs_user_id ON switchyard_spend_logs (user_id, started_at)
    WHERE user_id IS NOT NULL;
CREATE INDEX switchyard_spend_logs_end_user ON switchyard_spend_logs (end_user, started_at)
    WHERE end_user IS NOT NULL;
