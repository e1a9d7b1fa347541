"""The response cache seen by the official `openai` SDK: a stream served from the cache is a
stream the SDK parses like any other (docs/caching.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MASTER_KEY, MOCK_REPLY, UPSTREAM_KEY, make_client, start_service

CACHE_CONFIG = """\
model_list:
  - model_name: cached-chat
    litellm_params:
      model: openai/gpt-4o-mini
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
