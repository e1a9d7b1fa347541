"""The response cache seen by the official `openai` and `anthropic` SDKs: a stream served from
the cache is a stream the SDK parses like any other (docs/caching.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import (
    MASTER_KEY,
    MOCK_REPLY,
    UPSTREAM_KEY,
    make_anthropic_client,
    make_client,
    start_service,
)

CACHE_CONFIG = """\
model_list:
  - model_name: cached-chat
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
  - model_name: cached-claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
litellm_settings:
  cache: true
  cache_params: {{ttl: 60}}
general_settings:
  master_key: {master}
"""


@pytest.fixture(scope="module")
def cached_gateway(workdir: Path, mock_upstream):
    path = workdir / "cache-config.yaml"
    path.write_text(CACHE_CONFIG.format(mock=mock_upstream.url, master=MASTER_KEY))
    service = start_service(
        "cache-gateway",
        ["serve", "--config", str(path), "--host", "127.0.0.1", "--port", "0"],
        "switchyard",
        workdir,
        env={"MOCK_KEY": UPSTREAM_KEY},
    )
    try:
        yield service
    finally:
        service.stop()


def test_a_cached_stream_is_a_stream_the_sdk_parses(cached_gateway, mock_upstream):
    client = make_client(cached_gateway.url)
    messages = [{"role": "user", "content": "Cache this answer."}]
    first = client.chat.completions.create(model="cached-chat", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert text == MOCK_REPLY

    raw = client.chat.completions.with_raw_response.create(
        model="cached-chat",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers.get("x-switchyard-cache") == "hit"
    assert len(raw.headers.get("x-litellm-cache-key", "")) == 64
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == MOCK_REPLY
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(c.model == "cached-chat" for c in chunks)

    whole = client.chat.completions.create(model="cached-chat", messages=messages)
    assert whole.choices[0].message.content == MOCK_REPLY
    assert whole.usage.total_tokens > 0
    assert len(mock_upstream.requests_to("/chat/completions")) == 1, "one upstream call in all"
    client.close()


def blocks(message) -> list[dict]:
    """Content blocks as data (the stream helper's blocks are `Parsed*` subclasses)."""
    return [b.model_dump(exclude={"parsed_output"}) for b in message.content]


@pytest.mark.parametrize("model", ["cached-claude", "cached-chat"])
def test_anthropic_sdk_reads_cached_messages_whole_and_streamed(cached_gateway, mock_upstream, model):
    """`cached-claude` is an Anthropic deployment (forwarded natively), `cached-chat` an OpenAI
    one (translated): both are cached as Anthropic messages."""
    client = make_anthropic_client(cached_gateway.url)
    upstream = "/v1/messages" if model == "cached-claude" else "/chat/completions"
    messages = [{"role": "user", "content": f"Cache this message ({model})."}]

    # A whole answer, then a repeat (another end user: metadata is not in the key) and a stream.
    raw = client.messages.with_raw_response.create(model=model, max_tokens=64, messages=messages)
    assert raw.headers.get("x-switchyard-cache") == "miss"
    first = raw.parse()
    assert first.content[0].text == MOCK_REPLY
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=64, messages=messages, metadata={"user_id": "someone-else"}
    )
    assert raw.headers.get("x-switchyard-cache") == "hit"
    assert len(raw.headers.get("x-litellm-cache-key", "")) == 64
    assert raw.headers.get("x-litellm-response-cost") == "0"
    assert raw.parse() == first
    with client.messages.stream(model=model, max_tokens=64, messages=messages) as stream:
        assert stream.response.headers.get("x-switchyard-cache") == "hit"
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == MOCK_REPLY
    assert final.model == model
    assert final.stop_reason == "end_turn"
    assert blocks(final) == blocks(first)
    assert final.usage.output_tokens == first.usage.output_tokens
    assert final.usage.input_tokens == first.usage.input_tokens

    # A streamed answer, stored once complete, then served whole and streamed.
    messages = [{"role": "user", "content": f"Stream this first ({model})."}]
    with client.messages.stream(model=model, max_tokens=64, messages=messages) as stream:
        assert stream.response.headers.get("x-switchyard-cache") == "miss"
        streamed = stream.get_final_message()
    raw = client.messages.with_raw_response.create(model=model, max_tokens=64, messages=messages)
    assert raw.headers.get("x-switchyard-cache") == "hit"
    assert blocks(raw.parse()) == blocks(streamed)
    events = list(
        client.messages.create(model=model, max_tokens=64, messages=messages, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"], kinds
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == streamed.usage.output_tokens

    assert len(mock_upstream.requests_to(upstream)) == 2, "one upstream call per prompt"
    client.close()
