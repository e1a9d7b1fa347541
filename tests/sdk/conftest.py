"""Fixtures for the official-SDK tests.

One mock upstream and one gateway are started per test session (both are the real
`switchyard` binary, on port 0) and torn down at the end. Every test starts with an
empty mock request log and no injected faults, so a test can assert exactly what
the gateway sent upstream on its behalf.

The binary is `$SWITCHYARD_BIN`, or `target/debug/switchyard` under the repo root
(`scripts/test` builds it and sets the variable from `cargo metadata`).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The client authenticates to the gateway with this; it must never be sent upstream.
MASTER_KEY = "sk-test-master"
# Resolved by the gateway from `os.environ/MOCK_KEY`; the mock must see exactly this.
UPSTREAM_KEY = "sk-mock-upstream-secret-4242"
# The mock upstream's default reply (see crates/mock-upstream).
MOCK_REPLY = "Hello from the Switchyard mock upstream."
# The reply of the `offline` deployment, which never calls an upstream.
OFFLINE_REPLY = "Hi there from a mock deployment"

STARTUP_TIMEOUT_S = float(os.environ.get("SWITCHYARD_STARTUP_TIMEOUT", "30"))

# Loopback traffic must never go through a proxy the environment happens to set.
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(_hosts + ["127.0.0.1", "localhost"])

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CONFIG_TEMPLATE = """\
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
  # An alias whose name differs from the upstream model: the client sees the alias,
  # the upstream sees the provider's model name.
  - model_name: team-chat
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
  # Used only by the fault-injection tests, so a cooldown it earns cannot affect
  # the deployments the other tests use.
  - model_name: flaky-chat
    litellm_params:
      model: openai/flaky-model
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
  # A short per-attempt timeout, for the upstream-timeout test.
  - model_name: slow-chat
    litellm_params:
      model: openai/slow-model
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
      timeout: 1
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {mock}/v1
      api_key: fake
  - model_name: offline
    litellm_params:
      model: openai/offline
      mock_response: "{offline}"
  # Translated deployments: the mock speaks Anthropic's Messages API and Gemini's
  # generateContent too, and records what it received in those formats.
  - model_name: claude-sonnet
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: {mock}/v1
      api_key: os.environ/MOCK_KEY
  - model_name: gemini-flash
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {mock}/v1beta
      api_key: os.environ/MOCK_KEY
  # Ollama's native API (/api/chat, NDJSON streams), keyless like a local server.
  - model_name: ollama-llama
    litellm_params:
      model: ollama_chat/llama3.2
      api_base: {mock}
  - model_name: ollama-embed
    litellm_params:
      model: ollama/all-minilm
      api_base: {mock}
    model_info:
      mode: embedding
  # Cohere's Chat v2 and /v2/embed, translated.
  - model_name: cohere-command
    litellm_params:
      model: cohere/command-a-03-2025
      api_base: {mock}
      api_key: os.environ/MOCK_KEY
  - model_name: cohere-embed
    litellm_params:
      model: cohere/embed-v4.0
      api_base: {mock}
      api_key: os.environ/MOCK_KEY
    model_info:
      mode: embedding
  # Bedrock's Converse API, SigV4-signed with these (AWS's documented example) keys.
  - model_name: claude-bedrock
    litellm_params:
      model: bedrock/converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0
      aws_bedrock_runtime_endpoint: {mock}
      aws_access_key_id: AKIDEXAMPLE
      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
      aws_region_name: us-east-1
  # Vertex AI: Gemini and Claude, OAuth from a (test-only) service account whose token_uri
  # is the mock's /token, which checks the JWT's signature with the matching public key.
  - model_name: vertex-gemini
    litellm_params:
      model: vertex_ai/gemini-2.0-flash
      vertex_project: sdk-project
      vertex_location: us-central1
      vertex_credentials: {vertex_credentials}
      api_base: {mock}
  - model_name: vertex-claude
    litellm_params:
      model: vertex_ai/claude-sonnet-4-5@20250929
      vertex_project: sdk-project
      vertex_location: us-east5
      vertex_credentials: {vertex_credentials}
      api_base: {mock}
general_settings:
  master_key: {master}
