//! Python `json` compatibility: the exact bytes `json.dumps` writes and the inputs `json.loads` accepts.
//!
//! Why this exists: the AES-GCM plaintext of every miner message is the UTF-8 of
//! `json.dumps(P, ensure_ascii=False, sort_keys=True)` (byte-exact, see byteleap-protocol.md §2.6), and the
//! package, handshake and error JSON the validator returns are `json.dumps(...)` with the defaults. A Python
//! receiver only needs *valid* JSON, but the published test vectors (§9.4) pin the bytes, so we produce exactly
//! what CPython writes:
//!
//! - separators `", "` and `": "`, object keys sorted by code point (recursively),
//! - strings escaped as CPython does (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other controls as `\u00XX` in
//!   lower-case hex; with `ensure_ascii` every non-ASCII code point as `\uXXXX`, astral ones as surrogate pairs),
//! - integers in decimal, floats as `float.__repr__` (shortest round trip, `1e+16`, `1.5e-07`, `-0.0`) and the
//!   non-standard tokens `NaN`, `Infinity`, `-Infinity`.
//!
//! On the way in, [`loads`] accepts what CPython's `json.loads` accepts, including the `NaN`, `Infinity` and
//! `-Infinity` tokens that serde_json refuses, with a bounded nesting depth ([`MAX_DEPTH`]).
//!
//! Limits of the `serde_json::Value` model (documented, not silently different from what a miner sends):
//! - a `Value` cannot hold a non-finite float, so `NaN`/`Infinity`/`-Infinity` (and float literals that overflow,
//!   such as `1e400`, which Python reads as `inf`) are decoded as `Value::Null`;
//! - integers outside `i64`/`u64` (Python ints are unbounded) are decoded as the nearest `f64`;
//! - a `\uD800`-style lone surrogate escape (which Python keeps, but which no Python sender can encode to UTF-8)
//!   is refused, because a Rust `String` cannot hold it.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays/objects [`loads`] accepts. CPython stops near its recursion limit (~1000); real
/// miner payloads (heartbeats with system and GPU info) are well under ten levels deep.
pub const MAX_DEPTH: usize = 64;

/// Why a document was refused by [`loads`]. The texts follow CPython's `json.JSONDecodeError` messages
/// (`"Expecting value: line 1 column 1 (char 0)"`) so that error strings sent back to miners read the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: line {line} column {column} (char {pos})")]
pub struct JsonError {
    /// CPython's wording of the problem, e.g. `Expecting ',' delimiter`.
    pub msg: &'static str,
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in characters) of the offending character.
    pub column: usize,
    /// 0-based character (code point) offset of the offending character.
    pub pos: usize,
}

/// `json.dumps(value, ensure_ascii=..., sort_keys=True)` with the default separators.
///
/// Keys are always sorted (by code point, as Python compares `str`): `serde_json::Map` is a `BTreeMap` unless
/// someone enables serde_json's `preserve_order`, so we sort explicitly rather than rely on the map type.
pub fn dumps(value: &Value, ensure_ascii: bool) -> String {
    let mut out = String::new();
    write_value(&mut out, value, ensure_ascii);
    out
}

/// The session plaintext: `json.dumps(P, ensure_ascii=False, sort_keys=True)` (byteleap-protocol.md §2.6 step 1).
pub fn dumps_plaintext(value: &Value) -> String {
    dumps(value, false)
}

fn write_value(out: &mut String, value: &Value, ensure_ascii: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s, ensure_ascii),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, ensure_ascii);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Rust's `str` order is byte order of UTF-8, which equals code point order: Python's `sorted(keys)`.
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k, ensure_ascii);
                out.push_str(": ");
                write_value(out, v, ensure_ascii);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&float_repr(f));
    } else {
        // Unreachable without serde_json's `arbitrary_precision`; with it, keep the literal as written.
        out.push_str(&n.to_string());
    }
}

