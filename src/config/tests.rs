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
  provider_budget_config: {openai: {budget_limit: 100}}
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
        (Some(2), Some(100), Some(10000), Some(3.0), Some(1))
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
    // LiteLLM's Redis settings are read (shared limits); unsupported keys are named, once each.
    assert_eq!(
        c.storage.redis_url.as_ref().map(|u| u.expose().to_owned()),
        Some("redis://localhost:6379".to_owned())
    );
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains("router_settings.provider_budget_config"),
        "{warnings}"
    );
    assert!(
        warnings.contains("litellm_settings.success_callback"),
        "{warnings}"
    );
    // Generated ids are stable.
    let again = parse(FULL, &|name| (name == "OPENAI_KEY").then(|| "x".into())).unwrap();
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

const ROUTER: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, region_name: eu, order: 1}
    model_info: {id: a, max_input_tokens: 128000, canary_share: 0.05}
  - model_name: mini
    litellm_params: {model: openai/gpt-4o-mini, rpm: 10}
  - model_name: long
    litellm_params: {model: openai/gpt-4.1}
router_settings:
  routing_strategy: latency-based-routing
  routing_strategy_args: {lowest_latency_buffer: 0.5}
  stream_timeout: 4
  retry_after: 0.25
  retry_policy: {RateLimitErrorRetries: 4, TimeoutErrorRetries: 1}
  model_group_retry_policy: {mini: {InternalServerErrorRetries: 2}}
  allowed_fails: 1
  allowed_fails_policy: {RateLimitErrorAllowedFails: 10}
  cooldown_time: 12
  fallbacks: [{"gpt-4o": ["mini"]}, {"*": ["mini"]}]
  context_window_fallbacks: [{"gpt-4o": ["long"]}]
  max_fallbacks: 2
  enable_pre_call_checks: true
litellm_settings:
  default_fallbacks: ["mini"]
  content_policy_fallbacks: [{"gpt-4o": ["long"]}]
general_settings:
  background_health_checks: true
  health_check_interval: 30
switchyard_routing:
  deadline: 45
  route_rules:
    - name: free
      model: auto
      when: {tier: [free, trial], max_prompt_tokens: 500, tags: [t], metadata: {team: x}}
      route_to: mini
"#;

#[test]
fn router_settings_are_typed_with_litellm_names() {
    let loaded = parse_ok(ROUTER);
    let r = &loaded.config.router;
    assert_eq!(r.strategy, RoutingStrategy::LatencyBased);
    assert_eq!(r.lowest_latency_buffer, 0.5);
    assert_eq!(r.stream_timeout, Some(Duration::from_secs(4)));
    assert_eq!(r.retry_after, Duration::from_millis(250));
    assert_eq!(r.retry_policy.rate_limit, Some(4));
    assert_eq!(r.retry_policy.timeout, Some(1));
    assert_eq!(r.model_group_retry_policy["mini"].internal_server, Some(2));
    assert_eq!(r.allowed_fails, 1);
    assert_eq!(r.allowed_fails_policy.rate_limit, Some(10));
    assert_eq!(r.cooldown_time, Duration::from_secs(12));
    assert_eq!(r.fallbacks.generic.len(), 2);
    assert_eq!(
        r.fallbacks.generic[1],
        ("*".to_owned(), vec!["mini".to_owned()])
    );
    assert_eq!(r.fallbacks.context_window[0].1, ["long"]);
    assert_eq!(
        r.fallbacks.content_policy[0].1,
        ["long"],
        "from litellm_settings"
    );
    assert_eq!(r.fallbacks.default, ["mini"]);
    assert_eq!(r.fallbacks.max_fallbacks, 2);
    assert!(r.enable_pre_call_checks && r.background_health_checks);
    assert_eq!(r.health_check_interval, Duration::from_secs(30));
    assert_eq!(r.deadline, Duration::from_secs(45));
    let rule = &r.route_rules[0];
    assert_eq!(
        (rule.name.as_str(), rule.route_to.as_str()),
        ("free", "mini")
    );
    assert_eq!(rule.tier, ["free", "trial"]);
    assert_eq!(rule.metadata, [("team".to_owned(), vec!["x".to_owned()])]);
    let d = &loaded.config.deployments[0];
    assert_eq!(d.region.as_deref(), Some("eu"));
    assert_eq!(d.canary_share, Some(0.05));
    assert_eq!(d.info.max_input_tokens, Some(128000));
    assert!(
        !loaded.warnings.iter().any(|w| w.contains("router_settings")
            || w.contains("switchyard_routing")
            || w.contains("model_info")),
        "every router key is known: {:?}",
        loaded.warnings
    );
}

