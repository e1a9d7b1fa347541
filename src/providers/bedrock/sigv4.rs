//! AWS Signature Version 4 over a built request, with AWS's own signer (`aws-sigv4`): the
//! canonical request (double-encoded path, sorted headers, hashed body), the string to sign and
//! the derived key are all the crate's. This module only adapts our request to it and puts the
//! `authorization`, `x-amz-date` (and `x-amz-security-token`) headers it returns on the request.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::header::{HeaderMap, HeaderName, HeaderValue};

use super::credentials::AwsKeys;
use crate::providers::ProviderError;

/// Where and as whom a request is signed.
pub struct Scope<'a> {
    pub region: &'a str,
    /// The signing name of the service (`bedrock` for the Bedrock runtime).
    pub service: &'a str,
    pub time: SystemTime,
}

/// Signs `method url` with `headers` and `body`, adding the signature headers to `headers`.
/// Every header already present is signed (the shared client adds `host` from the URL, which
/// the signer signs the same way, and `content-length`, which is not signed).
pub fn sign_request(
    method: &str,
    url: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    keys: &AwsKeys,
    scope: &Scope<'_>,
) -> Result<(), ProviderError> {
    let failed =
        |why: String| ProviderError::Unsupported(format!("cannot sign the request: {why}"));
    // The signer needs an absolute URL (it panics without an authority).
    let uri: axum::http::Uri = url.parse().map_err(|_| failed("invalid URL".into()))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(failed("the URL needs a scheme and a host".into()));
    }
    let identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose().to_owned(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "switchyard",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(e.to_string()))?
        .into();
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let value = value
            .to_str()
            .map_err(|_| failed(format!("header `{name}` is not text")))?;
        pairs.push((name.as_str(), value));
    }
    let signable = SignableRequest::new(method, url, pairs.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| failed(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed(e.to_string()))?
        .into_parts();
    let (new_headers, _params) = instructions.into_parts();
    for header in new_headers {
        let mut value =
            HeaderValue::from_str(header.value()).map_err(|_| failed("header value".into()))?;
        value.set_sensitive(header.sensitive() || header.name() == "authorization");
        headers.insert(HeaderName::from_static(header.name()), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::config::Secret;

    /// AWS's SigV4 test suite credentials and scope (`aws-sig-v4-test-suite`): key
    /// `AKIDEXAMPLE`, region `us-east-1`, service `service`, 2015-08-30T12:36:00Z.
    fn keys(token: Option<&str>) -> AwsKeys {
        AwsKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| Secret::new(t.into())),
            expires_at: None,
        }
    }

    fn scope() -> Scope<'static> {
        Scope {
            region: "us-east-1",
            service: "service",
            time: UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        }
    }

    fn authorization(method: &str, headers: &mut HeaderMap, body: &[u8], token: Option<&str>) {
        sign_request(
            method,
            "https://example.amazonaws.com/",
            headers,
            body,
            &keys(token),
            &scope(),
        )
        .unwrap();
    }

    const CREDENTIAL: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    #[test]
    fn get_vanilla() {
        let mut headers = HeaderMap::new();
        authorization("GET", &mut headers, b"", None);
        assert_eq!(headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            headers["authorization"],
            format!("{CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31").as_str()
        );
        assert!(headers["authorization"].is_sensitive());
    }

    #[test]
    fn post_vanilla() {
        let mut headers = HeaderMap::new();
        authorization("POST", &mut headers, b"", None);
        assert_eq!(
            headers["authorization"],
            format!("{CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b").as_str()
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let mut headers = HeaderMap::new();
        authorization(
            "GET",
            &mut headers,
            b"",
            Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
        );
        assert_eq!(
            headers["x-amz-security-token"],
            "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
        );
        assert_eq!(
            headers["authorization"],
            format!("{CREDENTIAL}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8").as_str()
        );
    }

    #[test]
    fn a_url_without_a_host_is_an_error_not_a_panic() {
        let mut headers = HeaderMap::new();
        assert!(sign_request(
            "POST",
            "/model/x/converse",
            &mut headers,
            b"",
            &keys(None),
            &scope()
        )
        .is_err());
    }
}
