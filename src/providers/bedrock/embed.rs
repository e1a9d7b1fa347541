//! OpenAI's `/v1/embeddings` over Bedrock's `InvokeModel` (`POST /model/{modelId}/invoke`),
//! whose body is the model family's own:
//!
//! - **Amazon Titan** text embeddings (`amazon.titan-embed-text-v1`, `-v2:0`,
//!   `amazon.titan-embed-g1-text-02`): `{"inputText": ...}` with, on v2, `dimensions` (from
//!   OpenAI's `dimensions`) and `normalize` (passed through); the answer is one `embedding` and
//!   its `inputTextTokenCount`. Titan embeds one text a call, so a request with several inputs
//!   is sent as one call per input ([`batch_limit`]) and the answers are put back together in
//!   order, their token counts added.
//! - **Cohere** on Bedrock (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`,
//!   `cohere.embed-v4:0`): `{"texts": [...], "input_type": ...}` (`search_document` when the
//!   client sends none, as LiteLLM does; `truncate` passes through), at most 96 texts a call;
//!   the answer's `embeddings` are a list of vectors (or `{"float": [...]}` when
//!   `embedding_types` was sent). Bedrock reports Cohere's token count only in a response header,
//!   so these answers carry no `usage` and are priced by the gateway's estimate.
//!
//! The answer is OpenAI's list (`base64` when the client asked for it).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::providers::translate::invalid;
use crate::providers::ProviderError;
use crate::schema::PassthroughRequest;

/// Which body an embedding model on Bedrock takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Titan,
    /// Titan text v2, which also takes `dimensions` and `normalize`.
    TitanV2,
    Cohere,
}

impl Family {
    /// The family of a Bedrock model id (a cross-region prefix such as `us.` allowed), or
    /// `None` for models without an embeddings body here.
    pub fn of(model_id: &str) -> Option<Family> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        let id = ["us.", "eu.", "apac.", "global."]
            .iter()
            .find_map(|region| id.strip_prefix(region))
            .unwrap_or(id);
        if id.starts_with("amazon.titan-embed-text-v2") {
            Some(Family::TitanV2)
        } else if id.starts_with("amazon.titan-embed") {
            Some(Family::Titan)
        } else if id.starts_with("cohere.embed") {
            Some(Family::Cohere)
        } else {
            None
        }
    }
}

/// How many inputs one call of this family takes.
pub fn batch_limit(family: Family) -> usize {
    match family {
        Family::Titan | Family::TitanV2 => 1,
        Family::Cohere => 96,
    }
}

/// The request's inputs: a string or a list of strings (Bedrock's embedding models take text,
/// not token ids).
pub fn inputs(request: &PassthroughRequest) -> Result<Vec<&str>, ProviderError> {
    match request.extra.get("input") {
        Some(Value::String(text)) => Ok(vec![text.as_str()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    invalid(
                        "input",
                        "Bedrock embeds text: send a string or a list of strings (not token ids)",
                    )
                })
            })
            .collect(),
        Some(Value::Array(_)) => Err(invalid("input", "must not be empty")),
        Some(_) => Err(invalid(
            "input",
            "Bedrock embeds text: send a string or a list of strings (not token ids)",
        )),
        None => Err(invalid("input", "is required")),
    }
}

/// The `InvokeModel` body for `texts` (one text for Titan).
pub fn to_invoke(
    family: Family,
    request: &PassthroughRequest,
    texts: &[&str],
) -> Result<Value, ProviderError> {
    let get = |name: &str| request.extra.get(name).filter(|v| !v.is_null());
    let mut body = Map::new();
    match family {
        Family::Titan | Family::TitanV2 => {
            let [text] = texts else {
                return Err(invalid("input", "Titan embeds one text a call"));
            };
            body.insert("inputText".into(), (*text).into());
            if family == Family::TitanV2 {
                if let Some(dimensions) = get("dimensions") {
                    body.insert("dimensions".into(), dimensions.clone());
                }
                if let Some(normalize) = get("normalize") {
                    body.insert("normalize".into(), normalize.clone());
                }
            } else if get("dimensions").is_some() {
                return Err(invalid(
                    "dimensions",
                    "this Titan model has a fixed size; `dimensions` needs amazon.titan-embed-text-v2",
                ));
            }
        }
        Family::Cohere => {
            body.insert("texts".into(), json!(texts));
            body.insert(
                "input_type".into(),
                get("input_type")
                    .cloned()
                    .unwrap_or_else(|| "search_document".into()),
            );
            if let Some(truncate) = get("truncate") {
                body.insert("truncate".into(), truncate.clone());
            }
        }
    }
    Ok(Value::Object(body))
}

#[derive(Deserialize)]
struct TitanAnswer {
    embedding: Vec<f64>,
    #[serde(rename = "inputTextTokenCount", default)]
    input_tokens: u64,
}

#[derive(Deserialize)]
struct CohereAnswer {
    embeddings: CohereEmbeddings,
}

