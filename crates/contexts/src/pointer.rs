//! Values too large to send inline (PROTOCOL.md section 9): the inline limit every
//! context type applies, the `pointer` value that replaces a large table, and the
//! argument of `fetch`, which pages through the table a pointer names.
//!
//! A context keeps the large value under a name (SQL: a temporary table; Python and
//! JavaScript: a variable, or a hidden holder for an unnamed value) and answers with
//! `{"type": "pointer", "name", "valueType": "table", "rows", "preview"}`. The host
//! core adds `instance` (a context does not know its own name) and resolves pointers
//! passed as inputs (`stencila_host`'s `pointers` module).

use serde_json::{json, Value};
use stencila_host::HostError;

/// Rows in a pointer's preview.
pub const PREVIEW_ROWS: usize = 20;

/// Rows in a `fetch` page when the caller gives no `limit`.
pub const FETCH_LIMIT: usize = 1_000;

/// How many hidden holders (values kept for pointers that no variable names) a
/// context keeps; older ones are dropped, and a pointer to one is then an error.
pub const HOLDERS_KEPT: usize = 10;

/// The largest value a context sends inline; a larger table comes back as a pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineLimit {
    /// The most rows of a table sent inline.
    pub rows: usize,
    /// The most bytes of JSON of a table sent inline.
    pub bytes: usize,
}

impl Default for InlineLimit {
    /// 10,000 rows or 8 MiB, as PROTOCOL.md section 9 says.
    fn default() -> Self {
        InlineLimit {
            rows: 10_000,
            bytes: 8 << 20,
        }
    }
}

impl InlineLimit {
    /// Whether a table of `rows` rows whose packed JSON takes `bytes` bytes is too
    /// large to send inline.
    pub fn exceeded(&self, rows: usize, bytes: usize) -> bool {
        rows > self.rows || bytes > self.bytes
    }
}

/// The pointer value for a table kept as `name`, without `instance` (the host adds it).
pub fn pointer(name: &str, rows: usize, preview: Value) -> Value {
    json!({"type": "pointer", "name": name, "valueType": "table", "rows": rows, "preview": preview})
}

/// The length of `value`'s JSON text, without building it.
pub fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The argument of `fetch`: `{"name", "offset"?, "limit"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchArg {
    pub name: String,
    pub offset: usize,
    pub limit: usize,
}

impl FetchArg {
    /// Reads and checks `fetch`'s argument (offset 0 and limit [`FETCH_LIMIT`] by default).
    pub fn parse(arg: &Value) -> Result<FetchArg, HostError> {
        let name = arg
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                HostError::BadArgument(
                    "fetch needs `name`, the name in a pointer value (a non-empty string)".into(),
                )
            })?;
        let count = |key: &str, default: usize| match arg.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    HostError::BadArgument(format!(
                        "fetch: `{key}` must be a whole number of rows, 0 or more"
                    ))
                }),
        };
        Ok(FetchArg {
            name: name.to_string(),
            offset: count("offset", 0)?,
            limit: count("limit", FETCH_LIMIT)?,
        })
    }

    /// The argument as JSON, all fields given (what a worker receives).
    pub fn to_value(&self) -> Value {
        json!({"name": self.name, "offset": self.offset, "limit": self.limit})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_defaults_and_errors() {
        let arg = FetchArg::parse(&json!({"name": "t"})).expect("valid");
        assert_eq!((arg.offset, arg.limit), (0, FETCH_LIMIT));
        let arg = FetchArg::parse(&json!({"name": "t", "offset": 5, "limit": 2})).expect("valid");
        assert_eq!((arg.offset, arg.limit), (5, 2));
        assert!(FetchArg::parse(&json!({})).is_err());
        assert!(FetchArg::parse(&json!({"name": "t", "offset": -1})).is_err());
        assert!(FetchArg::parse(&json!({"name": "t", "limit": 1.5})).is_err());
    }

    #[test]
    fn size_and_limit() {
        assert_eq!(json_size(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#.len());
        let limit = InlineLimit { rows: 2, bytes: 10 };
        assert!(!limit.exceeded(2, 10));
        assert!(limit.exceeded(3, 1));
        assert!(limit.exceeded(1, 11));
    }
}
