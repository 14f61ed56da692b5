// The conformance vectors (tests/vectors/executions.json) through a real engine.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use shmrepl::{ExecuteOptions, Kind, Start, Stream};

// ---- a minimal JSON reader (std only), enough for the vectors file ----------

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.get(key),
            _ => None,
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {:?}", other),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("not an array: {:?}", other),
        }
    }
    fn bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            other => panic!("not a bool: {:?}", other),
        }
    }
    fn int(&self) -> i64 {
        match self {
            Json::Num(n) if n.fract() == 0.0 => *n as i64,
            other => panic!("not an integer: {:?}", other),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn parse(text: &'a str) -> Result<Json, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("trailing data"));
        }
        Ok(v)
    }

    fn err(&self, what: &str) -> String {
        format!("JSON: {} at byte {}", what, self.i)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("bad literal"))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value()?;
                    if m.insert(k, v).is_some() {
                        return Err(self.err("duplicate key"));
                    }
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                text.parse::<f64>().map(Json::Num).map_err(|_| self.err("bad number"))
            }
            _ => Err(self.err("unexpected character")),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
        let v = u32::from_str_radix(std::str::from_utf8(h).map_err(|_| self.err("bad \\u"))?, 16)
            .map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or_else(|| self.err("unterminated string"))?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|_| self.err("invalid UTF-8")),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or_else(|| self.err("bad escape"))?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(self.err("lone surrogate"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("bad low surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or_else(|| self.err("bad code point"))?
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err(self.err("control character in string")),
                c => out.push(c),
            }
        }
    }
}

#[test]
fn json_reader_handles_the_shapes_it_needs() {
    let v = Parser::parse(r#" {"a": [1, -2.5e1, true, false, null], "s": "x\"\\\/\n\t\u00e9\ud83d\udc0d"} "#).unwrap();
    assert_eq!(v.get("a").unwrap().arr()[1], Json::Num(-25.0));
    assert_eq!(v.get("a").unwrap().arr()[4], Json::Null);
    assert_eq!(v.get("s").unwrap().str(), "x\"\\/\n\té🐍");
    assert!(Parser::parse("[1,]").is_err());
    assert!(Parser::parse("{\"a\":1} x").is_err());
    assert!(Parser::parse("\"\\ud83d\"").is_err());
    assert!(Parser::parse("{\"a\":1,\"a\":2}").is_err());
}

// ---- the vectors -------------------------------------------------------------

fn vectors_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/executions.json")
}

#[test]
fn conformance_vectors() {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e));
    let doc = Parser::parse(&text).unwrap();
    let vectors = doc.get("executions").expect("executions").arr();
    assert!(vectors.len() >= 2, "too few vectors in {}", path.display());

    let engine = common::Engine::start("vectors");
    let client = engine.client();
    let mut failures = Vec::new();
    let mut split_records = 0usize;
    for v in vectors {
        let name = v.get("name").unwrap().str();
        let client_id = v.get("client_execution_id").unwrap().str();
        let session = client.open_session().unwrap();
        let mut options = ExecuteOptions::new(&session, v.get("code").unwrap().str())
            .script(v.get("script").unwrap().bool())
            .client_execution_id(client_id);
        if let Some(cap) = v.get("ring_capacity") {
            options = options.ring_capacity(cap.int() as u64);
        }
        let execution = client.execute(&options).unwrap();
        let mut reader = execution.reader(Start::Oldest).unwrap();
        assert_eq!(reader.execution_id(), execution.id(), "{}: ring header id", name);
        let records = common::read_all(&mut reader);

        let mut problems: Vec<String> = Vec::new();
        let kinds: Vec<&str> = records.iter().map(|r| r.kind.name()).collect();
        let want_kinds: Vec<&str> = v.get("kinds").unwrap().arr().iter().map(|k| k.str()).collect();
        if kinds != want_kinds {
            problems.push(format!("kinds {:?}, want {:?}", kinds, want_kinds));
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut in_split = false;
        for (i, r) in records.iter().enumerate() {
            if r.seq != i as u64 {
                problems.push(format!("record {} has seq {}", i, r.seq));
            }
            if r.execution_id != execution.id() {
                problems.push(format!("record {} has execution id {} (want {})", i, r.execution_id, execution.id()));
            }
            if r.kind == Kind::Output {
                match r.stream {
                    Stream::Stdout => stdout.extend_from_slice(&r.data),
                    Stream::Stderr => stderr.extend_from_slice(&r.data),
                    other => problems.push(format!("record {}: OUTPUT on stream {:?}", i, other)),
                }
            }
            // Split writes: MORE opens or continues a chain, CONTINUED only inside one.
            let more = r.flags & shmrepl::ffi::SHMREPL_FLAG_MORE != 0;
            let continued = r.flags & shmrepl::ffi::SHMREPL_FLAG_CONTINUED != 0;
            if continued != in_split {
                problems.push(format!("record {}: flags {:#x} after a chain state {}", i, r.flags, in_split));
            }
            if more || continued {
                split_records += 1;
            }
            in_split = more;
        }
        if in_split {
            problems.push("the last chain never ends".to_string());
        }
        if stdout != v.get("stdout").unwrap().str().as_bytes() {
            problems.push(format!("stdout {:?}", String::from_utf8_lossy(&stdout)));
        }
        if stderr != v.get("stderr").unwrap().str().as_bytes() {
            problems.push(format!("stderr {:?}", String::from_utf8_lossy(&stderr)));
        }
        match records.first() {
            Some(first) if first.kind == Kind::Started => {
                if first.data != client_id.as_bytes() {
                    problems.push(format!("STARTED data {:?}", String::from_utf8_lossy(&first.data)));
                }
            }
            _ => problems.push("no STARTED first".to_string()),
        }
        match records.last() {
            Some(last) if last.kind == Kind::Finished => {
                let want = v.get("finish_status").unwrap().str();
                if last.finish_status.name() != want {
                    problems.push(format!("finish status {}, want {}", last.finish_status, want));
                }
                let want_exit = v.get("exit_code").unwrap().int();
                if last.exit_code != want_exit {
                    problems.push(format!("exit code {}, want {}", last.exit_code, want_exit));
                }
            }
            _ => problems.push("no FINISHED last".to_string()),
        }
        for r in records.iter().filter(|r| r.kind == Kind::Error) {
            if r.ename.is_empty() {
                problems.push("ERROR record without a type name".to_string());
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", name, problems.join("; ")));
        }
        drop(reader);
        drop(execution);
        session.close().unwrap();
    }
    assert!(failures.is_empty(), "vectors failed:\n{}", failures.join("\n"));
    // The file has a write larger than its ring's largest record.
    assert!(split_records > 0, "no split write (MORE/CONTINUED) in any vector");
}