/// `embeddings_floats` answers are a list of vectors; `embeddings_by_type` a map by type.
#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f64>>),
    ByType { float: Vec<Vec<f64>> },
}

/// One call's vectors and its token count (`None` when the answer does not say). The family is
/// told by the answer's shape (Titan's `embedding`, Cohere's `embeddings`): the answer is read
/// where the deployment is no longer at hand.
pub fn from_invoke(body: &[u8]) -> Result<(Vec<Vec<f64>>, Option<u64>), ProviderError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answer {
        Titan(TitanAnswer),
        Cohere(CohereAnswer),
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        ProviderError::InvalidResponse(
            "bedrock embeddings response: neither Titan's `embedding` nor Cohere's `embeddings`"
                .into(),
        )
    })?;
    Ok(match answer {
        Answer::Titan(titan) => (vec![titan.embedding], Some(titan.input_tokens)),
        Answer::Cohere(CohereAnswer {
            embeddings:
                CohereEmbeddings::Floats(vectors) | CohereEmbeddings::ByType { float: vectors },
        }) => (vectors, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::translate::openai_embeddings;

    fn request(body: Value) -> PassthroughRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn families_by_model_id() {
        assert_eq!(
            Family::of("amazon.titan-embed-text-v2:0"),
            Some(Family::TitanV2)
        );
        assert_eq!(
            Family::of("amazon.titan-embed-text-v1"),
            Some(Family::Titan)
        );
        assert_eq!(
            Family::of("amazon.titan-embed-g1-text-02"),
            Some(Family::Titan)
        );
        assert_eq!(
            Family::of("us.cohere.embed-english-v3"),
            Some(Family::Cohere)
        );
        assert_eq!(
            Family::of("arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-v4:0"),
            Some(Family::Cohere)
        );
        assert_eq!(
            Family::of("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            None
        );
    }

    /// The bodies in the Bedrock user guide's examples ("Amazon Titan Text Embeddings",
    /// "Cohere Embed models").
    #[test]
    fn bodies_as_the_user_guide_writes_them() {
        let r =
            request(json!({"model": "e", "input": "Hello", "dimensions": 512, "normalize": true}));
        assert_eq!(
            to_invoke(Family::TitanV2, &r, &["Hello"]).unwrap(),
            json!({"inputText": "Hello", "dimensions": 512, "normalize": true})
        );
        let err = to_invoke(Family::Titan, &r, &["Hello"]).unwrap_err();
        assert!(err.to_string().contains("dimensions"), "{err}");
        let r = request(json!({"model": "e", "input": ["a", "b"], "truncate": "END"}));
        assert_eq!(
            to_invoke(Family::Cohere, &r, &["a", "b"]).unwrap(),
            json!({"texts": ["a", "b"], "input_type": "search_document", "truncate": "END"})
        );
        assert!(to_invoke(Family::Titan, &r, &["a", "b"]).is_err());
    }

    #[test]
    fn inputs_are_text() {
        let ok = request(json!({"model": "e", "input": ["a", "b"]}));
        assert_eq!(inputs(&ok).unwrap(), ["a", "b"]);
        for bad in [json!([1, 2]), json!([]), json!({"a": 1}), json!(null)] {
            let r = request(json!({"model": "e", "input": bad}));
            assert!(inputs(&r).is_err(), "{bad}");
        }
        assert!(inputs(&request(json!({"model": "e"}))).is_err());
    }

    #[test]
    fn answers_back_to_openai() {
        let (vectors, tokens) = from_invoke(
            br#"{"embedding":[0.5,-0.25],"inputTextTokenCount":3,"embeddingsByType":{"float":[0.5,-0.25]}}"#,
        )
        .unwrap();
        assert_eq!((vectors.len(), tokens), (1, Some(3)));
        let floats = br#"{"embeddings":[[0.1],[0.2]],"id":"x","response_type":"embeddings_floats","texts":["a","b"]}"#;
        let by_type = br#"{"embeddings":{"float":[[0.1],[0.2]]},"id":"x","response_type":"embeddings_by_type","texts":["a","b"]}"#;
        for body in [&floats[..], &by_type[..]] {
            let (vectors, tokens) = from_invoke(body).unwrap();
            assert_eq!((vectors, tokens), (vec![vec![0.1], vec![0.2]], None));
        }
        for hostile in [&b"{}"[..], b"not json", br#"{"embedding":"x"}"#] {
            assert!(from_invoke(hostile).is_err());
        }
        let r = request(json!({"model": "e", "input": "a", "encoding_format": "base64"}));
        let answer = openai_embeddings(&r, None, vec![vec![1.0]], Some(2));
        assert_eq!(answer.extra["data"][0]["embedding"], "AACAPw==");
        assert_eq!(answer.usage().unwrap().prompt_tokens, 2);
        let plain = request(json!({"model": "e", "input": "a"}));
        let answer = openai_embeddings(&plain, None, vec![vec![1.0]], None);
        assert_eq!(answer.extra["data"][0]["embedding"], json!([1.0]));
        assert!(answer.usage().is_none());
    }
}
