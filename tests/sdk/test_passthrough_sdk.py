"""The official SDKs against the provider pass-through routes (`/openai/*`, `/anthropic/*`).

The SDK's base URL points at the route; the gateway checks the caller's key and forwards the
request to the provider (here the mock) with its own key, the answer coming back as the
provider sent it.
"""

from __future__ import annotations

import anthropic
import openai

from conftest import MASTER_KEY, MOCK_REPLY, UPSTREAM_KEY, http_json

HELLO = [{"role": "user", "content": "Say hello."}]


def generate_key(gateway_url: str, **body) -> str:
    status, _, answer = http_json(
        "POST", f"{gateway_url}/key/generate", body, {"Authorization": f"Bearer {MASTER_KEY}"}
    )
    assert status == 200, answer
    return answer["key"]


def test_openai_sdk_through_the_openai_route(gateway_url: str, mock):
    key = generate_key(gateway_url, key_alias="passthrough-sdk")
    client = openai.OpenAI(base_url=f"{gateway_url}/openai/v1", api_key=key, max_retries=0, timeout=30)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.usage.completion_tokens == 6

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == MOCK_REPLY
    assert chunks[-1].usage.completion_tokens == 6

    upstream = mock.requests_to("/v1/chat/completions")
    assert len(upstream) == 2
    for request in upstream:
        assert request.header("authorization") == f"Bearer {UPSTREAM_KEY}"
        assert key not in str(request.headers)


def test_anthropic_sdk_through_the_anthropic_route(gateway_url: str, mock):
    client = anthropic.Anthropic(
        base_url=f"{gateway_url}/anthropic", api_key=MASTER_KEY, max_retries=0, timeout=30
    )
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HELLO)
    assert message.content[0].text == MOCK_REPLY
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=HELLO) as stream:
        assert "".join(stream.text_stream) == MOCK_REPLY
    for request in mock.requests_to("/v1/messages"):
        assert request.header("x-api-key") == UPSTREAM_KEY
        assert request.header("authorization") is None


def test_a_wrong_key_is_an_authentication_error_and_nothing_is_sent(gateway_url: str, mock):
    client = openai.OpenAI(
        base_url=f"{gateway_url}/openai/v1", api_key="sk-not-a-key", max_retries=0, timeout=30
    )
    try:
        client.models.list()
        raise AssertionError("the wrong key was accepted")
    except openai.AuthenticationError:
        pass
    assert mock.requests() == []
