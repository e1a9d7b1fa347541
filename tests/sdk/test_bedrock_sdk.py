"""The official `openai` SDK against a Bedrock deployment (Converse and ConverseStream).

The client speaks OpenAI's chat format; the gateway translates it to Bedrock's Converse
request, signs it with SigV4, and translates the answer (JSON, or AWS's binary event
stream) back. The mock upstream records what "Bedrock" received.
"""

from __future__ import annotations

import json

import openai

from conftest import MOCK_REPLY

MODEL = "claude-bedrock"
PATH = "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_chat(client: openai.OpenAI, mock):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello."},
        ],
        max_tokens=50,
        temperature=0.5,
    )
    assert completion.model == MODEL
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 6

    upstream = mock.only_request_to(PATH)
    authorization = upstream.header("authorization")
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in authorization
    assert upstream.header("x-amz-date")
    assert upstream.body["system"] == [{"text": "Be terse."}]
    assert upstream.body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.5}
    assert upstream.body["messages"] == [{"role": "user", "content": [{"text": "Say hello."}]}]


def test_stream_with_usage(client: openai.OpenAI, mock):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    finish = None
    usage = None
    for chunk in stream:
        assert chunk.model == MODEL
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == MOCK_REPLY
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 6
    upstream = mock.only_request_to(PATH + "-stream")
    assert upstream.header("accept") == "application/vnd.amazon.eventstream"


def test_tool_call_round_trip(client: openai.OpenAI, mock):
    first = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}

    second = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Weather in Rome?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == MOCK_REPLY
    sent = mock.requests_to(PATH)[-1].body
    assert sent["messages"][2]["content"][0]["toolResult"] == {
        "toolUseId": call.id,
        "content": [{"text": "sunny"}],
    }