# Off unless a request names it (test_guardrail_block_is_a_bad_request_error).
guardrails:
  - guardrail_name: sdk-pii
    litellm_params:
      guardrail: pii
      mode: pre_call
      pii_entities_config: {{CREDIT_CARD: BLOCK, EMAIL_ADDRESS: MASK}}
"""

ALIASES = [
    "gpt-4o-mini",
    "team-chat",
    "flaky-chat",
    "slow-chat",
    "text-embedding-3-small",
    "offline",
    "claude-sonnet",
    "gemini-flash",
    "ollama-llama",
    "ollama-embed",
    "cohere-command",
    "cohere-embed",
    "claude-bedrock",
]


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A started `switchyard` process and the URL it announced."""

    name: str
    proc: subprocess.Popen
    url: str
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    def stderr_tail(self, lines: int = 80) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError as err:
            return f"<could not read {self.stderr_path}: {err}>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_SERVICES: list[Service] = []


def binary_path() -> Path:
    env = os.environ.get("SWITCHYARD_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "switchyard"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"switchyard binary not found at {path}; run `cargo build` "
            "(or set SWITCHYARD_BIN)",
            pytrace=False,
        )
    return path


def start_service(
    name: str,
    args: list[str],
    banner: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
) -> Service:
    """Start `switchyard ARGS` and wait for its `BANNER listening on URL` stdout line.

    stderr goes to a file (a pipe nobody reads could fill and block the process);
    stdout is drained by a thread for the process's whole life for the same reason.
    """
    stderr_path = workdir / f"{name}.stderr.log"
    stderr_file = open(stderr_path, "wb")
    cmd = [str(binary_path()), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
        bufsize=1,
    )
    stderr_file.close()
    service = Service(name=name, proc=proc, url="", stderr_path=stderr_path)
    _SERVICES.append(service)

    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                service.stdout_lines.append(line.rstrip("\n"))
                lines.put(line)
        except (OSError, ValueError):
            pass
        lines.put(None)

    threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()

    pattern = re.compile(rf"^{re.escape(banner)} listening on (http://\S+?)/?$")
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            service.stop()
            pytest.fail(
                f"{name} did not print `{banner} listening on http://...` within {timeout:.0f}s\n"
                f"command: {' '.join(cmd)}\nstdout:\n{chr(10).join(service.stdout_lines)}\n"
                f"stderr:\n{service.stderr_tail()}",
                pytrace=False,
            )
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if line is None:
            code = proc.wait(timeout=10)
            pytest.fail(
                f"{name} exited with status {code} before it was ready\n"
                f"command: {' '.join(cmd)}\nstdout:\n{chr(10).join(service.stdout_lines)}\n"
                f"stderr:\n{service.stderr_tail()}",
                pytrace=False,
            )
        match = pattern.match(line.strip())
        if match:
            service.url = match.group(1)
            return service


# --------------------------------------------------------------------------- mock upstream


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None):
    """A tiny stdlib HTTP client: returns (status, headers, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with _NO_PROXY_OPENER.open(req, timeout=30) as resp:
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, raw = err.code, err.headers, err.read()
    text = raw.decode(errors="replace")
    try:
        return status, resp_headers, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, resp_headers, text


@dataclass
class UpstreamRequest:
    """One request the mock upstream received, normalised for assertions."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON when the body was JSON

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _normalise_headers(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list):
        items = (tuple(pair) if not isinstance(pair, dict) else (pair.get("name"), pair.get("value")) for pair in raw)
    else:
        return {}
    out: dict[str, str] = {}
    for key, value in items:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        out[str(key).lower()] = str(value)
    return out


