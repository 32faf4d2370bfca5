//! Big values through the host (issue 9), out and in: `execute` of `list(range(N))` for
//! N = 10^4, 10^5, 10^6, of `'x' * 10_000_000` and of a 100,000 x 5 DataFrame (a
//! `table`, where the interpreter has pandas); then each of those values sent back as
//! an input (`execute {"code": "len(x)", "inputs": {"x": <the value>}}`). Every answer
//! is checked (length, shape), not just its status.
//!
//! These rows run on their own host, started with `HOST_ARGS`: the inline limit and
//! the body limit raised, so every value comes back inline and every input is accepted.

use crate::client::Connection;
use crate::{row, Host, Plan, Row};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The options of the host these rows run on.
pub(crate) const HOST_ARGS: &[&str] = &["--max-inline", "10000000,4G", "--max-body", "1G"];

/// Said in every row's note: why the values are inline although they exceed the defaults.
const INLINE: &str = "--max-inline 10000000,4G --max-body 1G";

/// Rows of the DataFrame.
const FRAME_ROWS: usize = 100_000;

/// Makes `df` (unmeasured), so the measured `execute` is the packing of the value alone.
const MAKE_FRAME: &str = "import numpy as np, pandas as pd\n\
n = 100_000\n\
df = pd.DataFrame({'i': np.arange(n), 'f': np.arange(n) * 0.5, 's': ['r%d' % k for k in range(n)], \
'b': np.arange(n) % 2 == 0, 'g': np.where(np.arange(n) % 10 == 0, np.nan, np.arange(n) / 3)})\n\
None";

/// One big value: the code that makes it, how to check it, and its size in elements.
struct Case {
    label: &'static str,
    code: String,
    elements: usize,
    check: fn(&Value, usize) -> Result<()>,
    /// Code run once before (unmeasured), e.g. to make a DataFrame.
    setup: Option<&'static str>,
    /// The code that takes the value back as input `x`, and what it must answer.
    input_code: &'static str,
    input_answer: Value,
}

fn check_array(value: &Value, n: usize) -> Result<()> {
    let data = value["data"].as_array().context("no array in the value")?;
    if value["type"] != "array" || data.len() != n {
        bail!(
            "expected an array of {n}, got {} of {}",
            value["type"],
            data.len()
        );
    }
    if n > 0 && data[n - 1] != json!(n - 1) {
        bail!("the last element is {}, not {}", data[n - 1], n - 1);
    }
    Ok(())
}

fn check_string(value: &Value, n: usize) -> Result<()> {
    let data = value["data"].as_str().context("no string in the value")?;
    if value["type"] != "string" || data.len() != n || !data.bytes().all(|b| b == b'x') {
        bail!(
            "expected a string of {n} x, got {} of {}",
            value["type"],
            data.len()
        );
    }
    Ok(())
}

/// Checks a 100,000 x 5 table (`_cells`, the element count, is rows x columns).
fn check_table(value: &Value, _cells: usize) -> Result<()> {
    let n = FRAME_ROWS;
    if value["type"] != "table" {
        bail!("expected a table, got {}", value["type"]);
    }
    let columns = value["data"]["columns"]
        .as_array()
        .context("a table without columns")?;
    let lengths: Vec<usize> = columns
        .iter()
        .map(|c| c["values"].as_array().map_or(0, Vec::len))
        .collect();
    if columns.len() != 5 || lengths.iter().any(|&l| l != n) {
        bail!("expected 5 columns of {n}, got lengths {lengths:?}");
    }
    Ok(())
}

fn cases(pandas: bool) -> Vec<Case> {
    let mut cases: Vec<Case> = [4u32, 5, 6]
        .into_iter()
        .map(|power| Case {
            label: match power {
                4 => "list(range(10^4))",
                5 => "list(range(10^5))",
                _ => "list(range(10^6))",
            },
            code: format!("list(range({}))", 10usize.pow(power)),
            elements: 10usize.pow(power),
            check: check_array,
            setup: None,
            input_code: "len(x)",
            input_answer: json!(10usize.pow(power)),
        })
        .collect();
    cases.push(Case {
        label: "'x' * 10_000_000",
        code: "'x' * 10_000_000".into(),
        elements: 10_000_000,
        check: check_string,
        setup: None,
        input_code: "len(x)",
        input_answer: json!(10_000_000),
    });
    if pandas {
        cases.push(Case {
            label: "100,000 x 5 DataFrame",
            code: "df".into(),
            elements: FRAME_ROWS * 5,
            check: check_table,
            setup: Some(MAKE_FRAME),
            input_code: "list(x.shape)",
            input_answer: json!([FRAME_ROWS, 5]),
        });
    }
    cases
}

