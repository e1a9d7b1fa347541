use super::*;

fn env_none(_: &str) -> Option<String> {
    None
}

fn parse_ok(yaml: &str) -> Loaded {
    parse(yaml, &env_none).unwrap_or_else(|err| panic!("{err}"))
}

fn parse_err(yaml: &str) -> String {
    parse(yaml, &|name| (name == "SET").then(|| "value".to_owned()))
        .err()
        .unwrap_or_else(|| panic!("accepted:\n{yaml}"))
        .to_string()
}

const FULL: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_KEY
      api_base: https://api.openai.com/v1/
      timeout: 30
      stream_timeout: 5.5
      max_retries: 2
      rpm: 100
      tpm: 10000
      weight: 3
      order: 1
      extra_headers: {X-Team: os.environ/TEAM}
    model_info:
      id: primary
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
      max_tokens: 16384
      mode: chat
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-deployment
      api_base: https://r.openai.azure.com
      api_version: "2024-06-01"
      api_key: az
  - model_name: local
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3-8B
      api_base: http://127.0.0.1:8000/v1
  - model_name: offline
    litellm_params:
      model: gpt-4o-mini
      mock_response: "hi"
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 3
  redis_host: localhost
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
general_settings:
  master_key: sk-1234
  max_request_size_mb: 2
environment_variables:
  TEAM: search
"#;

#[test]
fn full_litellm_config() {
    let loaded = parse(FULL, &|name| {
        (name == "OPENAI_KEY").then(|| "sk-real".to_owned())
    })
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.deployments.len(), 4);
    let d = &c.deployments[0];
    assert_eq!(
        (
            d.id.as_str(),
            d.provider.as_str(),
            d.upstream_model.as_str()
        ),
        ("primary", "openai", "gpt-4o")
    );
    assert_eq!(
        d.api_base.as_deref(),
        Some("https://api.openai.com/v1"),
        "trailing slash trimmed"
    );
    assert_eq!(d.api_key.as_ref().unwrap().expose(), "sk-real");
    assert_eq!(d.timeout, Some(Duration::from_secs(30)));
    assert_eq!(d.stream_timeout, Some(Duration::from_millis(5500)));
    assert_eq!(
        (d.max_retries, d.rpm, d.tpm, d.weight, d.order),
        (Some(2), Some(100), Some(10000), 3.0, Some(1))
    );
    assert_eq!(d.extra_headers[0].0, "x-team");
    assert_eq!(
        d.extra_headers[0].1.expose(),
        "search",
        "environment_variables resolve os.environ/"
    );
    assert_eq!(d.info.max_tokens, Some(16384));
    assert_eq!(c.deployments[1].api_version.as_deref(), Some("2024-06-01"));
    assert_eq!(c.deployments[2].upstream_model, "meta-llama/Llama-3-8B");
    assert_eq!(
        c.deployments[3].provider, "openai",
        "bare model names are OpenAI"
    );
    assert_eq!(c.deployments[3].mock_response.as_deref(), Some("hi"));
    assert_eq!(c.master_key.as_ref().unwrap().expose(), "sk-1234");
    assert_eq!(c.max_request_bytes, 2 * 1024 * 1024);
    assert_eq!(c.num_retries, 3);
    assert!(c.drop_params);
    // Unsupported keys are named, once each.
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains("router_settings.redis_host"),
        "{warnings}"
    );
    assert!(
        warnings.contains("litellm_settings.success_callback"),
        "{warnings}"
    );
    // Generated ids are stable.
    let again = parse(FULL, &|_| Some("x".into())).unwrap();
    assert_eq!(again.config.deployments[1].id, c.deployments[1].id);
    // describe() never prints a secret.
    let described = c.describe();
    assert!(
        !described.contains("sk-real") && !described.contains("sk-1234"),
        "{described}"
    );
    assert!(described.contains("gpt-4o") && described.contains("primary"));
}

#[test]
fn repeated_unknown_keys_warn_once() {
    let yaml = "model_list:\n- model_name: a\n  litellm_params: {model: openai/a, vertex_project: p}\n- model_name: b\n  litellm_params: {model: openai/b, vertex_project: p}\n";
    let loaded = parse_ok(yaml);
    let count = loaded
        .warnings
        .iter()
        .filter(|w| w.contains("vertex_project"))
        .count();
    assert_eq!(count, 1, "{:?}", loaded.warnings);
}

#[test]
fn missing_env_names_variable_and_model() {
    let err = parse_err("model_list:\n- model_name: claude\n  litellm_params: {model: openai/x, api_key: os.environ/NOPE_KEY}\n");
    assert!(
        err.contains("NOPE_KEY") && err.contains("claude") && err.contains("model_list[0]"),
        "{err}"
    );
}

#[test]
fn type_errors_name_key_and_line() {
    let err = parse_err("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      timeout: soon\n");
    assert!(
        err.contains("model_list[0].litellm_params.timeout"),
        "{err}"
    );
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn hostile_configs_are_errors_not_panics() {
    for yaml in [
        "model_list: 5",
        "model_list:\n- {}",
        "model_list:\n- model_name: a\n",
        "model_list:\n- model_name: a\n  litellm_params: {model: ''}\n",
        "model_list:\n- model_name: a\n  litellm_params: {model: 'openai/'}\n",
        "model_list:\n- model_name: ''\n  litellm_params: {model: openai/a}\n",
        "model_list:\n- model_name: a\n  litellm_params: {model: openai/a, api_base: 'ftp://x'}\n",
        "model_list:\n- model_name: a\n  litellm_params: {model: openai/a, timeout: -1}\n",
        "model_list:\n- model_name: a\n  litellm_params: {model: openai/a, weight: -2}\n",
        "model_list:\n- model_name: a\n  litellm_params: {model: openai/a, extra_headers: {'bad header': x}}\n",
        "general_settings: {max_request_size_mb: 0}",
        "model_list:\n- model_name: a\n  litellm_params: {model: openai/a}\n  model_info: {id: x}\n- model_name: b\n  litellm_params: {model: openai/b}\n  model_info: {id: x}\n",
        ": : :",
        "[unclosed",
        "model_list: &a [*a]",
        "\t- tab",
    ] {
        let _ = parse_err(yaml);
    }
}

#[test]
fn empty_config_is_valid_and_warns() {
    let loaded = parse_ok("");
    assert!(loaded.config.deployments.is_empty());
    assert!(loaded.config.master_key.is_none());
    assert!(loaded.warnings.iter().any(|w| w.contains("master_key")));
}
