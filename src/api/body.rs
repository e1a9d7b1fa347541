//! Reading a JSON request body: bounded in size, parsed once into typed structs, and every
//! failure a 400/413 that names the offending field.

use axum::body::Body;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    // Refuse early when the client announces a body over the limit.
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request(format!("could not read the request body: {err}"), None)
        }
    })?;
    parse_json(&bytes)
}

/// Parses bytes as `T`. Content type is not checked: like LiteLLM, any body that is JSON is
/// accepted (`curl -d` sends form content type by default).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty: expected a JSON object",
            None,
        ));
    }
    // The happy path parses once, plainly; only a failed parse is repeated with path tracking
    // (which allocates for every key it passes) to name the offending field.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let error = match result {
        Ok(_) => match deserializer.end() {
            Err(err) => err,
            // Unreachable in practice: the plain parse above failed on the same bytes.
            Ok(()) => {
                return Err(ApiError::bad_request(
                    "request body could not be parsed",
                    None,
                ))
            }
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                inner
            } else {
                let text = inner.to_string();
                // serde reports a missing field at the parent's path; name the field itself.
                let param = match missing_field(&text) {
                    Some(field) if path == "." => field.to_owned(),
                    Some(field) => format!("{path}.{field}"),
                    None => path,
                };
                let detail = strip_position(&text);
                return Err(ApiError::bad_request(
                    format!("invalid request: `{param}`: {detail}"),
                    Some(&param),
                ));
            }
        }
    };
    Err(ApiError::bad_request(
        format!("request body is not valid JSON: {error}"),
        None,
    ))
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Drops serde_json's " at line 1 column 42" suffix: the field path already says where.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ChatRequest;

    fn error_of(body: &[u8]) -> (String, Option<String>) {
        match parse_json::<ChatRequest>(body) {
            Err(ApiError::BadRequest { message, param }) => (message, param),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error_of(br#"{"model":"m"}"#).1.as_deref(), Some("messages"));
        assert_eq!(error_of(br#"{"messages":[]}"#).1.as_deref(), Some("model"));
        assert_eq!(
            error_of(br#"{"model":5,"messages":[]}"#).1.as_deref(),
            Some("model")
        );
        let (message, param) =
            error_of(br#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#);
        assert_eq!(param.as_deref(), Some("messages[0].role"));
        assert!(message.contains("wizard"), "{message}");
        assert_eq!(
            error_of(br#"{"model":"m","messages":[{"content":"x"}]}"#)
                .1
                .as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            error_of(br#"{"model":"m","messages":"hi"}"#).1.as_deref(),
            Some("messages")
        );
    }

    #[tokio::test]
    async fn a_body_growing_past_the_limit_is_413() {
        let chunks = (0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        match read_json::<ChatRequest>(&HeaderMap::new(), body, 1024 * 1024).await {
            Err(ApiError::PayloadTooLarge { limit }) => assert_eq!(limit, 1024 * 1024),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_bodies_are_400s() {
        let deep = "[".repeat(100_000);
        for body in [
            &b""[..],
            b"   ",
            b"{\"model\":\"m\",\"messages\":[",
            b"null",
            b"[]",
            b"\xff\xfe{}",
            b"{\"model\":\"\xff\",\"messages\":[]}",
            b"{\"model\":\"m\",\"messages\":[]} trailing",
            deep.as_bytes(),
        ] {
            let (message, _) = error_of(body);
            assert!(!message.is_empty());
        }
    }
}