/// How many measured runs a value of `elements` gets (after one unmeasured run).
fn repeats(plan: &Plan, elements: usize) -> usize {
    if elements <= 10_000 {
        plan.big_repeats * 5
    } else {
        plan.big_repeats
    }
}

/// What `measure` saw: latencies, the time taken, the last response body's length
/// and the last value.
struct Measured {
    latencies: Vec<Duration>,
    elapsed: Duration,
    bytes: usize,
    value: Value,
}

/// Sends `request` `times` times after one unmeasured run, checking each answer's value.
fn measure(
    connection: &mut Connection,
    request: &[u8],
    times: usize,
    check: &dyn Fn(&Value) -> Result<()>,
) -> Result<Measured> {
    let mut latencies = Vec::with_capacity(times);
    let mut bytes = 0;
    let mut value = Value::Null;
    let started = Instant::now();
    for i in 0..=times {
        let t = Instant::now();
        let response = connection.send(request)?;
        let elapsed = t.elapsed();
        if response.status != 200 {
            bail!("status {}: {}", response.status, short(&response.text()));
        }
        let mut result: Value = serde_json::from_slice(&response.body)?;
        if result["messages"] != json!([]) {
            bail!("messages: {}", short(&result["messages"].to_string()));
        }
        check(&result["value"])?;
        bytes = response.body.len();
        value = result["value"].take();
        if i > 0 {
            latencies.push(elapsed);
        }
    }
    Ok(Measured {
        latencies,
        elapsed: started.elapsed(),
        bytes,
        value,
    })
}

