//! Splits SQL text into statements the way SQLite's `sqlite3_complete` sees them
//! (strings, quoted names, comments and `CREATE TRIGGER ... END;` bodies kept whole),
//! so each statement can be prepared alone and the 2018 extension `name = SELECT ...`
//! recognised at a statement's start. SQLite still parses every statement itself.

/// One statement of the code: where it starts and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    /// Byte offset of `text` in the whole code.
    pub start: usize,
    /// The statement, with its `;` when it has one, comments included.
    pub text: &'a str,
    /// Byte offset, within `text`, of its first token (after whitespace and comments).
    pub first_token: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Semi = 0,
    Space = 1,
    Other = 2,
    Explain = 3,
    Create = 4,
    Temp = 5,
    Trigger = 6,
    End = 7,
}

/// `sqlite3_complete`'s state machine: states 0 INVALID, 1 START, 2 NORMAL,
/// 3 EXPLAIN, 4 CREATE, 5 TRIGGER, 6 SEMI, 7 END; a `;` that leads to START ends a
/// statement.
const TRANSITIONS: [[u8; 8]; 8] = [
    //  SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END
    [1, 0, 2, 3, 4, 2, 2, 2], // 0 INVALID
    [1, 1, 2, 3, 4, 2, 2, 2], // 1 START
    [1, 2, 2, 2, 2, 2, 2, 2], // 2 NORMAL
    [1, 3, 3, 2, 4, 2, 2, 2], // 3 EXPLAIN
    [1, 4, 2, 2, 2, 4, 5, 2], // 4 CREATE
    [6, 5, 5, 5, 5, 5, 5, 5], // 5 TRIGGER
    [6, 6, 5, 5, 5, 5, 5, 7], // 6 SEMI
    [1, 7, 5, 5, 5, 5, 5, 5], // 7 END
];

const START: u8 = 1;

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// The next token at `at` and where it ends.
fn token(code: &[u8], at: usize) -> (Token, usize) {
    let rest = &code[at..];
    let end_of = |close: u8, from: usize| {
        rest[from..]
            .iter()
            .position(|&b| b == close)
            .map_or(code.len(), |p| at + from + p + 1)
    };
    match rest[0] {
        b';' => (Token::Semi, at + 1),
        b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => (Token::Space, at + 1),
        b'/' if rest.get(1) == Some(&b'*') => {
            let end = rest[2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(code.len(), |p| at + 2 + p + 2);
            (Token::Space, end)
        }
        b'-' if rest.get(1) == Some(&b'-') => (Token::Space, end_of(b'\n', 2)),
        b'[' => (Token::Other, end_of(b']', 1)),
        quote @ (b'\'' | b'"' | b'`') => (Token::Other, end_of(quote, 1)),
        byte if is_identifier_byte(byte) => {
            let length = rest
                .iter()
                .position(|&b| !is_identifier_byte(b))
                .unwrap_or(rest.len());
            let word = &rest[..length];
            let kind = if word.eq_ignore_ascii_case(b"create") {
                Token::Create
            } else if word.eq_ignore_ascii_case(b"temp") || word.eq_ignore_ascii_case(b"temporary")
            {
                Token::Temp
            } else if word.eq_ignore_ascii_case(b"trigger") {
                Token::Trigger
            } else if word.eq_ignore_ascii_case(b"end") {
                Token::End
            } else if word.eq_ignore_ascii_case(b"explain") {
                Token::Explain
            } else {
                Token::Other
            };
            (kind, at + length)
        }
        _ => (Token::Other, at + 1),
    }
}

/// The statements of `code`, in order; pieces of only whitespace and comments are
/// left out. The last may lack its `;`.
pub(crate) fn statements(code: &str) -> Vec<Piece<'_>> {
    let bytes = code.as_bytes();
    let mut pieces = Vec::new();
    let mut state = START;
    let mut start = 0;
    let mut first_token = None;
    let mut at = 0;
    while at < bytes.len() {
        let (kind, end) = token(bytes, at);
        if kind != Token::Space && kind != Token::Semi && first_token.is_none() {
            first_token = Some(at - start);
        }
        state = TRANSITIONS[usize::from(state)][kind as usize];
        at = end;
        if kind == Token::Semi && state == START {
            if let Some(first) = first_token.take() {
                pieces.push(Piece {
                    start,
                    text: &code[start..at],
                    first_token: first,
                });
            }
            start = at;
        }
    }
    if let Some(first) = first_token {
        pieces.push(Piece {
            start,
            text: &code[start..],
            first_token: first,
        });
    }
    pieces
}

/// The named parameters of `code` (`:x`, `@x`, `$x`, as SQLite binds them) outside
/// strings, quoted names and comments: the names without their prefix, in first-use
/// order, each once. What the dependency analysis reports as a query's inputs.
pub(crate) fn parameters(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut names: Vec<String> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (_, end) = token(bytes, at);
        if !matches!(bytes[at], b':' | b'@' | b'$') {
            at = end;
            continue;
        }
        let start = at + 1;
        let stop = bytes[start..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80))
            .map_or(bytes.len(), |p| start + p);
        // Both ends sit on ASCII bytes (or the end), so the slice is whole characters.
        let name = &code[start..stop];
        if !name.is_empty() && !names.iter().any(|known| known == name) {
            names.push(name.to_string());
        }
        at = end.max(stop);
    }
    names
}

/// The 2018 extension `name = SELECT ...` (also `WITH` and `VALUES`): the name and
/// the byte offset, within the statement, where the query starts.
pub(crate) fn assignment(piece: &Piece<'_>) -> Option<(String, usize)> {
    let text = &piece.text[piece.first_token..];
    let name_length = text
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(text.len());
    let name = &text[..name_length];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let after_name = text[name_length..].trim_start();
    let query = after_name.strip_prefix('=')?.trim_start();
    // `==` is a comparison, never an assignment.
    if query.starts_with('=') {
        return None;
    }
    let keyword_length = query
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(query.len());
    let keyword = &query[..keyword_length];
    let is_query = ["select", "with", "values"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k));
    is_query.then(|| {
        let offset = piece.text.len() - query.len();
        (name.to_string(), offset)
    })
}
