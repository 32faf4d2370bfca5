//! Big values over HTTP (issue 9): arrays, strings, numpy arrays and DataFrames that the
//! Python worker packs at C speed (pre-encoded chunks) arrive whole and exact, in the
//! forms of PROTOCOL.md section 6 (NaN and infinities null, unsafe integers as strings).

use serde_json::{json, Value};
use stencila_tests::HostProcess;

/// A host with one PythonContext and a token.
struct Session {
    host: HostProcess,
    token: String,
}

impl Session {
    fn new(args: &[&str]) -> Session {
        let host = HostProcess::start(args);
        let token = host.token();
        let created = host.request("POST", "/PythonContext").cookie(&token).send();
        assert_eq!(created.status, 200, "{}", created.text());
        Session { host, token }
    }

    fn execute(&self, code: &str) -> Value {
        let response = self
            .host
            .request("PUT", "/pythonContext1!execute")
            .cookie(&self.token)
            .json(&json!({ "code": code }))
            .send();
        assert_eq!(response.status, 200, "{:.2000}", response.text());
        let result = response.json();
        assert_eq!(result["messages"], json!([]), "{code}: {result:.2000}");
        result
    }

    /// The packed value of `code`'s last expression.
    fn value(&self, code: &str) -> Value {
        self.execute(code)["value"].clone()
    }

    fn has(&self, module: &str) -> bool {
        let response = self
            .host
            .request("PUT", "/pythonContext1!execute")
            .cookie(&self.token)
            .json(&json!({ "code": format!("import {module}") }))
            .send();
        response.json()["messages"] == json!([])
    }
}

fn data_of(value: &Value) -> &Vec<Value> {
    value["data"].as_array().expect("an array")
}

#[test]
fn big_arrays_of_numbers_and_strings_arrive_exact() {
    let s = Session::new(&[]);

    let ints = s.value("list(range(-1000, 200000))");
    assert_eq!(ints["type"], "array");
    let expected: Vec<Value> = (-1000..200_000).map(|i| json!(i)).collect();
    assert_eq!(data_of(&ints), &expected);

    // Unsafe integers are decimal strings, bools stay booleans, wherever they are.
    let mixed = s.value("list(range(100)) + [2**53 - 1, 2**53, -(2**53), True, 1]");
    let tail = &data_of(&mixed)[100..];
    assert_eq!(
        tail,
        &[
            json!(9_007_199_254_740_991_i64),
            json!("9007199254740992"),
            json!("-9007199254740992"),
            json!(true),
            json!(1)
        ]
    );
    let bools = s.value("[1, True] * 100");
    assert_eq!(data_of(&bools)[..2], [json!(1), json!(true)]);
    assert_eq!(data_of(&bools).len(), 200);

    // NaN and infinities are null; the numbers around them are kept.
    let floats =
        s.value("v = [i / 4 for i in range(100000)]\nv[10] = float('nan')\nv[20] = float('inf')\nv[30] = -float('inf')\nv");
    let data = data_of(&floats);
    assert_eq!(data.len(), 100_000);
    for (i, item) in data.iter().enumerate() {
        if [10, 20, 30].contains(&i) {
            assert_eq!(item, &Value::Null, "item {i}");
        } else {
            // Quarters are exact in binary and in decimal.
            assert_eq!(item.as_f64(), Some(i as f64 / 4.0), "item {i}");
        }
    }

    // Strings with quotes, backslashes, control and non-ASCII characters.
    let strings = s.value("['say \"hi\" %d' % i for i in range(50000)] + ['tab\\there', 'back\\\\slash', 'é日本', '']");
    let data = data_of(&strings);
    assert_eq!(data.len(), 50_004);
    assert_eq!(data[7], json!("say \"hi\" 7"));
    assert_eq!(
        data[50_000..],
        [
            json!("tab\there"),
            json!("back\\slash"),
            json!("é日本"),
            json!("")
        ]
    );

    let long = s.value("'x' * 10**7");
    assert_eq!(long["type"], "string");
    let text = long["data"].as_str().expect("a string");
    assert!(text.len() == 10_000_000 && text.bytes().all(|b| b == b'x'));
    let escaped = s.value("'a\"b\\\\c\\n' * 100000");
    assert_eq!(escaped["data"], json!("a\"b\\c\n".repeat(100_000)));
}

#[test]
fn numpy_arrays_and_dataframes_arrive_exact() {
    let s = Session::new(&["--max-inline", "100000,64M"]);
    if !s.has("numpy") || !s.has("pandas") {
        eprintln!("numpy or pandas is not installed; skipping the numpy and DataFrame checks");
        return;
    }
    let array = s.value("import numpy\nnumpy.arange(100000, dtype='int64') * 3");
    assert_eq!(array["type"], "array");
    let expected: Vec<Value> = (0..100_000).map(|i| json!(i * 3)).collect();
    assert_eq!(data_of(&array), &expected);

    let table = s.value(
        "import pandas\nrows = 20000\nf = numpy.arange(rows) / 8\nf[::100] = numpy.nan\n\
         pandas.DataFrame({'i': numpy.arange(rows), 'f': f, 's': ['n%d' % i for i in range(rows)], \
         'b': numpy.arange(rows) % 2 == 0, 't': pandas.date_range('2020-01-01', periods=rows, freq='min')})",
    );
    assert_eq!(table["type"], "table", "{table:.2000}");
    let columns = table["data"]["columns"].as_array().expect("columns");
    let types: Vec<&str> = columns
        .iter()
        .map(|c| c["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(types, ["integer", "number", "string", "boolean", "string"]);
    let values = |index: usize| columns[index]["values"].as_array().expect("values");
    assert!(columns
        .iter()
        .all(|c| c["values"].as_array().map(Vec::len) == Some(20_000)));
    assert_eq!(values(0)[19_999], json!(19_999));
    assert_eq!(values(1)[0], Value::Null);
    assert_eq!(values(1)[3], json!(0.375));
    assert_eq!(values(1)[100], Value::Null);
    assert_eq!(values(2)[123], json!("n123"));
    assert_eq!(values(3)[..2], [json!(true), json!(false)]);
    assert_eq!(values(4)[61], json!("2020-01-01 01:01:00"));
}
