-- LiteLLM's name for a spend row's route (`acompletion`, `aembedding`, `arerank`, `aresponses`,
-- `anthropic_messages`, `pass_through_endpoint` ...), as its SpendLogs `call_type`. Rows written
-- before this column have none: every one of them was read as a chat completion.
ALTER TABLE switchyard_spend_logs ADD COLUMN call_type TEXT;