/// A JSON string literal as CPython's encoder writes it (`py_encode_basestring[_ascii]`).
pub fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                // CPython's ASCII encoder escapes everything above '~' (0x7F included).
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `json.dumps` of a Python float: `float.__repr__`, plus `NaN`, `Infinity`, `-Infinity`.
///
/// CPython's repr is the shortest digit string that round-trips (David Gay's mode 0). It is written in fixed
/// notation when the decimal exponent `decpt` (position of the decimal point relative to the first digit)
/// satisfies `-4 < decpt <= 16`, with `.0` appended to integral values, and otherwise as `d[.ddd]e±XX` with at
/// least two exponent digits. Rust's `{:e}` yields the same shortest digits; only the layout differs.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".to_owned() } else { "-Infinity".to_owned() };
    }
    // Shortest round-trip digits, e.g. "-1.5e-7", "1e16", "0e0". When the exact value lies halfway between two
    // candidate last digits, Rust's shortest mode rounds up where Gay's dtoa rounds half to even
    // (1517798323230249.25 → Rust "…249.3", Python "…249.2"), so re-round to the same number of digits with
    // Rust's exact (half-even) mode and keep that if it still round-trips.
    let shortest = format!("{f:e}");
    let ndigits = shortest.split('e').next().map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let exact = format!("{f:.prec$e}", prec = ndigits.saturating_sub(1));
    let sci = if exact.parse::<f64>().is_ok_and(|back| back == f) { exact } else { shortest };
    let (negative, body) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exp) = body.split_once('e').unwrap_or((body, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let ndigits = digits.len() as i32;
    let decpt = exp + 1;

    let mut out = String::with_capacity(24);
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if ndigits > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= ndigits {
        out.push_str(&digits);
        for _ in 0..(decpt - ndigits) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let split = decpt as usize;
        out.push_str(&digits[..split]);
        out.push('.');
        out.push_str(&digits[split..]);
    }
    out
}

/// Python's `str(x)` for the scalars that appear in error texts (`None`, `True`, `1.0`, the string itself).
/// Containers are rendered as JSON, which is close to (not exactly) Python's `repr` of a dict or list.
pub fn py_str(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(s) => s.clone(),
        other => dumps(other, false),
    }
}

