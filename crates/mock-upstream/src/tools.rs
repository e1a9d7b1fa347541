//! Tool calls, the same way for every wire format the mock speaks.
//!
//! The rule is deterministic, so tests can predict it: when a request offers tools, does not
//! forbid calling them (`none`), and its last turn is not itself a tool result, the mock calls
//! one tool instead of answering: the one the request forces, else the first offered. The
//! arguments are made up from the tool's JSON Schema (see [`arguments_for`]). After a tool
//! result, the mock answers with its reply text.

use serde_json::{Map, Value};

/// A tool the request offers: its name and parameter schema.
pub struct Offered<'a> {
    pub name: &'a str,
    pub schema: Option<&'a Value>,
}

/// What the request says about calling tools.
pub enum Choice<'a> {
    /// The model may call any (OpenAI `auto`/`required`, Anthropic `auto`/`any`, Gemini
    /// `AUTO`/`ANY` without names).
    Any,
    /// It must call this one.
    Named(&'a str),
    /// It must not call any.
    None,
}

/// The call the mock makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub arguments: Value,
}

/// The tool call to make, if the rule above says so.
pub fn plan(
    offered: &[Offered<'_>],
    choice: Choice<'_>,
    answering_tool_result: bool,
) -> Option<Call> {
    if offered.is_empty() || answering_tool_result {
        return None;
    }
    let tool = match choice {
        Choice::None => return None,
        Choice::Named(name) => offered.iter().find(|t| t.name == name)?,
        Choice::Any => &offered[0],
    };
    Some(Call {
        name: tool.name.to_owned(),
        arguments: tool
            .schema
            .map_or_else(|| Value::Object(Map::new()), arguments_for),
    })
}

/// Made-up arguments that satisfy a simple JSON Schema: every required property (every
/// property when none is marked required) gets a value of its type: the first `enum` value,
/// `"mock"` for strings, `1` for integers, `1.5` for numbers, `true`, `[]`, and objects filled
/// the same way.
pub fn arguments_for(schema: &Value) -> Value {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Value::Object(Map::new());
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for (name, property) in properties {
        if required.is_empty() || required.contains(&name.as_str()) {
            out.insert(name.clone(), value_for(property));
        }
    }
    Value::Object(out)
}

fn value_for(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.to_ascii_lowercase(),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("string")
            .to_ascii_lowercase(),
        _ => "string".to_owned(),
    };
    match kind.as_str() {
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => arguments_for(schema),
        _ => Value::String("mock".to_owned()),
    }
}

/// The argument JSON split in two, so streams show the arguments arriving in pieces.
pub fn split_arguments(arguments: &Value) -> (String, String) {
    let text = arguments.to_string();
    let mut middle = text.len() / 2;
    while !text.is_char_boundary(middle) {
        middle += 1;
    }
    (text[..middle].to_owned(), text[middle..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "detail": {"type": "object", "properties": {"hourly": {"type": "boolean"}}},
                "optional": {"type": "number"}
            },
            "required": ["location", "unit", "days", "detail"]
        });
        assert_eq!(
            arguments_for(&schema),
            json!({"location": "mock", "unit": "celsius", "days": 1, "detail": {"hourly": true}})
        );
        assert_eq!(arguments_for(&json!({"type": "object"})), json!({}));
    }

    #[test]
    fn the_rule() {
        let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}});
        let offered = [
            Offered {
                name: "first",
                schema: Some(&schema),
            },
            Offered {
                name: "second",
                schema: None,
            },
        ];
        assert_eq!(plan(&offered, Choice::Any, false).unwrap().name, "first");
        assert_eq!(
            plan(&offered, Choice::Named("second"), false)
                .unwrap()
                .arguments,
            json!({})
        );
        assert!(plan(&offered, Choice::None, false).is_none());
        assert!(plan(&offered, Choice::Any, true).is_none());
        assert!(plan(&[], Choice::Any, false).is_none());
        let (a, b) = split_arguments(&json!({"q": "mock"}));
        assert_eq!(a + &b, r#"{"q":"mock"}"#);
    }
}