#[test]
fn router_settings_errors_name_the_key() {
    for (yaml, key) in [
        ("router_settings: {routing_strategy: fastest}", "router_settings.routing_strategy"),
        (
            "model_list:\n- model_name: a\n  litellm_params: {model: openai/a}\nrouter_settings: {fallbacks: [{a: [nope]}]}",
            "router_settings.fallbacks[0].a[0]",
        ),
        (
            "model_list:\n- model_name: a\n  litellm_params: {model: openai/a}\nrouter_settings: {fallbacks: [{a: [a], b: [a]}]}",
            "router_settings.fallbacks[0]",
        ),
        (
            "model_list:\n- model_name: a\n  litellm_params: {model: openai/a}\nlitellm_settings: {default_fallbacks: [zz]}",
            "litellm_settings.default_fallbacks[0]",
        ),
        ("switchyard_routing: {deadlne: 3}", "deadlne"),
        (
            "model_list:\n- model_name: a\n  litellm_params: {model: openai/a}\nswitchyard_routing: {route_rules: [{name: r, model: auto, route_to: zz}]}",
            "switchyard_routing.route_rules[0].route_to",
        ),
        (
            "model_list:\n- model_name: a\n  litellm_params: {model: openai/a}\n  model_info: {canary_share: 1.5}",
            "model_info.canary_share",
        ),
        ("router_settings: {cooldown_time: -1}", "router_settings.cooldown_time"),
    ] {
        let err = parse_err(yaml);
        assert!(err.contains(key), "{yaml}\n=> {err}");
    }
}

#[test]
fn rpm_weights_without_rpm_everywhere_warn() {
    let loaded = parse_ok(
        "model_list:\n- model_name: g\n  litellm_params: {model: openai/a, rpm: 10}\n- model_name: g\n  litellm_params: {model: openai/b}\n  model_info: {id: no-rpm}\n",
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("no-rpm") && w.contains("rpm")),
        "{:?}",
        loaded.warnings
    );
}

/// LiteLLM configs share settings with YAML anchors and merge keys (PyYAML expands them).
const ANCHORS: &str = r#"
shared:
  local: &local
    api_base: http://127.0.0.1:8000/v1
    api_key: os.environ/LOCAL_KEY
    timeout: 30
  fast: &fast
    timeout: 5
    rpm: 600
model_list:
  - model_name: &group llama
    litellm_params:
      <<: *local
      model: hosted_vllm/llama-3-8b
  - model_name: *group
    litellm_params:
      <<: [*fast, *local]
      model: hosted_vllm/llama-3-8b-fast
      api_key: sk-override
    model_info: {id: fast}
router_settings:
  fallbacks: &llama_fallbacks [{llama: [llama]}]
litellm_settings:
  content_policy_fallbacks: *llama_fallbacks
"#;

