"""The official `openai` SDK against Vertex AI deployments (Gemini and Claude on Vertex).

The client speaks OpenAI's chat format; the gateway fetches an OAuth token for the (test-only)
service account from the mock's token endpoint, translates the request to Gemini's
generateContent or Anthropic's Messages (rawPredict), and the answer back.
"""

from __future__ import annotations

import openai

from conftest import MOCK_REPLY

GEMINI_PATH = (
    "/v1/projects/sdk-project/locations/us-central1/publishers/google/models/"
    "gemini-2.0-flash:generateContent"
)
CLAUDE_STREAM_PATH = (
    "/v1/projects/sdk-project/locations/us-east5/publishers/anthropic/models/"
    "claude-sonnet-4-5@20250929:streamRawPredict"
)


def test_chat_on_vertex_gemini(client: openai.OpenAI, mock):
    completion = client.chat.completions.create(
        model="vertex-gemini",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello."},
        ],
        max_tokens=50,
    )
    assert completion.model == "vertex-gemini"
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"

    upstream = mock.only_request_to(GEMINI_PATH)
    assert upstream.header("authorization").startswith("Bearer ya29.mock-")
    assert upstream.header("x-goog-api-key") is None
    assert upstream.body["systemInstruction"]["parts"][0]["text"] == "Be terse."
    assert upstream.body["generationConfig"]["maxOutputTokens"] == 50


def test_stream_on_vertex_claude(client: openai.OpenAI, mock):
    stream = client.chat.completions.create(
        model="vertex-claude",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == MOCK_REPLY
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0

    upstream = mock.only_request_to(CLAUDE_STREAM_PATH)
    assert upstream.header("authorization").startswith("Bearer ya29.mock-")
    assert upstream.body["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in upstream.body
    assert upstream.body["stream"] is True
