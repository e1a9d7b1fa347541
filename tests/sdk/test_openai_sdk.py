"""The official `openai` Python SDK against the real gateway and the mock upstream.

These prove that an unmodified OpenAI client works through Switchyard: requests
reach the upstream translated (alias -> provider model, master key -> provider key)
with unknown fields intact, and responses, streams and errors come back in the
shapes and classes the SDK expects.
"""

from __future__ import annotations

import subprocess
import time

import openai
import pytest

from conftest import (
    ALIASES,
    MASTER_KEY,
    MOCK_REPLY,
    OFFLINE_REPLY,
    UPSTREAM_KEY,
    binary_path,
    http_json,
    make_client,
)

CHAT = "/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]


def assert_switchyard_headers(headers) -> None:
    assert headers.get("x-request-id"), f"missing x-request-id; headers: {dict(headers)}"
    assert headers.get("x-switchyard-model-id"), f"missing x-switchyard-model-id; headers: {dict(headers)}"


def assert_openai_error_shape(err: openai.APIStatusError) -> None:
    payload = err.response.json()
    assert isinstance(payload, dict) and isinstance(payload.get("error"), dict), payload
    assert isinstance(payload["error"].get("message"), str) and payload["error"]["message"], payload
    assert "type" in payload["error"], payload


# --------------------------------------------------------------------------- chat


def test_chat_completion(client: openai.OpenAI, mock):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert raw.status_code == 200
    assert_switchyard_headers(raw.headers)
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert len(completion.choices) == 1
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == MOCK_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    upstream = mock.only_request_to(CHAT)
    assert upstream.path == "/v1/chat/completions"
    assert upstream.body["model"] == "gpt-4o-mini"
    assert upstream.body["messages"] == HELLO
    assert upstream.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    # The client's gateway key is the gateway's business, not the provider's.
    assert MASTER_KEY not in str(upstream.headers)


def test_alias_is_rewritten_to_upstream_model(client: openai.OpenAI, mock):
    completion = client.chat.completions.create(model="team-chat", messages=HELLO)
    assert completion.model == "team-chat"
    assert completion.choices[0].message.content == MOCK_REPLY
    assert mock.only_request_to(CHAT).body["model"] == "gpt-4o-mini"


def test_each_response_gets_its_own_request_id(client: openai.OpenAI, mock):
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert first.headers.get("x-request-id")
    assert first.headers.get("x-request-id") != second.headers.get("x-request-id")


def test_unknown_and_known_fields_pass_through(client: openai.OpenAI, mock):
    extra = {
        "switchyard_test_field": {"nested": [1, 2.5, "three", None, True], "empty": {}},
        "top_k": 7,
    }
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        temperature=0.25,
        max_tokens=33,
        seed=11,
        user="user-123",
        extra_body=extra,
    )
    body = mock.only_request_to(CHAT).body
    for key, value in extra.items():
        assert body.get(key) == value, f"{key} changed on the way upstream: {body.get(key)!r}"
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 33
    assert body["seed"] == 11
    assert body["user"] == "user-123"


# --------------------------------------------------------------------------- streaming


def test_streaming_with_usage(client: openai.OpenAI, mock):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == MOCK_REPLY
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "reply was not streamed in pieces"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "gpt-4o-mini" for c in chunks), {c.model for c in chunks}
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)

    last = chunks[-1]
    assert last.usage is not None, "last chunk carries no usage"
    assert last.choices == []
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens

    upstream = mock.only_request_to(CHAT).body
    assert upstream["stream"] is True
    assert upstream["model"] == "gpt-4o-mini"


def test_streaming_without_usage_sends_no_usage_chunk(client: openai.OpenAI, mock):
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == MOCK_REPLY
    # The client did not ask for usage, so (as with OpenAI) no usage-only chunk arrives,
    # even if the gateway asked the upstream for one to count cost.
    assert all(c.choices for c in chunks), "got a usage-only chunk the client did not ask for"


def test_streaming_response_headers(client: openai.OpenAI, mock):
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    ) as response:
        assert response.status_code == 200
        assert response.headers.get("content-type", "").startswith("text/event-stream")
        assert_switchyard_headers(response.headers)
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == MOCK_REPLY


