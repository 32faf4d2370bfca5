//! From Jupyter messages to the host's shapes (PROTOCOL.md sections 6 and 8): mime
//! bundles become packed values, `error` outputs become error messages with the line
//! the traceback names, and inputs become Python code that sets them.

use base64::Engine;
use serde_json::{json, Map, Value};

/// The packed value of an `execute_result` or `display_data` bundle (a map of mime
/// type to data): `application/json` as JSON, an image as an `image`, otherwise
/// `text/plain` as a `string`; `None` when the bundle has none of these.
pub(super) fn bundle_value(bundle: &Map<String, Value>) -> Option<Value> {
    if let Some(data) = bundle.get("application/json") {
        return Some(pack_json(data));
    }
    for mime in ["image/png", "image/jpeg", "image/gif"] {
        if let Some(Value::String(data)) = bundle.get(mime) {
            // Kernels may wrap base64 text across lines; a data URL may not.
            let data: String = data.split_whitespace().collect();
            return Some(json!({"type": "image", "src": format!("data:{mime};base64,{data}")}));
        }
    }
    if let Some(svg) = bundle.get("image/svg+xml") {
        let text = match svg {
            Value::String(text) => text.clone(),
            // Some kernels send multi-line data as a list of lines.
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
            _ => String::new(),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        return Some(
            json!({"type": "image", "src": format!("data:image/svg+xml;base64,{encoded}")}),
        );
    }
    match bundle.get("text/plain") {
        Some(Value::String(text)) => Some(json!({"type": "string", "data": text})),
        Some(Value::Array(lines)) => {
            let text: String = lines.iter().filter_map(Value::as_str).collect();
            Some(json!({"type": "string", "data": text}))
        }
        _ => None,
    }
}

/// A JSON value packed with its type (section 6's JSON-native types).
pub(super) fn pack_json(data: &Value) -> Value {
    let kind = match data {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    json!({"type": kind, "data": data})
}

/// Removes ANSI escape sequences (kernels colour their tracebacks).
pub(super) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // A CSI sequence ends at its first byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// The error message for a kernel's `error` output: `"<ename>: <evalue>"`, with the
/// line of the user's code where the traceback names one.
pub(super) fn error_message(ename: &str, evalue: &str, traceback: &[String]) -> Value {
    let text = match (ename.is_empty(), evalue.is_empty()) {
        // Shell kernels (bash_kernel) report a failing command as an error with no
        // name and its exit status as the value.
        (true, false) if evalue.trim().parse::<i64>().is_ok() => {
            format!("the code ended with exit status {}", evalue.trim())
        }
        (false, false) => format!("{ename}: {evalue}"),
        (false, true) => ename.to_string(),
        (true, false) => evalue.to_string(),
        (true, true) => "the kernel reported an error".to_string(),
    };
    let mut message = json!({"type": "error", "message": strip_ansi(&text)});
    if let Some(line) = traceback_line(traceback) {
        message["line"] = json!(line);
    }
    message
}

/// The line in the executed cell where the error happened, from an IPython
/// traceback: the last frame in the cell (`Cell In[3], line 2`, or `<cell line: 2>`
/// in IPython 8.0 to 8.4, or `File "<ipython-input-...>", line 2` before), or the
/// `line N` of a SyntaxError in the cell.
pub(super) fn traceback_line(traceback: &[String]) -> Option<u64> {
    let mut line = None;
    for entry in traceback {
        for text in strip_ansi(entry).lines() {
            let found = after(text, "Cell In[")
                .and_then(|rest| after(rest, "line "))
                .or_else(|| after(text, "<cell line: "))
                .or_else(|| after(text, "<ipython-input-").and_then(|rest| after(rest, "line ")))
                .or_else(|| {
                    // A SyntaxError's own location: `File "<string>", line 1` or
                    // `File "/tmp/ipykernel_1/12.py", line 1` (the cell's file).
                    let rest = after(text, "File \"")?;
                    let (file, rest) = rest.split_once('"')?;
                    let cell_file = file.starts_with('<')
                        || (file.contains("ipykernel_") && !file.contains("site-packages"));
                    if cell_file {
                        after(rest, "line ")
                    } else {
                        None
                    }
                });
            if let Some(number) = found.and_then(leading_number) {
                line = Some(number);
            }
        }
    }
    line
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|at| &text[at + marker.len()..])
}

fn leading_number(text: &str) -> Option<u64> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether `name` can be assigned in Python (an identifier, not a keyword).
fn is_python_name(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
        "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
        "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
        "try", "while", "with", "yield",
    ];
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

/// Python code that sets `inputs` (name → packed value) as variables of the kernel's
/// namespace: JSON-native values as themselves, big integers sent as decimal strings
/// as `int`, a `table` as a pandas `DataFrame` (a dict of column lists without
/// pandas). The values travel as one JSON string literal, never spliced into code.
/// `Err` says why an input cannot be set.
pub(super) fn python_inputs_code(inputs: &Map<String, Value>) -> Result<String, String> {
    for (name, packed) in inputs {
        if !is_python_name(name) {
            return Err(format!("input name '{name}' is not a Python identifier"));
        }
        let kind = packed.get("type").and_then(Value::as_str);
        match kind {
            Some(
                "null" | "boolean" | "integer" | "number" | "string" | "array" | "object",
            ) => {}
            Some("table") if packed.pointer("/data/columns").is_some_and(Value::is_array) => {}
            Some(other) => {
                return Err(format!(
                    "input '{name}' has type '{other}', which JupyterContext cannot set"
                ))
            }
            None => {
                return Err(format!(
                    "input '{name}' must be a packed value such as {{\"type\": \"integer\", \"data\": 1}}"
                ))
            }
        }
    }
    let payload =
        serde_json::to_string(&Value::Object(inputs.clone())).map_err(|error| error.to_string())?;
    // A JSON string literal is also a valid Python string literal: serde_json writes
    // non-ASCII as itself and escapes only quotes, backslashes and control characters.
    let literal = serde_json::to_string(&payload).map_err(|error| error.to_string())?;
    Ok(format!(
        r#"def __stencila_inputs(text):
    import json
    def unpack(packed):
        kind, data = packed.get("type"), packed.get("data")
        if kind == "integer" and isinstance(data, str):
            return int(data)
        if kind == "table":
            columns = {{c["name"]: c.get("values", []) for c in data["columns"]}}
            try:
                import pandas
            except ImportError:
                return columns
            return pandas.DataFrame(columns)
        return data
    return {{name: unpack(packed) for name, packed in json.loads(text).items()}}
globals().update(__stencila_inputs({literal}))
del __stencila_inputs
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn bundles_prefer_json_then_images_then_text() {
        assert_eq!(
            bundle_value(&bundle(
                json!({"application/json": {"a": 1}, "text/plain": "x"})
            )),
            Some(json!({"type": "object", "data": {"a": 1}}))
        );
        assert_eq!(
            bundle_value(&bundle(
                json!({"image/png": "iVBO\nRw==\n", "text/plain": "<Figure>"})
            )),
            Some(json!({"type": "image", "src": "data:image/png;base64,iVBORw=="}))
        );
        assert_eq!(
            bundle_value(&bundle(json!({"image/svg+xml": "<svg/>"}))),
            Some(json!({"type": "image", "src": "data:image/svg+xml;base64,PHN2Zy8+"}))
        );
        assert_eq!(
            bundle_value(&bundle(
                json!({"text/plain": "42", "text/html": "<b>42</b>"})
            )),
            Some(json!({"type": "string", "data": "42"}))
        );
        assert_eq!(bundle_value(&bundle(json!({"text/html": "<b/>"}))), None);
    }

    #[test]
    fn json_values_are_packed_by_type() {
        assert_eq!(pack_json(&json!(42))["type"], "integer");
        assert_eq!(pack_json(&json!(4.5))["type"], "number");
        assert_eq!(pack_json(&json!(null))["type"], "null");
        assert_eq!(pack_json(&json!([1]))["type"], "array");
        assert_eq!(pack_json(&json!(true))["type"], "boolean");
    }

    #[test]
    fn tracebacks_give_the_line_in_the_cell() {
        // IPython 8.5+, coloured.
        let traceback = vec![
            "\u{1b}[0;31m---------------------------------------------------------------------------\u{1b}[0m".to_string(),
            "\u{1b}[0;31mNameError\u{1b}[0m                                 Traceback (most recent call last)".to_string(),
            "Cell \u{1b}[0;32mIn[1], line 2\u{1b}[0m\n\u{1b}[1;32m      1\u{1b}[0m x \u{1b}[38;5;241m=\u{1b}[39m \u{1b}[38;5;241m1\u{1b}[39m\n\u{1b}[0;32m----> 2\u{1b}[0m y\n".to_string(),
            "\u{1b}[0;31mNameError\u{1b}[0m: name 'y' is not defined".to_string(),
        ];
        let message = error_message("NameError", "name 'y' is not defined", &traceback);
        assert_eq!(
            message,
            json!({"type": "error", "message": "NameError: name 'y' is not defined", "line": 2})
        );
        // The innermost frame in the cell wins.
        let nested = vec![
            "Cell In[4], line 3\n----> 3 f()".to_string(),
            "Cell In[4], line 2, in f()\n----> 2     return 1/0".to_string(),
        ];
        assert_eq!(traceback_line(&nested), Some(2));
        assert_eq!(
            traceback_line(&["Input In [2], in <cell line: 5>()".to_string()]),
            Some(5)
        );
        assert_eq!(
            traceback_line(&["  File \"/tmp/ipykernel_7/123.py\", line 1\n    1 +\n       ^\nSyntaxError: invalid syntax".to_string()]),
            Some(1)
        );
        assert_eq!(
            traceback_line(&["  File \"/usr/lib/python3/site-packages/x.py\", line 9".to_string()]),
            None
        );
        assert_eq!(traceback_line(&[]), None);
    }

    #[test]
    fn inputs_become_python_that_unpacks_json() {
        let inputs = bundle(
            json!({"x": {"type": "integer", "data": 1}, "s": {"type": "string", "data": "a\"b'\\\n"}}),
        );
        let code = python_inputs_code(&inputs).expect("code");
        assert!(code.contains("globals().update"), "{code}");
        for bad in [
            json!({"1x": {"type": "integer", "data": 1}}),
            json!({"class": {"type": "integer", "data": 1}}),
            json!({"x": {"type": "image", "src": "data:"}}),
            json!({"x": 1}),
        ] {
            assert!(python_inputs_code(&bundle(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_nameless_error_with_a_status_is_an_exit_status() {
        assert_eq!(
            error_message("", "2", &[])["message"],
            "the code ended with exit status 2"
        );
        assert_eq!(error_message("", "oops", &[])["message"], "oops");
        assert_eq!(error_message("E", "", &[])["message"], "E");
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(strip_ansi("\u{1b}[0;31mName\u{1b}[0mError"), "NameError");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