class MockUpstream:
    """Handle on the mock upstream: its URL, request log and fault controls."""

    def __init__(self, service: Service):
        self.service = service
        self.url = service.url

    def requests(self) -> list[UpstreamRequest]:
        status, _, data = http_json("GET", f"{self.url}/__mock/requests")
        assert status == 200, f"GET /__mock/requests -> {status}: {data!r}"
        if isinstance(data, dict):  # tolerate {"requests": [...]}
            data = data.get("requests", data.get("data", []))
        assert isinstance(data, list), f"unexpected /__mock/requests payload: {data!r}"
        out = []
        for item in data:
            body = item.get("body")
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except json.JSONDecodeError:
                    pass
            out.append(
                UpstreamRequest(
                    path=item.get("path", ""),
                    headers=_normalise_headers(item.get("headers")),
                    body=body,
                )
            )
        return out

    def requests_to(self, suffix: str) -> list[UpstreamRequest]:
        """Requests whose path ends with SUFFIX (e.g. "/chat/completions")."""
        return [r for r in self.requests() if r.path.split("?")[0].endswith(suffix)]

    def only_request_to(self, suffix: str) -> UpstreamRequest:
        matching = self.requests_to(suffix)
        assert len(matching) == 1, (
            f"expected exactly one upstream request to *{suffix}, got {len(matching)}: "
            f"{[r.path for r in self.requests()]}"
        )
        return matching[0]

    def configure(self, **settings: Any) -> None:
        status, _, data = http_json("POST", f"{self.url}/__mock/config", settings)
        assert 200 <= status < 300, f"POST /__mock/config -> {status}: {data!r}"

    def reset(self) -> None:
        status, _, data = http_json("POST", f"{self.url}/__mock/reset", {})
        assert 200 <= status < 300, f"POST /__mock/reset -> {status}: {data!r}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("switchyard-sdk")


@pytest.fixture(scope="session")
def mock_upstream(workdir: Path):
    public_key = REPO_ROOT / "tests/fixtures/vertex/TEST-ONLY-service-account-key.pub.pem"
    service = start_service(
        "mock-upstream",
        ["mock-upstream", "--port", "0", "--vertex-public-key", str(public_key)],
        "mock-upstream",
        workdir,
    )
    try:
        yield MockUpstream(service)
    finally:
        service.stop()


@pytest.fixture(scope="session")
def config_path(workdir: Path, mock_upstream: MockUpstream) -> Path:
    private_key = (REPO_ROOT / "tests/fixtures/vertex/TEST-ONLY-service-account-key.pem").read_text()
    vertex_credentials = workdir / "vertex-service-account.json"
    vertex_credentials.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "sdk-project",
                "private_key_id": "test-key-id",
                "private_key": private_key,
                "client_email": "sdk@sdk-project.iam.gserviceaccount.com",
                "token_uri": f"{mock_upstream.url}/token",
            }
        )
    )
    path = workdir / "config.yaml"
    path.write_text(
        CONFIG_TEMPLATE.format(
            mock=mock_upstream.url,
            offline=OFFLINE_REPLY,
            master=MASTER_KEY,
            vertex_credentials=vertex_credentials,
        )
    )
    return path


@pytest.fixture(scope="session")
def gateway(workdir: Path, config_path: Path) -> Service:
    service = start_service(
        "gateway",
        ["serve", "--config", str(config_path), "--host", "127.0.0.1", "--port", "0"],
        "switchyard",
        workdir,
        env={"MOCK_KEY": UPSTREAM_KEY},
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def gateway_url(gateway: Service) -> str:
    return gateway.url


def make_client(gateway_url: str, api_key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def client(gateway_url: str):
    c = make_client(gateway_url)
    yield c
    c.close()


def make_anthropic_client(gateway_url: str, api_key: str = MASTER_KEY) -> anthropic.Anthropic:
    """The official Anthropic SDK pointed at the gateway's /v1/messages."""
    return anthropic.Anthropic(base_url=gateway_url, api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def anthropic_client(gateway_url: str):
    c = make_anthropic_client(gateway_url)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _clean_mock(request: pytest.FixtureRequest):
    """Give every test that uses the mock an empty request log and no faults."""
    if "mock_upstream" not in request.fixturenames:
        yield
        return
    mock: MockUpstream = request.getfixturevalue("mock_upstream")
    mock.reset()
    yield
    mock.reset()


@pytest.fixture
def mock(mock_upstream: MockUpstream, gateway: Service) -> MockUpstream:
    """The mock upstream, with the gateway in front of it already running."""
    return mock_upstream


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On failure, show what the processes logged: the first thing anyone asks for."""
    if exitstatus == 0:
        return
    for service in _SERVICES:
        terminalreporter.write_sep("-", f"{service.name} stderr (last 80 lines)")
        terminalreporter.write_line(service.stderr_tail())
