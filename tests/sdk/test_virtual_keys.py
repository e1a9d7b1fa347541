"""Virtual keys with the official `openai` SDK: a key made through LiteLLM's `/key/generate`
works as the SDK's api_key, a model outside its list is a PermissionDeniedError, and its rate
limit arrives as a RateLimitError carrying OpenAI's reset headers.
"""

from __future__ import annotations

import openai
import pytest

from conftest import MASTER_KEY, OFFLINE_REPLY, http_json, make_client

HELLO = [{"role": "user", "content": "Say hello."}]


def generate_key(gateway_url: str, **fields) -> str:
    status, _, body = http_json(
        "POST", f"{gateway_url}/key/generate", fields, {"Authorization": f"Bearer {MASTER_KEY}"}
    )
    assert status == 200, body
    return body["key"]


def test_rate_limit_is_a_rate_limit_error_with_reset_headers(gateway_url: str):
    key = generate_key(gateway_url, rpm_limit=2, models=["offline"])
    client = make_client(gateway_url, api_key=key)
    for remaining in ("1", "0"):
        raw = client.chat.completions.with_raw_response.create(model="offline", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.parse().choices[0].message.content == OFFLINE_REPLY
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="offline", messages=HELLO)
    err = caught.value
    assert err.status_code == 429
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.response.headers["x-ratelimit-reset-requests"]
    assert int(err.response.headers["retry-after"]) >= 1
    assert "requests per minute" in err.message


def test_a_model_outside_the_key_list_is_permission_denied(gateway_url: str):
    key = generate_key(gateway_url, models=["offline"])
    client = make_client(gateway_url, api_key=key)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.response.json()["error"]["type"] == "key_model_access_denied"


def test_an_unknown_key_is_an_authentication_error(gateway_url: str):
    client = make_client(gateway_url, api_key="sk-this-key-does-not-exist")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="offline", messages=HELLO)
    assert "xist" in caught.value.message and "this-key" not in caught.value.message
