//! `SqliteContext`'s primitives for the 2018 clients' methods ([`crate::legacy`]).
//! The dependency analysis of SQL is what fits the language (PROTOCOL.md section 13):
//! a query's inputs are its named parameters (`:x`, `@x`, `$x`), its output the name
//! a final `name = SELECT ...` keeps. `evaluate` keeps the default (SQL has no
//! functions of the namespace to call).

use super::split::{assignment, parameters, statements};
use super::SqliteContext;
use crate::legacy::{Analysis, LegacyPrimitives};
use serde_json::{json, Map, Value};
use stencila_host::{BoxFuture, HostError, Instance};

/// Analyses SQL text without running it.
pub(crate) fn analyse_sql(code: &str, expr_only: bool) -> Analysis {
    let pieces = statements(code);
    if expr_only && !is_one_query(code) {
        return Analysis {
            messages: vec![json!({
                "type": "error",
                "message": "exprOnly: the code must be a single query (SELECT, WITH or VALUES) that assigns nothing",
            })],
            ..Analysis::default()
        };
    }
    Analysis {
        inputs: parameters(code),
        output: pieces.last().and_then(assignment).map(|(name, _)| name),
        messages: Vec::new(),
    }
}

/// Whether `code` is exactly one statement, a query that is not an assignment.
fn is_one_query(code: &str) -> bool {
    let pieces = statements(code);
    let [piece] = pieces.as_slice() else {
        return false;
    };
    if assignment(piece).is_some() {
        return false;
    }
    let text = &piece.text[piece.first_token..];
    let keyword_length = text
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let keyword = &text[..keyword_length];
    ["select", "with", "values"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
}

impl LegacyPrimitives for SqliteContext {
    fn execute(
        &self,
        code: String,
        inputs: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move {
            SqliteContext::execute(self, json!({"code": code, "inputs": inputs})).await
        })
    }

    fn get(&self, name: String) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move { Instance::call(self, "get", json!({ "name": name })).await })
    }

    fn analyse(&self, code: String, expr_only: bool) -> BoxFuture<'_, Result<Analysis, HostError>> {
        Box::pin(async move { Ok(analyse_sql(&code, expr_only)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysed(code: &str) -> (Vec<String>, Option<String>) {
        let analysis = analyse_sql(code, false);
        assert!(analysis.messages.is_empty(), "{code}: {analysis:?}");
        (analysis.inputs, analysis.output)
    }

    #[test]
    fn parameters_are_inputs_in_first_use_order_and_assignment_is_the_output() {
        assert_eq!(
            analysed("t = SELECT * FROM data WHERE a > $low AND b < :high AND c = @low"),
            (
                vec!["low".to_string(), "high".to_string()],
                Some("t".to_string())
            )
        );
        assert_eq!(analysed("SELECT 1"), (vec![], None));
        // Only the last statement's assignment is the output.
        assert_eq!(
            analysed("t = SELECT 1; SELECT * FROM t WHERE x = :x"),
            (vec!["x".to_string()], None)
        );
    }

    #[test]
    fn parameter_look_alikes_in_strings_names_and_comments_are_not_inputs() {
        assert_eq!(
            analysed("SELECT ':a', \"$b\", [@c] -- :d\n /* $e */ FROM t WHERE f = ':g' AND h = :h"),
            (vec!["h".to_string()], None)
        );
        // A `$` inside a name is part of the name, not a parameter.
        assert_eq!(analysed("SELECT a$b FROM t"), (vec![], None));
    }

    #[test]
    fn expr_only_accepts_one_query_and_refuses_the_rest() {
        assert!(analyse_sql("SELECT :x + 1", true).messages.is_empty());
        assert!(analyse_sql("WITH a AS (SELECT 1) SELECT * FROM a", true)
            .messages
            .is_empty());
        for code in [
            "t = SELECT 1",
            "SELECT 1; SELECT 2",
            "CREATE TABLE t (a)",
            "",
        ] {
            let analysis = analyse_sql(code, true);
            assert_eq!(analysis.messages.len(), 1, "{code}");
            assert_eq!(analysis.messages[0]["type"], "error");
        }
    }
}
