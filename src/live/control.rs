//! The control protocol: one JSON object per line in, one reply per line out.
//!
//! Commands: `{"cmd":"new_exam"}`, `{"cmd":"reset"}`, `{"cmd":"quit"}`,
//! `{"cmd":"clinical","values":{"age":63}}`, `{"cmd":"roi","x":..,"y":..,"w":..,"h":..}`
//! and `{"cmd":"roi","auto":true}`. Replies are `{"reply":"ok","cmd":NAME}` or
//! `{"reply":"error","cmd":NAME,"message":TEXT}`; a command that fails changes nothing.
//! Blank lines are ignored. `cmd` is empty in the reply to a line that names no known
//! command.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use serde::Serialize;
use serde_json::Value;

use crate::geometry::Rect;

/// Maximum length of a command line, bytes; a longer line is rejected and skipped.
pub const MAX_LINE_BYTES: u64 = 64 * 1024;
/// Most clinical values one command may set.
const MAX_CLINICAL_VALUES: usize = 64;

/// A parsed control command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Starts a new patient's exam: clears curves, results, clinical values and the ROI
    /// set by command.
    NewExam,
    /// Starts the current patient's exam again (a second injection): clears curves and
    /// results, keeps the clinical values.
    Reset,
    /// Sets clinical values by variable name, added to those already set.
    Clinical(BTreeMap<String, f64>),
    /// Measures the curve in this ROI from now on.
    Roi(Rect),
    /// Proposes the ROI automatically at the peak.
    AutoRoi,
    Quit,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::NewExam => "new_exam",
            Command::Reset => "reset",
            Command::Clinical(_) => "clinical",
            Command::Roi(_) | Command::AutoRoi => "roi",
            Command::Quit => "quit",
        }
    }

    /// Parses one line.
    ///
    /// # Errors
    /// A message naming the field that is missing or invalid, with the expected form.
    pub fn parse(line: &str) -> Result<Command, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(object) = value else {
            return Err("expected a JSON object such as {\"cmd\":\"new_exam\"}".to_string());
        };
        let Some(name) = object.get("cmd").and_then(Value::as_str) else {
            return Err("missing string field `cmd`".to_string());
        };
        let allowed: &[&str] = match name {
            "new_exam" | "reset" | "quit" => &["cmd"],
            "clinical" => &["cmd", "values"],
            "roi" => &["cmd", "x", "y", "w", "h", "auto"],
            other => {
                return Err(format!(
                    "unknown command `{other}`: expected new_exam, reset, clinical, roi or quit"
                ))
            }
        };
        if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("unknown field `{extra}` for command `{name}`"));
        }

        match name {
            "new_exam" => Ok(Command::NewExam),
            "reset" => Ok(Command::Reset),
            "quit" => Ok(Command::Quit),
            "clinical" => parse_clinical(object.get("values")),
            _ => parse_roi(&object),
        }
    }
}

fn parse_clinical(values: Option<&Value>) -> Result<Command, String> {
    let Some(Value::Object(values)) = values else {
        return Err("`clinical` needs an object `values` of numbers, such as {\"age\":63}".into());
    };
    if values.len() > MAX_CLINICAL_VALUES {
        return Err(format!(
            "{} clinical values exceed the limit of {MAX_CLINICAL_VALUES}",
            values.len()
        ));
    }
    let mut parsed = BTreeMap::new();
    for (name, value) in values {
        let number = value
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("clinical value `{name}` is {value}, not a finite number"))?;
        parsed.insert(name.clone(), number);
    }
    Ok(Command::Clinical(parsed))
}

fn parse_roi(object: &serde_json::Map<String, Value>) -> Result<Command, String> {
    match object.get("auto") {
        Some(Value::Bool(true)) if object.len() == 2 => return Ok(Command::AutoRoi),
        Some(Value::Bool(true)) => {
            return Err("`roi` takes either \"auto\":true or x, y, w and h, not both".into())
        }
        Some(other) => return Err(format!("`auto` is {other}: only true is accepted")),
        None => {}
    }
    let field = |name: &str| -> Result<u32, String> {
        let value = object
            .get(name)
            .ok_or_else(|| format!("`roi` needs x, y, w and h in pixels: `{name}` is missing"))?;
        value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("ROI `{name}` is {value}, not a pixel count"))
    };
    let roi = Rect::new(field("x")?, field("y")?, field("w")?, field("h")?);
    if roi.w == 0 || roi.h == 0 {
        return Err(format!(
            "ROI {roi} is empty: give a width and a height above 0"
        ));
    }
    Ok(Command::Roi(roi))
}

/// The reply to one command line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reply {
    pub reply: &'static str,
    pub cmd: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Reply {
    pub fn ok(cmd: &str) -> Reply {
        Reply {
            reply: "ok",
            cmd: cmd.to_string(),
            message: None,
        }
    }

    pub fn error(cmd: &str, message: String) -> Reply {
        Reply {
            reply: "error",
            cmd: cmd.to_string(),
            message: Some(message),
        }
    }
}

