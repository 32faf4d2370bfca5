//! JSON that crosses the host without being rebuilt: a packed value is either a tree the
//! host made or looks into ([`Json::Tree`]), or the text a context sent, kept as it came
//! ([`Json::Raw`]) and written to the response as it is. A big value (a million-element
//! list, a table) is then scanned once on its way through and copied, never parsed
//! into a tree and serialized again; cloning it (for the execution log, its events, a
//! repeat by id) shares the text.
//!
//! [`ExecuteResult`] is what every `execute` answers (PROTOCOL.md section 6): its
//! messages, which the host reads (events, metrics, warnings), and its value, which it
//! only passes on.

use serde::de::{Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;

/// A JSON value the host passes on.
#[derive(Debug, Clone)]
pub enum Json {
    /// A tree, made or read by the host.
    Tree(Value),
    /// Valid JSON text, as a context sent it: one line, written out verbatim.
    Raw(Arc<Box<RawValue>>),
}

impl Json {
    /// `null`.
    pub const NULL: Json = Json::Tree(Value::Null);

    /// Checked JSON text (it is scanned once, not parsed into a tree).
    pub fn from_text(text: String) -> Result<Json, serde_json::Error> {
        Ok(Json::Raw(Arc::new(RawValue::from_string(text)?)))
    }

    /// Whether it is `null`.
    pub fn is_null(&self) -> bool {
        match self {
            Json::Tree(value) => value.is_null(),
            Json::Raw(raw) => raw.get().trim() == "null",
        }
    }

    /// The value as a tree (text is parsed; it was checked, so this fails only on
    /// nesting deeper than the parser allows).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Json::Tree(value) => Ok(value.clone()),
            Json::Raw(raw) => serde_json::from_str(raw.get()),
        }
    }

    /// The value as a tree, taken.
    pub fn into_value(self) -> Result<Value, serde_json::Error> {
        match self {
            Json::Tree(value) => Ok(value),
            Json::Raw(raw) => serde_json::from_str(raw.get()),
        }
    }

    /// The length of its JSON text, in bytes (serialized, for a tree).
    pub fn text_len(&self) -> usize {
        match self {
            Json::Tree(value) => serde_json::to_vec(value).map_or(0, |text| text.len()),
            Json::Raw(raw) => raw.get().len(),
        }
    }

    /// Its `"type"` when it is a packed value (an object with a string `type`), read
    /// without parsing the rest where it can be: a packed value's text written by a
    /// worker starts with its type, so a glance at the first key is enough.
    pub fn packed_type(&self) -> Option<String> {
        match self {
            Json::Tree(value) => value.get("type").and_then(Value::as_str).map(Into::into),
            Json::Raw(raw) => {
                if let Some(glanced) = glance_type(raw.get()) {
                    return Some(glanced.to_string());
                }
                #[derive(serde::Deserialize)]
                struct Peek {
                    #[serde(rename = "type")]
                    kind: Option<Value>,
                }
                let peek: Peek = serde_json::from_str(raw.get()).ok()?;
                peek.kind.and_then(|kind| kind.as_str().map(Into::into))
            }
        }
    }
}

/// The string value of a leading `"type"` key (`{"type": "table", ...`), when the text
/// starts so and the string needs no unescaping; `None` says "look properly".
fn glance_type(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"type\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let kind = &rest[..end];
    (!kind.contains('\\')).then_some(kind)
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        Json::Tree(value)
    }
}

impl Default for Json {
    fn default() -> Self {
        Json::NULL
    }
}

impl PartialEq for Json {
    /// The same JSON value, whatever the form.
    fn eq(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Tree(a), Json::Tree(b)) => a == b,
            (Json::Raw(a), Json::Raw(b)) if a.get() == b.get() => true,
            _ => match (self.to_value(), other.to_value()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        match self {
            Json::Tree(value) => value == other,
            Json::Raw(_) => self.to_value().is_ok_and(|value| &value == other),
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Tree(value) => value.serialize(serializer),
            // serde_json writes a raw value's text verbatim.
            Json::Raw(raw) => RawValue::serialize(raw, serializer),
        }
    }
}

impl fmt::Display for Json {
    /// Compact JSON on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Tree(value) => write!(f, "{value}"),
            Json::Raw(raw) => f.write_str(raw.get()),
        }
    }
}

/// What an `execute` answers: `{"messages": [...], "value": ...}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecuteResult {
    /// Errors, warnings and printed output, in order.
    pub messages: Vec<Value>,
    /// The packed value of the last expression, or `null`.
    pub value: Json,
    /// An answer of another shape (a 2018 cell execute answers with the cell), kept
    /// whole and answered as it is; `messages` and `value` are read from it.
    pub verbatim: Option<Value>,
}

impl Serialize for ExecuteResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shape<'a> {
            messages: &'a [Value],
            value: &'a Json,
        }
        match &self.verbatim {
            Some(whole) => whole.serialize(serializer),
            None => Shape {
                messages: &self.messages,
                value: &self.value,
            }
            .serialize(serializer),
        }
    }
}

impl ExecuteResult {
    /// A result with no value and these messages.
    pub fn with_messages(messages: Vec<Value>) -> Self {
        ExecuteResult {
            messages,
            value: Json::NULL,
            verbatim: None,
        }
    }

    /// A result carrying only an error message.
    pub fn error(message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self::with_messages(vec![json!({"type": "error", "message": message})])
    }

