"""The official `openai` SDK against Anthropic and Gemini deployments.

The client speaks OpenAI's chat format only; the gateway translates each request to the
provider's format (Anthropic Messages, Gemini generateContent) and each answer, stream and
tool call back. The mock upstream records what the "provider" received, so the tests check
both sides.
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import MOCK_REPLY, UPSTREAM_KEY

CLAUDE = "claude-sonnet"
GEMINI = "gemini-flash"
BOTH = pytest.mark.parametrize("model", [CLAUDE, GEMINI])

UPSTREAM = {
    CLAUDE: "/v1/messages",
    GEMINI: "/v1beta/models/gemini-2.5-flash:generateContent",
}
STREAM_UPSTREAM = {
    CLAUDE: "/v1/messages",
    GEMINI: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
MOCK_ARGUMENTS = {"city": "mock", "days": 1}


@BOTH
def test_chat(client: openai.OpenAI, mock, model):
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello."},
        ],
        max_tokens=50,
        temperature=0.5,
    )
    assert raw.status_code == 200
    completion = raw.parse()
    assert completion.model == model
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6

    upstream = mock.only_request_to(UPSTREAM[model])
    if model == CLAUDE:
        assert upstream.header("x-api-key") == UPSTREAM_KEY
        assert upstream.body["system"] == "Be terse."
        assert upstream.body["max_tokens"] == 50
        assert upstream.body["messages"] == [{"role": "user", "content": "Say hello."}]
    else:
        assert upstream.header("x-goog-api-key") == UPSTREAM_KEY
        assert upstream.body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
        assert upstream.body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 50}
        assert upstream.body["contents"] == [{"role": "user", "parts": [{"text": "Say hello."}]}]


@BOTH
def test_stream_with_usage(client: openai.OpenAI, mock, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == MOCK_REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 6
    assert all(c.model == model for c in chunks)
    assert mock.only_request_to(STREAM_UPSTREAM[model]).body is not None


@BOTH
def test_tools(client: openai.OpenAI, mock, model):
    question = {"role": "user", "content": "Weather in Paris for tomorrow?"}
    completion = client.chat.completions.create(
        model=model, messages=[question], tools=[WEATHER], tool_choice="auto"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == MOCK_ARGUMENTS

    answer = client.chat.completions.create(
        model=model,
        tools=[WEATHER],
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == MOCK_REPLY

    sent = mock.requests_to(UPSTREAM[model])[-1].body
    if model == CLAUDE:
        assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
        assert sent["messages"][1]["content"] == [
            {"type": "tool_use", "id": call.id, "name": "get_weather", "input": MOCK_ARGUMENTS}
        ]
        assert sent["messages"][2]["content"] == [
            {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
        ]
    else:
        assert sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER["function"]["parameters"]
        assert sent["contents"][1]["parts"] == [{"functionCall": {"name": "get_weather", "args": MOCK_ARGUMENTS}}]
        assert sent["contents"][2]["parts"] == [
            {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
        ]


@BOTH
def test_streamed_tool_call(client: openai.OpenAI, mock, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for piece in delta.tool_calls or []:
            entry = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
            if piece.id:
                entry["id"] = piece.id
            if piece.function and piece.function.name:
                entry["name"] = piece.function.name
            if piece.function and piece.function.arguments:
                entry["arguments"] += piece.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == MOCK_ARGUMENTS


@BOTH
def test_provider_errors_are_openai_errors(client: openai.OpenAI, mock, model):
    mock.configure(fail_next=1, error_status=429)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["type"] == "rate_limit_error"
    mock.configure(fail_next=1, error_status=400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_unsupported_parameter_is_a_400_naming_it(client: openai.OpenAI, mock):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "hi"}], logit_bias={"50256": -100}
        )
    assert "logit_bias" in err.value.message
    assert not mock.requests(), "refused before anything was sent"