/// Reads command lines from `input` until it ends or `handle` returns false. A valid
/// command goes to `handle`, which returns its reply, and an invalid line gets an error
/// reply. Every reply is written to `output` as one JSON line.
///
/// # Errors
/// I/O errors of `input` or `output`.
pub fn serve(
    input: impl Read,
    mut output: impl Write,
    mut handle: impl FnMut(Command) -> (Reply, bool),
) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.len() as u64 > MAX_LINE_BYTES && !line.ends_with(b"\n") {
            skip_rest_of_line(&mut reader)?;
            write_reply(
                &mut output,
                &Reply::error(
                    "",
                    format!("command line longer than {MAX_LINE_BYTES} bytes"),
                ),
            )?;
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let (reply, go_on) = match Command::parse(text) {
            Ok(command) => handle(command),
            Err(message) => (Reply::error(command_name(text), message), true),
        };
        write_reply(&mut output, &reply)?;
        if !go_on {
            return Ok(());
        }
    }
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            reader.consume(end + 1);
            return Ok(());
        }
        let len = buffer.len();
        reader.consume(len);
    }
}

/// Returns the `cmd` field of a line that failed to parse, when it has one, for the reply.
fn command_name(text: &str) -> &'static str {
    let name = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("cmd").and_then(Value::as_str).map(str::to_string));
    match name.as_deref() {
        Some("new_exam") => "new_exam",
        Some("reset") => "reset",
        Some("clinical") => "clinical",
        Some("roi") => "roi",
        Some("quit") => "quit",
        _ => "",
    }
}

/// Writes `reply` as one JSON line in a single write, so it does not interleave with
/// events another thread writes to the same stdout.
pub fn write_reply(output: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    output.write_all(&line)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            Command::parse(r#"{"cmd":"new_exam"}"#),
            Ok(Command::NewExam)
        );
        assert_eq!(Command::parse(r#"{"cmd":"quit"}"#), Ok(Command::Quit));
        assert_eq!(
            Command::parse(r#"{"cmd":"roi","x":1,"y":2,"w":3,"h":4}"#),
            Ok(Command::Roi(Rect::new(1, 2, 3, 4)))
        );
        assert_eq!(
            Command::parse(r#"{"cmd":"roi","auto":true}"#),
            Ok(Command::AutoRoi)
        );
        let Ok(Command::Clinical(values)) =
            Command::parse(r#"{"cmd":"clinical","values":{"age":63,"cea":4.5}}"#)
        else {
            panic!("clinical did not parse");
        };
        assert_eq!(values["age"], 63.0);
        assert_eq!(values["cea"], 4.5);
    }

    #[test]
    fn invalid_commands_name_the_problem() {
        let cases = [
            ("not json", "invalid JSON"),
            ("[1]", "expected a JSON object"),
            (r#"{"cmd":"explode"}"#, "unknown command `explode`"),
            (r#"{"cmd":"new_exam","x":1}"#, "unknown field `x`"),
            (r#"{"cmd":"roi","x":1,"y":2,"w":3}"#, "`h` is missing"),
            (r#"{"cmd":"roi","x":-1,"y":2,"w":3,"h":4}"#, "ROI `x` is -1"),
            (r#"{"cmd":"roi","x":0,"y":0,"w":0,"h":4}"#, "is empty"),
            (r#"{"cmd":"roi","auto":false}"#, "only true"),
            (r#"{"cmd":"roi","auto":true,"x":1}"#, "not both"),
            (
                r#"{"cmd":"clinical","values":{"age":"old"}}"#,
                "not a finite number",
            ),
            (r#"{"cmd":"clinical"}"#, "needs an object `values`"),
        ];
        for (line, expected) in cases {
            let error = Command::parse(line).expect_err(line);
            assert!(error.contains(expected), "{line}: {error}");
        }
    }

    #[test]
    fn serve_replies_and_stops_on_quit() {
        let input = b"{\"cmd\":\"reset\"}\nnonsense\n\n{\"cmd\":\"quit\"}\n{\"cmd\":\"reset\"}\n";
        let mut output = Vec::new();
        let mut seen = Vec::new();
        serve(&input[..], &mut output, |command| {
            let go_on = command != Command::Quit;
            seen.push(command.name());
            (Reply::ok(command.name()), go_on)
        })
        .unwrap();
        assert_eq!(seen, ["reset", "quit"]);
        let replies: Vec<Value> = String::from_utf8(output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0]["reply"], "ok");
        assert_eq!(replies[1]["reply"], "error");
        assert_eq!(replies[2]["cmd"], "quit");
    }

    #[test]
    fn overlong_line_is_rejected_and_skipped() {
        let mut input = vec![b'x'; MAX_LINE_BYTES as usize + 10];
        input.extend_from_slice(b"\n{\"cmd\":\"reset\"}\n");
        let mut output = Vec::new();
        let mut commands = 0;
        serve(&input[..], &mut output, |command| {
            commands += 1;
            (Reply::ok(command.name()), true)
        })
        .unwrap();
        assert_eq!(commands, 1);
        let text = String::from_utf8(output).unwrap();
        assert!(text.lines().next().unwrap().contains("longer than"));
    }
}