/// `json.loads(text)` as CPython's C scanner does it, into a `serde_json::Value` (see the module docs for the
/// three things a `Value` cannot hold). Nesting deeper than [`MAX_DEPTH`] is refused.
pub fn loads(text: &str) -> Result<Value, JsonError> {
    let mut p = Parser { text, bytes: text.as_bytes(), pos: 0 };
    if text.starts_with('\u{feff}') {
        return Err(p.error("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0));
    }
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.error("Extra data", p.pos));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, msg: &'static str, byte_pos: usize) -> JsonError {
        let before = &self.text[..byte_pos.min(self.text.len())];
        let pos = before.chars().count();
        let (line, column) = match before.rfind('\n') {
            Some(nl) => (before.matches('\n').count() + 1, before[nl + 1..].chars().count() + 1),
            None => (1, pos + 1),
        };
        JsonError { msg, line, column, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        let start = self.pos;
        match self.peek() {
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'n') if self.eat("null") => Ok(Value::Null),
            Some(b't') if self.eat("true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(Value::Bool(false)),
            // Non-finite floats have no `Value` form: see the module docs.
            Some(b'N') if self.eat("NaN") => Ok(Value::Null),
            Some(b'I') if self.eat("Infinity") => Ok(Value::Null),
            Some(b'-') if self.eat("-Infinity") => Ok(Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().ok_or_else(|| self.error("Expecting value", start)),
            _ => Err(self.error("Expecting value", start)),
        }
    }

    /// `_match_number_unicode`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, where a dangling `.` or
    /// exponent is simply not part of the number (the caller then trips over it).
    fn number(&mut self) -> Option<Value> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            Some(b'0') => i += 1,
            _ => return None,
        }
        let mut is_float = false;
        if b.get(i) == Some(&b'.') && matches!(b.get(i + 1), Some(b'0'..=b'9')) {
            is_float = true;
            i += 1;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            let mut j = i + 1;
            if let Some(b'-' | b'+') = b.get(j) {
                j += 1;
            }
            let digits_start = j;
            while let Some(b'0'..=b'9') = b.get(j) {
                j += 1;
            }
            if j > digits_start {
                is_float = true;
                i = j;
            }
        }
        self.pos = i;
        let lexeme = &self.text[start..i];
        if !is_float {
            if let Ok(u) = lexeme.parse::<u64>() {
                return Some(Value::Number(u.into()));
            }
            if let Ok(v) = lexeme.parse::<i64>() {
                return Some(Value::Number(v.into()));
            }
            // Python keeps the exact big int; the nearest f64 is the best a `Value` can do.
        }
        // Rust's float parser is correctly rounded, like CPython's `float()`; overflow gives ±inf (as Python).
        let f: f64 = lexeme.parse().ok()?;
        Some(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of ordinary characters in one go.
            let run_start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.error("Unterminated string starting at", open)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc = self.pos;
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{08}',
                        Some(b'f') => '\u{0c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape(esc)?;
                            out.push(c);
                            continue;
                        }
                        None => return Err(self.error("Unterminated string starting at", open)),
                        Some(_) => return Err(self.error("Invalid \\escape", esc)),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.error("Invalid control character at", self.pos)),
            }
        }
    }

    /// Four hex digits after `\u`; `at` is where CPython reports a bad escape (the `u`).
    fn hex4(&mut self, at: usize) -> Result<u32, JsonError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("Invalid \\uXXXX escape", at))?;
        let mut v = 0u32;
        for d in digits {
            let nibble = (*d as char).to_digit(16).ok_or_else(|| self.error("Invalid \\uXXXX escape", at))?;
            v = v * 16 + nibble;
        }
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self, esc: usize) -> Result<char, JsonError> {
        let first = self.hex4(esc + 1)?;
        let code = if (0xd800..0xdc00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4(save + 1)?;
            if (0xdc00..0xe000).contains(&second) {
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            } else {
                // Python keeps both as separate (lone) code points; we cannot.
                return Err(self.error("Unpaired surrogate escape", esc));
            }
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("Unpaired surrogate escape", esc))
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("Nesting too deep", self.pos));
        }
        self.pos += 1; // '{'
        let mut map = Map::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("Expecting property name enclosed in double quotes", self.pos));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("Expecting ':' delimiter", self.pos));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            // Duplicate keys: the last one wins, as in a Python dict.
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                _ => return Err(self.error("Expecting ',' delimiter", self.pos)),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("Nesting too deep", self.pos));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                _ => return Err(self.error("Expecting ',' delimiter", self.pos)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn f(text: &str) -> f64 {
        text.parse().unwrap()
    }

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are CPython 3.11 `json.dumps(x)` output.
        let cases = [
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1.5e-07, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e22, "1e+22"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.5e-5, "2.5e-05"),
            (1700000000.0, "1700000000.0"),
            (1760021600.123456, "1760021600.123456"),
            (100.0, "100.0"),
            (1234567.891, "1234567.891"),
            (1e-7, "1e-07"),
            (9999999999999998.0, "9999999999999998.0"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(value), expected, "{value:?}");
        }
    }

    /// 2000 doubles (random bit patterns and random decimals) with CPython's `json.dumps` of each, generated once
    /// with `testdata/gen_float_repr.py`.
    #[test]
    fn float_repr_matches_python_corpus() {
        let corpus = include_str!("testdata/float_repr.txt");
        let mut n = 0;
        for line in corpus.lines() {
            let (bits, expected) = line.split_once(' ').unwrap();
            let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
            assert_eq!(float_repr(value), expected, "bits {bits}");
            n += 1;
        }
        assert!(n >= 2000);
    }

    #[test]
    fn dumps_sorts_recursively_and_keeps_utf8() {
        let v = json!({"b": [1, {"z": 1, "a": "é\u{2028}\u{7f}\u{1}\n\"\\/"}], "a": null, "A": true, "é": false,
                       "\u{e9}a": 1, "10": 2, "9": 3});
        // CPython: json.dumps(v, ensure_ascii=False, sort_keys=True)
        assert_eq!(
            dumps_plaintext(&v),
            "{\"10\": 2, \"9\": 3, \"A\": true, \"a\": null, \"b\": [1, {\"a\": \"é\u{2028}\u{7f}\\u0001\\n\\\"\\\\/\", \
             \"z\": 1}], \"é\": false, \"éa\": 1}"
        );
    }

    #[test]
    fn dumps_ascii_escapes_like_python() {
        // CPython: json.dumps({"k": "é😀\x1f\x7f"}) == '{"k": "\\u00e9\\ud83d\\ude00\\u001f\\u007f"}'
        assert_eq!(dumps(&json!({"k": "é😀\u{1f}\u{7f}"}), true), r#"{"k": "\u00e9\ud83d\ude00\u001f\u007f"}"#);
        // Control characters with short escapes.
        assert_eq!(dumps(&json!("\u{8}\u{c}\t\r"), true), r#""\b\f\t\r""#);
    }

    #[test]
    fn dumps_numbers_and_nesting() {
        let v = json!({"ints": [0, -1, 9007199254740993u64, u64::MAX, i64::MIN], "floats": [1.0, 1e16, 0.1, -0.0,
                       1.5e-07], "nested": [[[]], {}, [{"y": [], "x": {}}]]});
        assert_eq!(
            dumps_plaintext(&v),
            "{\"floats\": [1.0, 1e+16, 0.1, -0.0, 1.5e-07], \"ints\": [0, -1, 9007199254740993, \
             18446744073709551615, -9223372036854775808], \"nested\": [[[]], {}, [{\"x\": {}, \"y\": []}]]}"
        );
    }

    #[test]
    fn loads_accepts_python_tokens() {
        let v = loads(" [-0, -0.0, 1E5, 1e400, -1e400, NaN, -Infinity, Infinity, 18446744073709551616, 1.5e-07]\n")
            .unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a[0], json!(0));
        assert!(a[0].is_u64());
        assert_eq!(a[1].as_f64().unwrap().to_bits(), (-0.0f64).to_bits());
        assert_eq!(a[2], json!(100000.0));
        for item in &a[3..8] {
            assert!(item.is_null(), "non-finite decodes as null");
        }
        assert_eq!(a[8].as_f64(), Some(18446744073709551616.0));
        assert_eq!(a[9].as_f64(), Some(f("1.5e-07")));
    }

    #[test]
    fn loads_round_trips_through_dumps() {
        let text = "{\"a\": [1, 2.5, \"\\u00e9\\ud83d\\ude00\", {\"b\": null}], \"c\": true}";
        let v = loads(text).unwrap();
        assert_eq!(dumps(&v, true), text);
        // Duplicate keys: last wins.
        assert_eq!(loads(r#"{"a": 1, "a": 2}"#).unwrap(), json!({"a": 2}));
    }

    #[test]
    fn loads_error_texts_follow_python() {
        let cases = [
            ("", "Expecting value: line 1 column 1 (char 0)"),
            (" ", "Expecting value: line 1 column 2 (char 1)"),
            ("[1,]", "Expecting value: line 1 column 4 (char 3)"),
            ("{\"a\" 1}", "Expecting ':' delimiter: line 1 column 6 (char 5)"),
            ("{1: 2}", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"),
            ("1 2", "Extra data: line 1 column 3 (char 2)"),
            ("\"abc", "Unterminated string starting at: line 1 column 1 (char 0)"),
            ("\"a\u{1}\"", "Invalid control character at: line 1 column 3 (char 2)"),
            ("\"\\x\"", "Invalid \\escape: line 1 column 2 (char 1)"),
            ("[\n\"é\", 01]", "Expecting ',' delimiter: line 2 column 7 (char 8)"),
            ("1.", "Extra data: line 1 column 2 (char 1)"),
            ("-", "Expecting value: line 1 column 1 (char 0)"),
            ("+1", "Expecting value: line 1 column 1 (char 0)"),
            ("nan", "Expecting value: line 1 column 1 (char 0)"),
            ("\"\\ud800\"", "Unpaired surrogate escape: line 1 column 2 (char 1)"),
            ("\"\\u12\"", "Invalid \\uXXXX escape: line 1 column 3 (char 2)"),
            ("\u{feff}{}", "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"),
        ];
        for (text, expected) in cases {
            assert_eq!(loads(text).unwrap_err().to_string(), expected, "{text:?}");
        }
    }

    #[test]
    fn loads_bounds_nesting_depth() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(loads(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(loads(&deep).unwrap_err().msg, "Nesting too deep");
        let objects = "{\"a\":".repeat(100_000);
        assert_eq!(loads(&objects).unwrap_err().msg, "Nesting too deep");
        // A very deep document is refused without blowing the stack.
        let huge = "[".repeat(1_000_000);
        assert!(loads(&huge).is_err());
    }

    #[test]
    fn loads_never_panics_on_garbage() {
        let samples = [
            "\u{feff}{}",
            "{\"a\":",
            "[",
            "]",
            "{",
            "}",
            "\"\\",
            "\"\\u",
            "\"\\ud83d\\u",
            "tru",
            "-I",
            "1e",
            "1e+",
            "0.e1",
            "[NaN,Infinity,-Infinity]",
            "\u{0}",
            "{\"\\ud83d\\ude00\": 1}",
        ];
        for s in samples {
            let _ = loads(s);
        }
        // Every prefix of a valid document.
        let doc = r#"{"a": [1, -2.5e-3, "x\u00e9y", {"b": [true, false, null, NaN]}], "c": "\ud83d\ude00"}"#;
        for end in 0..=doc.len() {
            if doc.is_char_boundary(end) {
                let _ = loads(&doc[..end]);
            }
        }
        assert!(loads(doc).is_ok());
    }
}
