//! `switchyard check` and start-up failures.

mod common;

use std::process::Command;

use common::*;

fn check(yaml: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
    let path = write_config(yaml);
    let mut command = Command::new(BIN);
    command.args(["check", "--config", path.to_str().unwrap()]);
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_groups_with_secrets_masked() {
    let yaml = "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/CHECK_TEST_KEY\n  - model_name: gpt-4o\n    litellm_params:\n      model: azure/gpt-4o-eu\n      api_base: https://eu.openai.azure.com\n      api_key: azure-very-secret-key\n    model_info: {id: eu}\nrouter_settings:\n  redis_host: localhost\n  provider_budget_config: {}\ngeneral_settings:\n  master_key: sk-master-very-secret\n";
    let (code, stdout, stderr) = check(yaml, &[("CHECK_TEST_KEY", "sk-proj-supersecretvalue")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("gpt-4o")
            && stdout.contains("openai/gpt-4o")
            && stdout.contains("azure/gpt-4o-eu")
    );
    assert!(stdout.contains("id eu"));
    for secret in [
        "supersecretvalue",
        "very-secret-key",
        "sk-master-very-secret",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
    assert!(
        stderr.contains("router_settings.provider_budget_config"),
        "unsupported keys warned: {stderr}"
    );
}

#[test]
fn check_fails_precisely() {
    let (code, _, stderr) = check(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/SWITCHYARD_TEST_UNSET_VAR\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("SWITCHYARD_TEST_UNSET_VAR") && stderr.contains("claude"),
        "{stderr}"
    );

    let (code, _, stderr) = check(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: nosuchprovider/m\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("nosuchprovider"), "{stderr}");

    let (code, _, stderr) = check("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/m\n      rpm: lots\n", &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("model_list[0].litellm_params.rpm") && stderr.contains("line 5"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_bad_config() {
    let path = write_config("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/m\n      api_key: os.environ/SWITCHYARD_TEST_UNSET_VAR\n");
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap(), "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHYARD_TEST_UNSET_VAR"));
}
