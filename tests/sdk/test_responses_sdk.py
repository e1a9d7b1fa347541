"""The official `openai` SDK's Responses API (`client.responses.create`) through the gateway.

Against an OpenAI deployment the request goes upstream natively (`/v1/responses`); against
an Anthropic one it is translated to the Messages API and the answer, stream and tool calls
back. The mock upstream records what the "provider" received, so the tests check both sides.
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import MOCK_REPLY, UPSTREAM_KEY

OPENAI = "gpt-4o-mini"
CLAUDE = "claude-sonnet"
BOTH = pytest.mark.parametrize("model", [OPENAI, CLAUDE])
UPSTREAM = {OPENAI: "/v1/responses", CLAUDE: "/v1/messages"}

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@BOTH
def test_create(client: openai.OpenAI, mock, model):
    response = client.responses.create(
        model=model,
        instructions="Be terse.",
        input="Say hello.",
        max_output_tokens=50,
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == model
    assert response.id.startswith("resp_")
    assert response.output_text == MOCK_REPLY
    assert response.output[0].type == "message"
    assert response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    sent = mock.only_request_to(UPSTREAM[model])
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}" or sent.header("x-api-key") == UPSTREAM_KEY
    if model == OPENAI:
        assert sent.body["model"] == "gpt-4o-mini"
        assert sent.body["input"] == "Say hello."
        assert sent.body["instructions"] == "Be terse."
    else:
        assert sent.body["system"] == "Be terse."
        assert sent.body["max_tokens"] == 50


@BOTH
def test_stream(client: openai.OpenAI, mock, model):
    stream = client.responses.create(model=model, input="Say hello.", stream=True)
    types = []
    text = ""
    completed = None
    for event in stream:
        types.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            completed = event.response
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert text == MOCK_REPLY
    assert completed is not None
    assert completed.output_text == MOCK_REPLY
    assert completed.model == model
    assert mock.only_request_to(UPSTREAM[model])


@BOTH
def test_stream_helper_accumulates(client: openai.OpenAI, model):
    with client.responses.stream(model=model, input="Say hello.") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == MOCK_REPLY


@BOTH
def test_function_tool_and_its_output(client: openai.OpenAI, mock, model):
    first = client.responses.create(
        model=model, input="What is the weather in Paris?", tools=[WEATHER]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "mock"}
    # The whole conversation sent back (the way that works everywhere, stored or not).
    second = client.responses.create(
        model=model,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temp": 21})},
        ],
    )
    assert second.output_text == MOCK_REPLY
    sent = mock.requests_to(UPSTREAM[model])[-1]
    if model == CLAUDE:
        roles = [m["role"] for m in sent.body["messages"]]
        assert roles == ["user", "assistant", "user"]
        assert sent.body["messages"][1]["content"][0]["type"] == "tool_use"
        assert sent.body["messages"][2]["content"][0]["type"] == "tool_result"
    else:
        assert sent.body["input"][2]["type"] == "function_call_output"


def test_previous_response_id_continues_a_translated_conversation(client: openai.OpenAI, mock):
    first = client.responses.create(model=CLAUDE, input="What is the weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model=CLAUDE,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert second.output_text == MOCK_REPLY
    assert second.previous_response_id == first.id
    sent = mock.requests_to("/v1/messages")[-1]
    assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
    assert client.responses.retrieve(second.id).id == second.id
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_unknown_previous_response_id_is_a_bad_request(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=CLAUDE, previous_response_id="resp_missing", input="Hi")
    assert "resp_missing" in str(raised.value)


@BOTH
def test_output_items_fed_back_as_input(client: openai.OpenAI, mock, model):
    """OpenAI's documented function-calling loop: append `response.output` to the input."""
    conversation = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model=model, input=conversation, tools=[WEATHER])
    conversation += first.output
    for item in first.output:
        if item.type == "function_call":
            conversation.append({"type": "function_call_output", "call_id": item.call_id, "output": "sunny"})
    second = client.responses.create(model=model, input=conversation, tools=[WEATHER])
    assert second.output_text == MOCK_REPLY
    if model == CLAUDE:
        sent = mock.requests_to("/v1/messages")[-1]
        assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
