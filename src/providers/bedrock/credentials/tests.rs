use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::post;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn static_keys(credentials: &SigV4Credentials) -> Arc<AwsKeys> {
    match &credentials.source {
        Source::Static(keys) => keys.clone(),
        Source::WebIdentity(_) => panic!("expected static keys"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-aws-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn litellm_params_win_then_environment_then_profile() {
    let params = AwsParams {
        access_key_id: Some(Secret::new("AKIAPARAMS".into())),
        secret_access_key: Some(Secret::new("params-secret".into())),
        region_name: Some("eu-west-1".into()),
        ..AwsParams::default()
    };
    let env = env_of(&[
        ("AWS_ACCESS_KEY_ID", "AKIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ("AWS_SESSION_TOKEN", "env-token"),
        ("AWS_REGION", "us-east-2"),
    ]);
    let credentials = resolve(&params, "bedrock", &env).unwrap();
    assert_eq!(static_keys(&credentials).access_key_id, "AKIAPARAMS");
    assert_eq!(credentials.region(), "eu-west-1");
    assert_eq!(credentials.origin(), "litellm_params");

    let credentials = resolve(&AwsParams::default(), "bedrock", &env).unwrap();
    let keys = static_keys(&credentials);
    assert_eq!(keys.access_key_id, "AKIAENV");
    assert_eq!(keys.session_token.as_ref().unwrap().expose(), "env-token");
    assert_eq!(credentials.region(), "us-east-2");

    let half = AwsParams {
        access_key_id: Some(Secret::new("AKIAPARAMS".into())),
        ..AwsParams::default()
    };
    assert!(resolve(&half, "bedrock", &env).is_err());

    // Nothing anywhere: an error that names what to set, and the default region.
    let err = resolve(
        &AwsParams::default(),
        "bedrock",
        &env_of(&[("HOME", "/nonexistent")]),
    )
    .unwrap_err();
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert_eq!(region(&AwsParams::default(), &env_of(&[])), "us-west-2");
}

#[test]
fn profiles_from_the_shared_files() {
    let dir = temp_dir("profiles");
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(
        dir.join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n\n# comment\n[work]\naws_access_key_id=AKIAWORK\naws_secret_access_key=work-secret\naws_session_token=work-token\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".aws/config"),
        "[default]\nregion = ap-south-1\n[profile work]\nregion = eu-central-1\n[profile irsa]\nrole_arn = arn:aws:iam::123456789012:role/r\nweb_identity_token_file = /var/run/token\n",
    )
    .unwrap();
    let home = dir.to_string_lossy().into_owned();
    let env = env_of(&[("HOME", &home)]);

    let credentials = resolve(&AwsParams::default(), "bedrock", &env).unwrap();
    assert_eq!(static_keys(&credentials).access_key_id, "AKIADEFAULT");
    assert_eq!(credentials.region(), "ap-south-1");

    let work = AwsParams {
        profile_name: Some("work".into()),
        ..AwsParams::default()
    };
    let credentials = resolve(&work, "bedrock", &env).unwrap();
    let keys = static_keys(&credentials);
    assert_eq!(keys.access_key_id, "AKIAWORK");
    assert_eq!(keys.session_token.as_ref().unwrap().expose(), "work-token");
    assert_eq!(credentials.region(), "eu-central-1");

    let env = env_of(&[("HOME", &home), ("AWS_PROFILE", "irsa")]);
    let credentials = resolve(&AwsParams::default(), "bedrock", &env).unwrap();
    assert!(matches!(credentials.source, Source::WebIdentity(_)));

    let missing = AwsParams {
        profile_name: Some("nope".into()),
        ..AwsParams::default()
    };
    let err = resolve(&missing, "bedrock", &env).unwrap_err();
    assert!(err.contains("`nope`"), "{err}");

    // AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE point elsewhere.
    let other = dir.join("other-credentials");
    std::fs::write(
        &other,
        "[default]\naws_access_key_id=AKIAOTHER\naws_secret_access_key=s\n",
    )
    .unwrap();
    let other = other.to_string_lossy().into_owned();
    let env = env_of(&[("HOME", &home), ("AWS_SHARED_CREDENTIALS_FILE", &other)]);
    let credentials = resolve(&AwsParams::default(), "bedrock", &env).unwrap();
    assert_eq!(static_keys(&credentials).access_key_id, "AKIAOTHER");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_secret_in_debug_output() {
    let params = AwsParams {
        access_key_id: Some(Secret::new("AKIAPARAMS".into())),
        secret_access_key: Some(Secret::new("very-secret-value".into())),
        session_token: Some(Secret::new("very-secret-token".into())),
        ..AwsParams::default()
    };
    let credentials = resolve(&params, "bedrock", &env_of(&[])).unwrap();
    let shown = format!("{credentials:?} {params:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
}

#[test]
fn timestamps_and_xml() {
    assert_eq!(
        parse_timestamp("2015-08-30T12:36:00Z"),
        Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
    );
    assert_eq!(
        parse_timestamp("2024-02-29T00:00:00.123Z"),
        Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
    );
    assert_eq!(parse_timestamp("2024-13-01T00:00:00Z"), None);
    assert_eq!(parse_timestamp("yesterday"), None);
    assert_eq!(xml_text("<a><B> x </B></a>", "B"), Some("x"));
    assert_eq!(xml_text("<a><B>x</a>", "B"), None);
    assert_eq!(form_encode("a b/c=d"), "a%20b%2Fc%3Dd");
}

/// A fake STS: counts `AssumeRoleWithWebIdentity` calls and answers keys that expire
/// `lifetime` seconds from now; a wrong token gets STS's error.
async fn fake_sts(lifetime: u64) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/",
        post(move |body: String| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                // Slow enough that concurrent callers overlap.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if !body.contains("Action=AssumeRoleWithWebIdentity")
                    || !body.contains("WebIdentityToken=good-token")
                    || !body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbedrock")
                {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>bad token</Message></Error></ErrorResponse>".to_owned(),
                    );
                }
                let expires = SystemTime::now() + Duration::from_secs(lifetime);
                let secs = expires.duration_since(UNIX_EPOCH).unwrap().as_secs();
                let days = secs / 86_400;
                let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
                // Civil date from days (inverse of parse_timestamp's).
                let z = days as i64 + 719_468;
                let era = z.div_euclid(146_097);
                let doe = z - era * 146_097;
                let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
                let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
                let mp = (5 * doy + 2) / 153;
                let d = doy - (153 * mp + 2) / 5 + 1;
                let month = if mp < 10 { mp + 3 } else { mp - 9 };
                let year = yoe + era * 400 + i64::from(month <= 2);
                let xml = format!(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                     <AccessKeyId>ASIASTS{n}</AccessKeyId><SecretAccessKey>sts-secret</SecretAccessKey>\
                     <SessionToken>sts-token-{n}</SessionToken>\
                     <Expiration>{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z</Expiration>\
                     </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                );
                (axum::http::StatusCode::OK, xml)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn web_identity(sts: &str, token: &str) -> AwsParams {
    AwsParams {
        role_name: Some("arn:aws:iam::123456789012:role/bedrock".into()),
        web_identity_token: Some(Secret::new(token.into())),
        sts_endpoint: Some(sts.into()),
        region_name: Some("us-east-1".into()),
        ..AwsParams::default()
    }
}

#[tokio::test]
async fn web_identity_is_fetched_once_per_expiry() {
    let (sts, calls) = fake_sts(3600).await;
    let credentials =
        Arc::new(resolve(&web_identity(&sts, "good-token"), "bedrock", &env_of(&[])).unwrap());
    // Many concurrent first uses: one STS call.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let credentials = credentials.clone();
            tokio::spawn(async move { credentials.keys().await.map(|k| k.access_key_id.clone()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "ASIASTS1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Still fresh: no new call.
    credentials.keys().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Keys that expire within the refresh window are renewed on the next use.
    let (sts, calls) = fake_sts(60).await;
    let credentials = resolve(&web_identity(&sts, "good-token"), "bedrock", &env_of(&[])).unwrap();
    assert_eq!(credentials.keys().await.unwrap().access_key_id, "ASIASTS1");
    let keys = credentials.keys().await.unwrap();
    assert_eq!(keys.access_key_id, "ASIASTS2");
    assert_eq!(keys.session_token.as_ref().unwrap().expose(), "sts-token-2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn web_identity_token_file_and_failures_without_secrets() {
    let (sts, _) = fake_sts(3600).await;
    let dir = temp_dir("token");
    let file = dir.join("token");
    std::fs::write(&file, "good-token\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    let env = env_of(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &file),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock"),
        ("AWS_ENDPOINT_URL_STS", &sts),
        ("HOME", "/nonexistent"),
    ]);
    let credentials = resolve(&AwsParams::default(), "bedrock", &env).unwrap();
    assert_eq!(credentials.origin(), "environment web identity");
    assert_eq!(credentials.keys().await.unwrap().access_key_id, "ASIASTS1");

    let credentials = resolve(
        &web_identity(&sts, "wrong-token-that-is-secret"),
        "bedrock",
        &env_of(&[]),
    )
    .unwrap();
    let err = credentials.keys().await.unwrap_err().to_string();
    assert!(err.contains("InvalidIdentityToken"), "{err}");
    assert!(!err.contains("wrong-token-that-is-secret"), "{err}");

    // An unreachable STS is a connect error, not a panic.
    let credentials = resolve(
        &web_identity("http://127.0.0.1:9", "good-token"),
        "bedrock",
        &env_of(&[]),
    )
    .unwrap();
    assert!(credentials.keys().await.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn authorize_signs_with_the_current_keys() {
    let params = AwsParams {
        access_key_id: Some(Secret::new("AKIDEXAMPLE".into())),
        secret_access_key: Some(Secret::new(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        )),
        session_token: Some(Secret::new("session".into())),
        region_name: Some("us-east-1".into()),
        ..AwsParams::default()
    };
    let credentials = resolve(&params, "bedrock", &env_of(&[])).unwrap();
    let mut request = UpstreamRequest {
        url: "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse".into(),
        headers: HeaderMap::new(),
        body: bytes::Bytes::from_static(b"{}"),
    };
    credentials.authorize(&mut request).await.unwrap();
    let authorization = request.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && authorization.contains("/us-east-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert_eq!(request.headers["x-amz-security-token"], "session");
    assert!(request.headers.contains_key("x-amz-date"));
}