/// The first 300 characters of a text, for an error message.
pub(crate) fn short(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

fn execute_request(host: &Host, connection: &Connection, name: &str, body: &str) -> Vec<u8> {
    connection.build("PUT", &format!("/{name}!execute"), Some(&host.token), body)
}

fn per_element_ns(row: &Row, elements: usize) -> Option<f64> {
    row.percentile(0.5).map(|us| us * 1e3 / elements as f64)
}

/// "growth 10^4->10^6: ..." from the three list rows, in order.
fn growth(direction: &str, rows: &[(usize, f64)]) -> Option<String> {
    let (first, last) = (rows.first()?, rows.last()?);
    let time_ratio = last.1 / first.1.max(1e-9);
    let constants: Vec<String> = rows
        .iter()
        .map(|(n, us)| format!("{:.0} ns/element at {n}", us * 1e3 / *n as f64))
        .collect();
    Some(format!(
        "growth 10^4->10^6 ({direction}): x{time_ratio:.1} the time for x{} the elements (linear is x{}); {}",
        last.0 / first.0,
        last.0 / first.0,
        constants.join(", ")
    ))
}

/// The rows, out then in, and the growth lines. `errors` gets "row: why" for each row
/// that failed; the other rows still run.
pub(crate) fn rows(
    host: &Host,
    plan: &Plan,
    pandas: Result<(), String>,
    interpreter: &str,
    errors: &mut Vec<String>,
    figures: &mut Vec<String>,
) -> Result<Vec<Row>> {
    if let Err(why) = &pandas {
        println!("skipped the DataFrame rows: {why}");
    }
    let mut connection = host.connection()?;
    let name = host.create(&mut connection)?;
    let mut out_rows = Vec::new();
    let mut in_rows = Vec::new();
    let mut out_growth = Vec::new();
    let mut in_growth = Vec::new();
    for case in cases(pandas.is_ok()) {
        let out_label = format!("out: {}", case.label);
        let result = (|| -> Result<(Row, Value)> {
            if let Some(setup) = case.setup {
                let request = execute_request(
                    host,
                    &connection,
                    &name,
                    &json!({ "code": setup }).to_string(),
                );
                let response = connection.send(&request)?;
                let result: Value = serde_json::from_slice(&response.body)?;
                if response.status != 200 || result["messages"] != json!([]) {
                    bail!("setup failed: {}", short(&response.text()));
                }
            }
            let body = json!({ "code": case.code }).to_string();
            let request = execute_request(host, &connection, &name, &body);
            let check = |value: &Value| (case.check)(value, case.elements);
            let m = measure(
                &mut connection,
                &request,
                repeats(plan, case.elements),
                &check,
            )?;
            let mut r = row(&out_label, m.latencies, m.elapsed, String::new());
            r.bytes = Some(m.bytes as u64);
            let per = per_element_ns(&r, case.elements).unwrap_or(0.0);
            r.note = format!(
                "p50 {:.1} ms, {per:.0} ns/element; {interpreter}; inline via {INLINE}",
                r.percentile(0.5).unwrap_or(0.0) / 1e3
            );
            Ok((r, m.value))
        })();
        let (out_row, value) = match result {
            Ok(pair) => pair,
            Err(e) => {
                errors.push(format!("{out_label}: {e:#}"));
                continue;
            }
        };
        if case.label.starts_with("list") {
            if let Some(p50) = out_row.percentile(0.5) {
                out_growth.push((case.elements, p50));
            }
        }
        out_rows.push(out_row);

        let in_label = format!("in: {}", case.label);
        let (code, want) = (case.input_code, &case.input_answer);
        let result = (|| -> Result<Row> {
            let body = json!({ "code": code, "inputs": { "x": value } }).to_string();
            let request = execute_request(host, &connection, &name, &body);
            let check = |value: &Value| {
                if value["data"] != *want {
                    bail!("{code} gave {}, not {want}", short(&value.to_string()));
                }
                Ok(())
            };
            let m = measure(
                &mut connection,
                &request,
                repeats(plan, case.elements),
                &check,
            )?;
            let mut r = row(&in_label, m.latencies, m.elapsed, String::new());
            r.bytes = Some(body.len() as u64);
            let per = per_element_ns(&r, case.elements).unwrap_or(0.0);
            r.note = format!(
                "p50 {:.1} ms, {per:.0} ns/element; bytes are the request's; `{code}`",
                r.percentile(0.5).unwrap_or(0.0) / 1e3
            );
            Ok(r)
        })();
        match result {
            Ok(r) => {
                if case.label.starts_with("list") {
                    if let Some(p50) = r.percentile(0.5) {
                        in_growth.push((case.elements, p50));
                    }
                }
                in_rows.push(r);
            }
            Err(e) => errors.push(format!("{in_label}: {e:#}")),
        }
    }
    host.delete(&mut connection, &name)?;
    figures.extend(growth("out", &out_growth));
    figures.extend(growth("in", &in_growth));
    out_rows.extend(in_rows);
    Ok(out_rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_must_have_every_element() {
        assert!(check_array(&json!({"type": "array", "data": [0, 1, 2]}), 3).is_ok());
        assert!(check_array(&json!({"type": "array", "data": [0, 1]}), 3).is_err());
        assert!(check_array(&json!({"type": "array", "data": [0, 1, 7]}), 3).is_err());
        assert!(check_array(&json!({"type": "string", "data": [0, 1, 2]}), 3).is_err());
    }

    #[test]
    fn a_table_must_be_100000_by_5() {
        let column = json!({"name": "a", "type": "integer", "values": vec![0; FRAME_ROWS]});
        let table =
            |n: usize| json!({"type": "table", "data": {"columns": vec![column.clone(); n]}});
        assert!(check_table(&table(5), FRAME_ROWS * 5).is_ok());
        assert!(check_table(&table(4), FRAME_ROWS * 5).is_err());
        let short = json!({"name": "a", "type": "integer", "values": [1]});
        let mut uneven = table(5);
        uneven["data"]["columns"][2] = short;
        assert!(check_table(&uneven, FRAME_ROWS * 5).is_err());
    }

    #[test]
    fn a_string_must_be_all_x() {
        assert!(check_string(&json!({"type": "string", "data": "xxx"}), 3).is_ok());
        assert!(check_string(&json!({"type": "string", "data": "xxy"}), 3).is_err());
    }

    #[test]
    fn growth_shows_the_ratio_and_the_constant() {
        let line = growth("out", &[(10_000, 5_000.0), (1_000_000, 550_000.0)]).expect("a line");
        assert!(
            line.starts_with("growth 10^4->10^6 (out): x110.0"),
            "{line}"
        );
        assert!(line.contains("500 ns/element at 10000"), "{line}");
        assert!(line.contains("550 ns/element at 1000000"), "{line}");
        assert!(growth("in", &[]).is_none());
    }
}
