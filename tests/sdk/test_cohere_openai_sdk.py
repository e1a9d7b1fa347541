"""The official `openai` SDK against Cohere deployments (`cohere/...`).

The gateway translates the OpenAI chat request to Cohere's Chat v2 (`/v2/chat`), reads its
named event stream and answers in OpenAI's format; embeddings go to `/v2/embed`.
"""

from __future__ import annotations

import json

import openai

from conftest import MOCK_REPLY, UPSTREAM_KEY

MODEL = "cohere-command"
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
        top_p=0.5,
    )
    assert completion.model == MODEL
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 6

    upstream = mock.only_request_to("/v2/chat")
    assert upstream.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert upstream.body["model"] == "command-a-03-2025"
    assert upstream.body["max_tokens"] == 50
    assert upstream.body["p"] == 0.5
    assert upstream.body["messages"][0] == {"role": "system", "content": "Be terse."}


def test_stream(client: openai.OpenAI, mock):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == MOCK_REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage.completion_tokens == 6
    assert mock.only_request_to("/v2/chat").body["stream"] is True


def test_tools(client: openai.OpenAI, mock):
    question = {"role": "user", "content": "Weather in Paris?"}
    completion = client.chat.completions.create(
        model=MODEL, messages=[question], tools=[WEATHER], tool_choice="required"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}

    answer = client.chat.completions.create(
        model=MODEL,
        tools=[WEATHER],
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert answer.choices[0].message.content == MOCK_REPLY
    sent = mock.requests_to("/v2/chat")[-1].body
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


def test_embeddings(client: openai.OpenAI, mock):
    result = client.embeddings.create(model="cohere-embed", input=["hello", "world"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 4
    sent = mock.only_request_to("/v2/embed").body
    assert sent["texts"] == ["hello", "world"]
    assert sent["input_type"] == "search_document"