def test_legacy_completions(client: openai.OpenAI, mock):
    completion = client.completions.create(model="team-chat", prompt="Say hello.", max_tokens=20)
    assert completion.object == "text_completion"
    assert completion.model == "team-chat"
    assert completion.choices[0].text == MOCK_REPLY
    upstream = mock.only_request_to("/completions")
    assert upstream.path == "/v1/completions"
    assert upstream.body["model"] == "gpt-4o-mini"
    assert upstream.body["prompt"] == "Say hello."


# --------------------------------------------------------------------------- embeddings


def test_embeddings(client: openai.OpenAI, mock):
    inputs = ["first text", "second text", "third text"]
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=inputs)
    assert_switchyard_headers(raw.headers)
    result = raw.parse()

    assert result.model == "text-embedding-3-small"
    assert len(result.data) == len(inputs)
    assert [d.index for d in result.data] == list(range(len(inputs)))
    for item in result.data:
        assert item.object == "embedding"
        assert len(item.embedding) > 0
        assert all(isinstance(x, float) for x in item.embedding)

    upstream = mock.only_request_to("/embeddings")
    assert upstream.body["model"] == "text-embedding-3-small"
    assert upstream.body["input"] == inputs
    assert upstream.header("authorization") == "Bearer fake"


def test_embeddings_single_string(client: openai.OpenAI, mock):
    result = client.embeddings.create(model="text-embedding-3-small", input="just one")
    assert len(result.data) == 1
    assert len(result.data[0].embedding) > 0


# --------------------------------------------------------------------------- models


def test_models_list_contains_aliases(client: openai.OpenAI, mock):
    models = list(client.models.list())
    ids = {m.id for m in models}
    for alias in ALIASES:
        assert alias in ids, f"{alias} missing from /v1/models: {sorted(ids)}"
    assert all(m.object == "model" for m in models)
    assert not mock.requests(), "listing models should not call the upstream"


def test_models_retrieve(client: openai.OpenAI, mock):
    model = client.models.retrieve("team-chat")
    assert model.id == "team-chat"
    assert model.object == "model"


def test_models_retrieve_unknown(client: openai.OpenAI, mock):
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# --------------------------------------------------------------------------- errors


def test_wrong_key_is_rejected(gateway_url: str, mock):
    bad = make_client(gateway_url, api_key="sk-definitely-wrong")
    with pytest.raises(openai.AuthenticationError) as excinfo:
        bad.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    err = excinfo.value
    assert err.status_code == 401
    assert_openai_error_shape(err)
    assert not mock.requests(), "a rejected request must not reach the upstream"


def test_missing_key_is_rejected(gateway_url: str, mock):
    status, _, body = http_json(
        "POST", f"{gateway_url}/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HELLO}
    )
    assert status == 401, body
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert not mock.requests()


def test_unknown_model(client: openai.OpenAI, mock):
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert excinfo.value.status_code == 404
    assert_openai_error_shape(excinfo.value)
    assert not mock.requests()


def test_upstream_500_surfaces_as_5xx(client: openai.OpenAI, mock):
    # Enough failures that any retries the router makes fail too.
    mock.configure(fail_next=50, error_status=500)
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(model="flaky-chat", messages=HELLO)
    err = excinfo.value
    assert err.status_code >= 500
    assert err.status_code == 502, "DESIGN.md: an upstream error is a 502"
    assert_openai_error_shape(err)
    assert mock.requests_to(CHAT), "the gateway never tried the upstream"


@pytest.mark.parametrize(
    ("upstream_status", "sdk_error"),
    [(400, openai.BadRequestError), (429, openai.RateLimitError)],
)
def test_upstream_client_errors_keep_their_status(client: openai.OpenAI, mock, upstream_status, sdk_error):
    """A 400 (the request itself is bad) or 429 (slow down) from the provider is the
    client's to handle, so it keeps its status instead of becoming a 502."""
    mock.configure(fail_next=50, error_status=upstream_status)
    with pytest.raises(sdk_error) as excinfo:
        client.chat.completions.create(model="flaky-chat", messages=HELLO)
    assert excinfo.value.status_code == upstream_status
    assert_openai_error_shape(excinfo.value)


def test_invalid_request_is_a_400_before_any_upstream_call(client: openai.OpenAI, mock):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert excinfo.value.status_code == 400
    assert_openai_error_shape(excinfo.value)
    assert not mock.requests()