#[test]
fn anchors_and_merge_keys_load() {
    let loaded = parse(ANCHORS, &|name| {
        (name == "LOCAL_KEY").then(|| "sk-local".to_owned())
    })
    .unwrap_or_else(|err| panic!("{err}"));
    let [first, second] = &loaded.config.deployments[..] else {
        panic!("{:?}", loaded.config.deployments)
    };
    assert_eq!(
        (first.model_name.as_str(), second.model_name.as_str()),
        ("llama", "llama"),
        "a scalar alias"
    );
    assert_eq!(first.api_base.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(first.api_key.as_ref().unwrap().expose(), "sk-local");
    assert_eq!(first.timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        first.upstream_model, "llama-3-8b",
        "keys beside `<<` are kept"
    );
    // `<<: [*fast, *local]`: the first map listed wins, keys written in place win over both.
    assert_eq!(second.timeout, Some(Duration::from_secs(5)));
    assert_eq!(second.rpm, Some(600));
    assert_eq!(second.api_base.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(second.api_key.as_ref().unwrap().expose(), "sk-override");
    let router = &loaded.config.router;
    assert_eq!(router.fallbacks.generic, router.fallbacks.content_policy);
    // No `<<` key reaches the unsupported-key warnings; the anchors' holder is named once.
    let warnings = loaded.warnings.join("\n");
    assert!(!warnings.contains("<<"), "{warnings}");
    assert!(warnings.contains("`shared`"), "{warnings}");
}

#[test]
fn yaml_errors_show_the_line_and_duplicate_keys_are_refused() {
    let err = parse_err("router_settings:\n  num_retries: 1\n  num_retries: 2\n");
    assert!(
        err.contains("router_settings") && err.contains("line 3") && err.contains("num_retries"),
        "{err}"
    );
    // The offending line is quoted under the message, as rustc does.
    let err = parse_err(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, rpm: lots}\n",
    );
    assert!(
        err.contains("model_list[0].litellm_params.rpm") && err.contains("rpm: lots}"),
        "{err}"
    );
}

fn ids(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    parse(yaml, env)
        .unwrap_or_else(|err| panic!("{err}"))
        .config
        .deployments
        .into_iter()
        .map(|d| d.id)
        .collect()
}

const ONE: &str = "model_list:\n- model_name: gpt-4o\n  litellm_params: {model: openai/gpt-4o, api_key: os.environ/ID_KEY, timeout: 30, vertex_project: p}\n";

#[test]
fn generated_id_ignores_the_secret_value_and_the_position() {
    let id = ids(ONE, &|name| name.ends_with("_KEY").then(|| "sk-old".into()))[0].clone();
    assert_eq!(
        ids(ONE, &|name| name
            .ends_with("_KEY")
            .then(|| "sk-rotated".into()))[0],
        id,
        "rotating the secret keeps the id"
    );
    let inserted = "model_list:\n- model_name: other\n  litellm_params: {model: openai/other}\n- model_name: gpt-4o\n  litellm_params: {model: openai/gpt-4o, api_key: os.environ/ID_KEY, timeout: 30, vertex_project: p}\n";
    assert_eq!(
        ids(inserted, &|name| name.ends_with("_KEY").then(|| "k".into()))[1],
        id,
        "a deployment inserted before it"
    );
    // Canonical: key order, `30.0` for `30`, an explicit `~` for an absent key change nothing.
    let reordered = "model_list:\n- litellm_params: {vertex_project: p, timeout: 30.0, api_base: ~, api_key: os.environ/ID_KEY, model: openai/gpt-4o}\n  model_name: gpt-4o\n  model_info: {mode: chat}\n";
    assert_eq!(
        ids(reordered, &|name| name
            .ends_with("_KEY")
            .then(|| "k".into()))[0],
        id
    );
    // Pinned: an id must not change between Switchyard versions, or cooldowns and dashboards
    // keyed by it would reset on upgrade.
    assert_eq!(id, "c8734f37d28bd17f");
}

#[test]
fn generated_id_changes_with_the_params_and_the_group() {
    let env = |name: &str| name.ends_with("_KEY").then(|| "k".to_owned());
    let id = ids(ONE, &env)[0].clone();
    for changed in [
        ONE.replace("timeout: 30", "timeout: 31"),
        ONE.replace("os.environ/ID_KEY", "os.environ/OTHER_KEY"),
        ONE.replace("vertex_project: p", "vertex_project: q"),
        ONE.replace("openai/gpt-4o", "openai/gpt-4o-mini"),
        ONE.replace("model_name: gpt-4o", "model_name: gpt-4o-eu"),
        ONE.replace("timeout: 30", "timeout: 30, api_base: 'http://127.0.0.1:1'"),
    ] {
        assert_ne!(ids(&changed, &env)[0], id, "{changed}");
    }
}

#[test]
fn identical_entries_get_distinct_stable_ids() {
    let entry = "- model_name: g\n  litellm_params: {model: openai/a}\n";
    let other = "- model_name: g\n  litellm_params: {model: openai/b}\n";
    let yaml = format!("model_list:\n{entry}{other}{entry}{entry}");
    let got = ids(&yaml, &env_none);
    let base = &got[0];
    assert_eq!(
        got[2..],
        [format!("{base}-2"), format!("{base}-3")],
        "in file order"
    );
    assert!(!got[1].starts_with(base.as_str()));
    assert_eq!(ids(&yaml, &env_none), got, "stable across loads");
    // An explicit id is used as is and takes no number from the generated ones.
    let yaml = format!("model_list:\n{entry}- model_name: g\n  litellm_params: {{model: openai/a}}\n  model_info: {{id: mine}}\n{entry}");
    assert_eq!(
        ids(&yaml, &env_none),
        [base.clone(), "mine".to_owned(), format!("{base}-2")]
    );
}

#[test]
fn deployment_num_retries_is_the_retry_budget_and_wins_over_max_retries() {
    let loaded = parse_ok(
        "model_list:\n- model_name: a\n  litellm_params: {model: openai/a, num_retries: 0}\n- model_name: b\n  litellm_params: {model: openai/b, max_retries: 4}\n- model_name: c\n  litellm_params: {model: openai/c, num_retries: 1, max_retries: 4}\n- model_name: d\n  litellm_params: {model: openai/d}\nrouter_settings: {num_retries: 2}\n",
    );
    let retries: Vec<_> = loaded
        .config
        .deployments
        .iter()
        .map(|d| d.max_retries)
        .collect();
    assert_eq!(retries, [Some(0), Some(4), Some(1), None]);
    assert_eq!(loaded.config.num_retries, 2);
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains("model_list[2]") && warnings.contains("num_retries is used"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("litellm_params.num_retries"),
        "a known key: {warnings}"
    );
}

fn tls_of(yaml: &str, env: &[(&str, &str)]) -> Result<(TlsSettings, Vec<String>), String> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(yaml, &|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .map(|loaded| (loaded.config.tls, loaded.warnings))
    .map_err(|err| err.to_string())
}

#[test]
fn tls_settings_follow_litellm() {
    let dir = std::env::temp_dir().join(format!("switchyard-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let ca = ca.to_str().unwrap();

    let (tls, _) = tls_of("", &[]).unwrap();
    assert_eq!(tls, TlsSettings::default());
    assert!(tls.verify && tls.ca_bundle.is_none());

    // false, as a bool or a string, warns at start-up; SSL_CERT_FILE is then not read.
    for yaml in [
        "litellm_settings: {ssl_verify: false}",
        "litellm_settings: {ssl_verify: 'False'}",
    ] {
        let (tls, warnings) = tls_of(yaml, &[("SSL_CERT_FILE", "/nope.pem")]).unwrap();
        assert!(!tls.verify, "{yaml}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("ssl_verify is false") && w.contains("not verified")),
            "{warnings:?}"
        );
    }
    // SSL_VERIFY wins over the file, from the process or from environment_variables.
    let (tls, _) = tls_of(
        "litellm_settings: {ssl_verify: true}",
        &[("SSL_VERIFY", "false")],
    )
    .unwrap();
    assert!(!tls.verify);
    let (tls, warnings) = tls_of("environment_variables: {SSL_VERIFY: 'false'}", &[]).unwrap();
    assert!(!tls.verify);
    assert!(
        warnings.iter().any(|w| w.contains("SSL_VERIFY")),
        "{warnings:?}"
    );

    // A path is a CA bundle, named by the key it came from.
    let (tls, _) = tls_of(&format!("litellm_settings: {{ssl_verify: '{ca}'}}"), &[]).unwrap();
    let bundle = tls.ca_bundle.unwrap();
    assert_eq!(
        (bundle.path.to_str(), bundle.key.as_str()),
        (Some(ca), "litellm_settings.ssl_verify")
    );
    let (tls, _) = tls_of("", &[("SSL_CERT_FILE", ca)]).unwrap();
    assert_eq!(tls.ca_bundle.unwrap().key, "SSL_CERT_FILE (environment)");
    let (tls, _) = tls_of("", &[("SSL_VERIFY", ca), ("SSL_CERT_FILE", "/nope.pem")]).unwrap();
    assert_eq!(
        tls.ca_bundle.unwrap().key,
        "SSL_VERIFY (environment)",
        "ssl_verify's path wins over SSL_CERT_FILE"
    );

    // A bad path is an error naming the key and the path.
    let err = tls_of("litellm_settings: {ssl_verify: /nope/ca.pem}", &[]).unwrap_err();
    assert!(
        err.contains("litellm_settings.ssl_verify") && err.contains("/nope/ca.pem"),
        "{err}"
    );
    let err = tls_of("", &[("SSL_CERT_FILE", "/nope/bundle.pem")]).unwrap_err();
    assert!(
        err.contains("SSL_CERT_FILE") && err.contains("/nope/bundle.pem"),
        "{err}"
    );
    let err = tls_of(
        &format!("litellm_settings: {{ssl_verify: '{}'}}", not_pem.display()),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("no PEM certificate"), "{err}");
}

fn price_of(loaded: &Loaded, name: &str) -> Option<Arc<Price>> {
    loaded
        .config
        .deployments
        .iter()
        .find(|d| d.model_name == name)
        .unwrap()
        .price
        .clone()
}

#[test]
fn deployments_are_priced_from_the_table_base_model_and_their_own_prices() {
    let loaded = parse_ok(
        r#"
model_list:
  - model_name: mini
    litellm_params: {model: openai/gpt-4o-mini}
  - model_name: azure-mini
    litellm_params: {model: azure/my-deployment, api_base: "https://x.openai.azure.com"}
    model_info: {base_model: azure/gpt-4o-mini}
  - model_name: params-win
    litellm_params: {model: openai/gpt-4o-mini, input_cost_per_token: 0.000001}
    model_info: {input_cost_per_token: 0.000009, output_cost_per_token: 0.000002}
  - model_name: local
    litellm_params: {model: hosted_vllm/llama, api_base: "http://localhost:8000"}
"#,
    );
    let mini = price_of(&loaded, "mini").unwrap();
    assert_eq!(
        (mini.input_per_token, mini.output_per_token),
        (150_000, 600_000)
    );
    let azure = price_of(&loaded, "azure-mini").unwrap();
    assert!(azure.input_per_token > 0);
    let entry = |name: &str| {
        loaded
            .config
            .deployments
            .iter()
            .find(|d| d.model_name == name)
            .unwrap()
            .price_entry
            .clone()
    };
    assert_eq!(entry("azure-mini").as_deref(), Some("azure/gpt-4o-mini"));
    let own = price_of(&loaded, "params-win").unwrap();
    assert_eq!(own.input_per_token, 1_000_000, "litellm_params wins");
    assert_eq!(own.output_per_token, 2_000_000, "then model_info");
    assert_eq!(own.cache_read_per_token, Some(75_000), "then the table");
    assert!(price_of(&loaded, "local").is_none());
    // The stable id is the same whether or not a price is written in litellm_params' typed keys.
    assert!(loaded.warnings.iter().all(|w| !w.contains("cost")));
}

#[test]
fn a_bad_price_in_the_config_names_the_key() {
    let err = parse_err(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, output_cost_per_token: -1}\n",
    );
    assert!(
        err.contains("litellm_params.output_cost_per_token") && err.contains("negative"),
        "{err}"
    );
    let err = parse_err(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m}\n    model_info: {input_cost_per_token: .inf}\n",
    );
    assert!(err.contains("model_info.input_cost_per_token"), "{err}");
}

#[test]
fn a_price_file_goes_over_the_shipped_table_and_bad_ones_are_named() {
    let dir = std::env::temp_dir().join(format!("switchyard-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        r#"{"sample_spec": {"max_input_tokens": "docs"}, "gpt-4o-mini": {"input_cost_per_token": 1e-5, "litellm_provider": "openai"}}"#,
    )
    .unwrap();
    let yaml = |file: &std::path::Path| {
        format!(
            "switchyard_prices: {{file: {}}}\nmodel_list:\n  - model_name: mini\n    litellm_params: {{model: openai/gpt-4o-mini}}\n",
            file.display()
        )
    };
    let loaded = parse_ok(&yaml(&good));
    let mini = price_of(&loaded, "mini").unwrap();
    assert_eq!(
        (mini.input_per_token, mini.output_per_token),
        (10_000_000, 0)
    );
    assert_eq!(loaded.config.prices_file.as_deref(), Some(good.as_path()));
    // The environment variable names a file when the config does not.
    let path = good.display().to_string();
    let loaded = parse(
        "model_list:\n  - model_name: mini\n    litellm_params: {model: openai/gpt-4o-mini}\n",
        &|name| (name == PRICES_FILE_ENV).then(|| path.clone()),
    )
    .unwrap();
    assert_eq!(
        price_of(&loaded, "mini").unwrap().input_per_token,
        10_000_000
    );

    let bad = dir.join("bad.json");
    for (text, expected) in [
        (
            r#"{"evil": {"input_cost_per_token": -1}}"#,
            "entry `evil`: `input_cost_per_token` must not be negative",
        ),
        (r#"{"evil": "free"}"#, "entry `evil`: must be an object"),
        (
            r#"{"evil": {"output_cost_per_token": 1e400}}"#,
            "not a JSON object",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let err = parse(&yaml(&bad), &env_none).unwrap_err().to_string();
        assert!(
            err.contains("switchyard_prices.file") && err.contains("bad.json"),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
    }
    let err = parse(&yaml(&dir.join("missing.json")), &env_none)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read the price file"), "{err}");
    let err = parse_err("switchyard_prices: {path: x.json}\n");
    assert!(err.contains("path"), "{err}");
}

#[test]
fn spend_log_settings() {
    let loaded = parse_ok(
        "model_list: []\ngeneral_settings:\n  maximum_spend_logs_retention_period: 30d\nswitchyard_spend:\n  queue_size: 10\n  batch_size: 2\n  flush_interval_ms: 20\n  spill_file: ''\n  shutdown_flush_seconds: 0.5\n",
    );
    let spend = &loaded.config.spend;
    assert_eq!(spend.retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!((spend.queue_size, spend.batch_size), (10, 2));
    assert_eq!(spend.flush_interval, Duration::from_millis(20));
    assert_eq!(spend.spill_file, None);
    assert_eq!(spend.shutdown_flush, Duration::from_millis(500));
    assert!(loaded.warnings.iter().all(|w| !w.contains("spend")));

    let defaults = parse_ok("model_list: []\n").config.spend;
    assert_eq!(defaults, crate::spend::SpendSettings::default());

    let err = parse_err("general_settings:\n  maximum_spend_logs_retention_period: forever\n");
    assert!(err.contains("maximum_spend_logs_retention_period"), "{err}");
    let err = parse_err("switchyard_spend:\n  queue_size: 0\n");
    assert!(err.contains("switchyard_spend.queue_size"), "{err}");
    let err = parse_err("switchyard_spend:\n  queue_sise: 5\n");
    assert!(err.contains("queue_sise"), "{err}");
}

#[test]
fn metrics_settings_from_litellm_keys_and_our_own() {
    let loaded = parse_ok(
        "litellm_settings:\n  success_callback: [prometheus, sentry]\n  require_auth_for_metrics_endpoint: true\nswitchyard_metrics:\n  tag_labels: [feature, tenant]\n  max_label_values: 20\n",
    );
    let m = &loaded.config.metrics;
    assert!(m.litellm_names && m.require_auth);
    assert_eq!(m.tag_labels, ["feature", "tenant"]);
    assert_eq!(m.max_label_values, 20);
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains("callback `sentry` is not supported"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("`prometheus` is not supported"),
        "{warnings}"
    );

    let defaults = parse_ok("model_list: []\n").config.metrics;
    assert!(!defaults.litellm_names && !defaults.require_auth);
    assert!(defaults.tag_labels.is_empty());
    assert_eq!(
        defaults.max_label_values,
        crate::telemetry::MetricsSettings::default().max_label_values
    );

    for (yaml, needle) in [
        (
            "switchyard_metrics: {tag_labels: [team]}",
            "switchyard_metrics.tag_labels[0]",
        ),
        (
            "switchyard_metrics: {tag_labels: [a-b]}",
            "switchyard_metrics.tag_labels[0]",
        ),
        (
            "switchyard_metrics: {tag_labels: [x, x]}",
            "switchyard_metrics.tag_labels[1]",
        ),
        (
            "switchyard_metrics: {max_label_values: 0}",
            "switchyard_metrics.max_label_values",
        ),
        ("switchyard_metrics: {nope: 1}", "nope"),
    ] {
        let err = parse_err(yaml);
        assert!(err.contains(needle), "{yaml}: {err}");
    }
}

#[test]
fn aws_params_are_read_for_bedrock_and_named_elsewhere() {
    let yaml = "model_list:\n- model_name: claude\n  litellm_params:\n    model: bedrock/converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0\n    aws_access_key_id: os.environ/KEY_ID\n    aws_secret_access_key: os.environ/SECRET\n    aws_region_name: eu-west-1\n    aws_bedrock_runtime_endpoint: http://127.0.0.1:9/\n- model_name: gpt\n  litellm_params: {model: openai/gpt, aws_region_name: us-east-1}\n";
    let env = |name: &str| match name {
        "KEY_ID" => Some("AKIAEXAMPLE".to_owned()),
        "SECRET" => Some("secret-from-env".to_owned()),
        _ => None,
    };
    let loaded = parse(yaml, &env).unwrap_or_else(|err| panic!("{err}"));
    let bedrock = &loaded.config.deployments[0];
    assert_eq!(bedrock.provider, "bedrock");
    assert_eq!(
        bedrock.upstream_model,
        "converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    );
    assert_eq!(
        bedrock.aws.access_key_id.as_ref().unwrap().expose(),
        "AKIAEXAMPLE"
    );
    assert_eq!(
        bedrock.aws.secret_access_key.as_ref().unwrap().expose(),
        "secret-from-env"
    );
    assert_eq!(bedrock.aws.region_name.as_deref(), Some("eu-west-1"));
    // Priced as the cross-region profile, without LiteLLM's `converse/` route marker.
    assert_eq!(
        bedrock.price_entry.as_deref(),
        Some("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    );
    assert_eq!(
        bedrock.aws.bedrock_runtime_endpoint.as_deref(),
        Some("http://127.0.0.1:9")
    );
    let warned: Vec<&String> = loaded
        .warnings
        .iter()
        .filter(|w| w.contains("aws_"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", loaded.warnings);
    assert!(warned[0].contains("aws_region_name"), "{warned:?}");

    let err = parse_err(
        "model_list:\n- model_name: a\n  litellm_params: {model: bedrock/m, aws_region_name: 5}\n",
    );
    assert!(err.contains("litellm_params.aws_region_name"), "{err}");
    let err = parse_err("model_list:\n- model_name: a\n  litellm_params: {model: bedrock/m, aws_sts_endpoint: 'sts.local'}\n");
    assert!(err.contains("aws_sts_endpoint"), "{err}");
    let err = parse_err("model_list:\n- model_name: a\n  litellm_params: {model: bedrock/m, aws_secret_access_key: os.environ/NOPE}\n");
    assert!(err.contains("NOPE"), "{err}");
}
