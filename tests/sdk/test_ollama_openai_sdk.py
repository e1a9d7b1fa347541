"""The official `openai` SDK against Ollama deployments (`ollama_chat/...`).

The gateway translates the OpenAI chat request to Ollama's native `/api/chat`, reads its
newline-delimited JSON stream and answers in OpenAI's format; embeddings go to `/api/embed`.
"""

from __future__ import annotations

import base64
import json
import struct

import openai

from conftest import MOCK_REPLY

MODEL = "ollama-llama"
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
        seed=7,
    )
    assert completion.model == MODEL
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 6

    upstream = mock.only_request_to("/api/chat")
    assert upstream.header("authorization") is None
    assert upstream.body["model"] == "llama3.2"
    assert upstream.body["stream"] is False
    assert upstream.body["options"] == {"temperature": 0.5, "num_predict": 50, "seed": 7}
    assert upstream.body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Say hello."},
    ]


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
    assert all(c.model == MODEL for c in chunks)
    assert mock.only_request_to("/api/chat").body["stream"] is True


def test_tools(client: openai.OpenAI, mock):
    question = {"role": "user", "content": "Weather in Paris?"}
    completion = client.chat.completions.create(model=MODEL, messages=[question], tools=[WEATHER])
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
    sent = mock.requests_to("/api/chat")[-1].body
    assert sent["messages"][2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_embeddings_default_base64(client: openai.OpenAI, mock):
    # The SDK asks for base64 and decodes it; the gateway encodes Ollama's floats.
    result = client.embeddings.create(model="ollama-embed", input=["hello", "world"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 4
    raw = client.embeddings.create(model="ollama-embed", input="hello", encoding_format="float")
    # The same vector either way (base64 carries f32, the float form the upstream's text).
    assert all(abs(a - b) < 1e-6 for a, b in zip(raw.data[0].embedding, result.data[0].embedding))
    assert mock.requests_to("/api/embed")[-1].body == {"model": "all-minilm", "input": "hello"}
    # Sanity: what base64 decodes to is little-endian f32.
    packed = base64.b64encode(struct.pack("<2f", 1.0, 1.0)).decode()
    assert packed == "AACAPwAAgD8="