def test_guardrail_block_is_a_bad_request_error(client: openai.OpenAI, mock):
    """A guardrail's block reaches the SDK as LiteLLM's 400: a clean BadRequestError naming
    the guardrail, never the value, and nothing sent upstream."""
    card = [{"role": "user", "content": "charge 4111 1111 1111 1111"}]
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=card, extra_body={"guardrails": ["sdk-pii"]}
        )
    err = excinfo.value
    assert err.status_code == 400
    assert_openai_error_shape(err)
    assert "CREDIT_CARD" in err.message and "sdk-pii" in err.message
    assert "4111" not in str(err.body)
    assert err.body["provider_specific_fields"]["guardrail_name"] == "sdk-pii"
    assert not mock.requests()
    # Masked, then answered normally.
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "I am ann@example.com"}],
        extra_body={"guardrails": ["sdk-pii"]},
    )
    (sent,) = mock.requests_to(CHAT)
    assert sent.body["messages"][-1]["content"] == "I am <EMAIL_ADDRESS_1>"


def test_upstream_500_on_stream_is_an_http_error(client: openai.OpenAI, mock):
    """A stream that fails before its first byte must fail with a status, not a 200."""
    mock.configure(fail_next=50, error_status=500)
    with pytest.raises(openai.APIStatusError) as excinfo:
        list(client.chat.completions.create(model="flaky-chat", messages=HELLO, stream=True))
    assert excinfo.value.status_code >= 500


def test_upstream_timeout_is_a_504(client: openai.OpenAI, mock):
    # `slow-chat` has `timeout: 1`; a hanging upstream must become a 504, promptly.
    mock.configure(hang=True)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(model="slow-chat", messages=HELLO)
    elapsed = time.monotonic() - started
    assert excinfo.value.status_code == 504, "DESIGN.md: an upstream timeout is a 504"
    assert_openai_error_shape(excinfo.value)
    assert elapsed < 20, f"took {elapsed:.1f}s despite a 1 s deployment timeout"


def test_stream_cut_mid_way_is_not_a_clean_end(client: openai.OpenAI, mock):
    """Once bytes reached the client the gateway cannot fail over, but it must not
    pretend the stream finished: the SDK has to raise instead of ending quietly."""
    mock.configure(fail_mid_stream_after=2)
    received = []
    with pytest.raises(Exception) as excinfo:
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert not isinstance(excinfo.value, AssertionError)
    assert "".join(received) != MOCK_REPLY


def test_error_responses_carry_request_id(gateway_url: str, mock):
    bad = make_client(gateway_url, api_key="sk-definitely-wrong")
    with pytest.raises(openai.AuthenticationError) as excinfo:
        bad.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert excinfo.value.response.headers.get("x-request-id")


def test_gateway_recovers_after_upstream_faults(client: openai.OpenAI, mock):
    mock.configure(fail_next=1, error_status=500)
    # Whether or not the router retries this one, the next call must succeed.
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    except openai.APIStatusError as err:
        assert err.status_code >= 500
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.choices[0].message.content == MOCK_REPLY


# --------------------------------------------------------------------------- mock_response


def test_mock_response_deployment_answers_offline(client: openai.OpenAI, mock):
    raw = client.chat.completions.with_raw_response.create(model="offline", messages=HELLO)
    assert raw.status_code == 200
    completion = raw.parse()
    assert completion.model == "offline"
    assert completion.choices[0].message.content == OFFLINE_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert not mock.requests(), "a mock_response deployment must not call any upstream"


def test_mock_response_deployment_streams(client: openai.OpenAI, mock):
    chunks = list(client.chat.completions.create(model="offline", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == OFFLINE_REPLY
    assert not mock.requests()


# --------------------------------------------------------------------------- CLI


def test_check_accepts_the_test_config(config_path):
    result = subprocess.run(
        [str(binary_path()), "check", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MOCK_KEY": UPSTREAM_KEY, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert UPSTREAM_KEY not in result.stdout + result.stderr, "check printed a secret"


def test_check_rejects_a_broken_config(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list:\n  - model_name: x\n    litellm_params: [not, a, mapping]\n")
    result = subprocess.run(
        [str(binary_path()), "check", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip(), "check failed without saying why"
