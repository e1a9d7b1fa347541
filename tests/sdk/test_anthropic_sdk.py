"""The official `anthropic` Python SDK against the gateway's `/v1/messages`.

Two deployments behind the same surface: `claude-sonnet` (an Anthropic deployment: the
request is forwarded natively) and `gpt-4o-mini` (an OpenAI deployment: the request is
translated to a chat completion and the answer, streams included, back to Anthropic's
format). The SDK must not be able to tell the difference.
"""

from __future__ import annotations

import anthropic
import pytest

from conftest import MASTER_KEY, MOCK_REPLY, OFFLINE_REPLY, UPSTREAM_KEY, make_anthropic_client

ANTHROPIC_MODEL = "claude-sonnet"
OPENAI_MODEL = "gpt-4o-mini"
BOTH = pytest.mark.parametrize("model", [ANTHROPIC_MODEL, OPENAI_MODEL])

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location", "unit"],
    },
}
MOCK_ARGUMENTS = {"location": "mock", "unit": "celsius"}


def upstream_path(model: str) -> str:
    return "/v1/messages" if model == ANTHROPIC_MODEL else "/v1/chat/completions"


@BOTH
def test_message(anthropic_client: anthropic.Anthropic, mock, model):
    raw = anthropic_client.messages.with_raw_response.create(
        model=model,
        max_tokens=256,
        system="You are terse.",
        messages=[{"role": "user", "content": "Say hello."}],
    )
    assert raw.headers.get("x-switchyard-model-group") == model
    message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == model
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == MOCK_REPLY
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens == 6

    upstream = mock.only_request_to(upstream_path(model))
    assert MASTER_KEY not in str(upstream.headers)
    if model == ANTHROPIC_MODEL:
        # Native: the SDK's body and version header, only the model rewritten.
        assert upstream.body["model"] == "claude-sonnet-4-5-20250929"
        assert upstream.body["system"] == "You are terse."
        assert upstream.body["max_tokens"] == 256
        assert upstream.header("x-api-key") == UPSTREAM_KEY
        assert upstream.header("anthropic-version") == anthropic._constants.ANTHROPIC_API_VERSION
    else:
        assert upstream.body["messages"] == [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello."},
        ]
        assert upstream.body["max_tokens"] == 256
        assert upstream.header("authorization") == f"Bearer {UPSTREAM_KEY}"


@BOTH
def test_stream(anthropic_client: anthropic.Anthropic, mock, model):
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=128,
        messages=[{"role": "user", "content": "Say hello."}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == MOCK_REPLY
    assert final.model == model
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == MOCK_REPLY
    assert final.usage.output_tokens == 6
    assert final.usage.input_tokens > 0
    assert mock.only_request_to(upstream_path(model)).body["stream"] is True


@BOTH
def test_raw_stream_events(anthropic_client: anthropic.Anthropic, mock, model):
    events = list(
        anthropic_client.messages.create(
            model=model,
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": "Say hello."}],
        )
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1


@BOTH
def test_tools_round_trip(anthropic_client: anthropic.Anthropic, mock, model):
    question = {"role": "user", "content": "What's the weather in Paris?"}
    first = anthropic_client.messages.create(
        model=model, max_tokens=256, tools=[WEATHER], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather"
    assert tool_use.input == MOCK_ARGUMENTS
    assert tool_use.id

    second = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "15 degrees"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == MOCK_REPLY

    sent = mock.requests_to(upstream_path(model))[-1].body
    if model == ANTHROPIC_MODEL:
        assert sent["messages"][2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": tool_use.id,
            "content": "15 degrees",
        }
        assert sent["tools"][0]["name"] == "get_weather"
    else:
        assert sent["tools"][0] == {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER["description"],
                "parameters": WEATHER["input_schema"],
            },
        }
        assert sent["messages"][1]["tool_calls"][0]["id"] == tool_use.id
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": tool_use.id, "content": "15 degrees"}


@BOTH
def test_forced_tool_streamed(anthropic_client: anthropic.Anthropic, mock, model):
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=256,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == MOCK_ARGUMENTS


@BOTH
def test_count_tokens(anthropic_client: anthropic.Anthropic, mock, model):
    count = anthropic_client.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "Hello there, how are you?"}]
    )
    assert count.input_tokens > 0


def test_errors_are_the_sdk_classes(gateway_url: str, anthropic_client: anthropic.Anthropic, mock):
    hello = [{"role": "user", "content": "hi"}]
    with make_anthropic_client(gateway_url, api_key="sk-wrong") as wrong:
        with pytest.raises(anthropic.AuthenticationError) as err:
            wrong.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=hello)
        assert err.value.body["type"] == "error"
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(model="no-such-model", max_tokens=10, messages=hello)
    mock.configure(fail_next=1, error_status=429, retry_after=1)
    with pytest.raises(anthropic.RateLimitError) as err:
        anthropic_client.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=hello)
    assert err.value.body["error"]["type"] == "rate_limit_error"
    mock.configure(fail_next=1, error_status=503, retry_after=None)
    with pytest.raises(anthropic.APIStatusError) as err:
        anthropic_client.messages.create(model=OPENAI_MODEL, max_tokens=10, messages=hello)
    assert err.value.status_code == 502
    assert err.value.body["error"]["type"] == "api_error"


def test_stream_cut_mid_way_raises(anthropic_client: anthropic.Anthropic, mock):
    mock.configure(fail_mid_stream_after=3)
    with pytest.raises(anthropic.APIError):
        with anthropic_client.messages.stream(
            model=ANTHROPIC_MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            stream.get_final_message()


def test_docs_example_against_an_offline_deployment(anthropic_client: anthropic.Anthropic, mock):
    """docs/anthropic-api.md's example, against a `mock_response` deployment."""
    message = anthropic_client.messages.create(
        model="offline", max_tokens=256, messages=[{"role": "user", "content": "Hello!"}]
    )
    assert message.content[0].text == OFFLINE_REPLY
    with anthropic_client.messages.stream(
        model="offline", max_tokens=256, messages=[{"role": "user", "content": "Stream it"}]
    ) as stream:
        assert "".join(stream.text_stream) == OFFLINE_REPLY
    assert not mock.requests(), "an offline deployment calls no upstream"