    /// Reads a result object from its JSON text: the messages are parsed, the value is
    /// kept as text (one scan, one copy).
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Parts<'a> {
            #[serde(default)]
            messages: Option<Vec<Value>>,
            // Absent and `null` are both `None`.
            #[serde(default, borrow)]
            value: Option<&'a RawValue>,
        }
        let parts: Parts = serde_json::from_str(text)?;
        let value = match parts.value {
            None => Json::NULL,
            Some(raw) => Json::Raw(Arc::new(raw.to_owned())),
        };
        Ok(ExecuteResult {
            messages: parts.messages.unwrap_or_default(),
            value,
            verbatim: None,
        })
    }

    /// Reads a result object tree (what a context without raw text returns). Anything
    /// but `{"messages": [...], "value": ...}` is kept whole, to be answered as it is.
    pub fn from_value(result: Value) -> Self {
        let usual = match &result {
            Value::Object(map) => {
                map.len() == 2
                    && map.get("messages").is_some_and(Value::is_array)
                    && map.contains_key("value")
            }
            _ => false,
        };
        if !usual {
            let messages = match result.get("messages") {
                Some(Value::Array(messages)) => messages.clone(),
                _ => Vec::new(),
            };
            let value = result.get("value").cloned().unwrap_or(Value::Null);
            return ExecuteResult {
                messages,
                value: Json::Tree(value),
                verbatim: Some(result),
            };
        }
        let Value::Object(mut map) = result else {
            return Self::default();
        };
        let messages = match map.remove("messages") {
            Some(Value::Array(messages)) => messages,
            _ => Vec::new(),
        };
        ExecuteResult {
            messages,
            value: Json::Tree(map.remove("value").unwrap_or(Value::Null)),
            verbatim: None,
        }
    }

    /// The result as one tree (for callers that look into the value).
    pub fn into_value(self) -> Result<Value, serde_json::Error> {
        if let Some(whole) = self.verbatim {
            return Ok(whole);
        }
        Ok(json!({"messages": self.messages, "value": self.value.into_value()?}))
    }

    /// Whether one of its messages is an error.
    pub fn has_error(&self) -> bool {
        self.messages
            .iter()
            .any(|message| message.get("type").and_then(Value::as_str) == Some("error"))
    }
}

/// A field that is present, even as `null`, is `Some` (serde's `Option` would make an
/// explicit `null` `None`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_text_is_written_verbatim_and_equals_its_tree() {
        let raw =
            Json::from_text(r#"{"type":"array","data":[1,2.5,"x"]}"#.into()).expect("valid JSON");
        let tree = Json::Tree(json!({"type": "array", "data": [1, 2.5, "x"]}));
        assert_eq!(raw, tree);
        let result = ExecuteResult {
            messages: vec![],
            value: raw,
            verbatim: None,
        };
        assert_eq!(
            serde_json::to_string(&result).expect("valid JSON"),
            r#"{"messages":[],"value":{"type":"array","data":[1,2.5,"x"]}}"#
        );
        assert!(Json::from_text("{not json".into()).is_err());
    }

    #[test]
    fn a_result_is_read_into_messages_and_raw_value() {
        let text = r#"{"value": {"type": "integer", "data": 42}, "messages": [{"type": "stdout", "message": "hi"}], "other": [1]}"#;
        let result = ExecuteResult::from_text(text).expect("valid JSON");
        assert_eq!(
            result.messages,
            vec![json!({"type": "stdout", "message": "hi"})]
        );
        assert!(
            matches!(&result.value, Json::Raw(raw) if raw.get() == r#"{"type": "integer", "data": 42}"#)
        );
        assert!(!result.has_error());
        let none =
            ExecuteResult::from_text(r#"{"messages": [], "value": null}"#).expect("valid JSON");
        assert!(none.value.is_null());
        // A `null` value is not kept as text.
        assert!(matches!(none.value, Json::Tree(Value::Null)));
        assert_eq!(
            ExecuteResult::from_text("{}").expect("valid JSON"),
            ExecuteResult::default()
        );
        assert!(ExecuteResult::from_text("[1]").is_err());
        assert!(ExecuteResult::error("boom").has_error());
    }

    #[test]
    fn an_answer_of_another_shape_is_kept_whole() {
        let cell =
            json!({"type": "cell", "messages": [{"type": "error", "message": "x"}], "outputs": []});
        let result = ExecuteResult::from_value(cell.clone());
        assert!(result.has_error());
        assert_eq!(serde_json::to_value(&result).expect("JSON"), cell);
        assert_eq!(result.into_value().expect("JSON"), cell);
        let usual = json!({"messages": [], "value": {"type": "integer", "data": 1}});
        let result = ExecuteResult::from_value(usual.clone());
        assert_eq!(result.verbatim, None);
        assert_eq!(serde_json::to_value(&result).expect("JSON"), usual);
    }

    #[test]
    fn the_packed_type_is_glanced_or_looked_up() {
        let typed = |text: &str| {
            Json::from_text(text.into())
                .expect("valid JSON")
                .packed_type()
        };
        assert_eq!(
            typed(r#"{"type":"pointer","name":"t"}"#).as_deref(),
            Some("pointer")
        );
        assert_eq!(
            typed(r#" { "type" : "table" , "data": {}}"#).as_deref(),
            Some("table")
        );
        assert_eq!(
            typed(r#"{"name":"t","type":"pointer"}"#).as_deref(),
            Some("pointer")
        );
        assert_eq!(
            typed(r#"{"type":"poi\u006eter"}"#).as_deref(),
            Some("pointer")
        );
        assert_eq!(typed(r#"{"data":1}"#), None);
        assert_eq!(typed("[1,2]"), None);
        assert_eq!(typed("7"), None);
        assert_eq!(
            Json::Tree(json!({"type": "x"})).packed_type().as_deref(),
            Some("x")
        );
    }
}
