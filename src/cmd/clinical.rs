//! Clinical values from `--clinical FILE` and `--set NAME=VALUE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Largest clinical file read, far above any table of clinical variables.
const MAX_CLINICAL_FILE_BYTES: u64 = 1 << 20;

#[derive(clap::Args, Default)]
pub struct ClinicalArgs {
    /// Clinical values as a flat TOML or JSON table of numbers, by variable name.
    #[arg(long, value_name = "FILE")]
    clinical: Option<PathBuf>,

    /// One clinical value, NAME=VALUE; repeatable, and overrides the same name in --clinical.
    /// A value outside the signature's valid range is rejected. `run` also rejects a name
    /// the signature does not use, and `analyze` ignores it with a warning.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

impl ClinicalArgs {
    /// Collects the values: the file first, then each `--set` in order.
    pub fn values(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut values = match &self.clinical {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        for assignment in &self.set {
            let (name, value) = parse_assignment(assignment)?;
            values.insert(name, value);
        }
        Ok(values)
    }
}

fn parse_assignment(assignment: &str) -> anyhow::Result<(String, f64)> {
    let Some((name, value)) = assignment.split_once('=') else {
        bail!("invalid --set `{assignment}`: expected NAME=VALUE, for example --set age=63");
    };
    let name = name.trim();
    if name.is_empty() {
        bail!("invalid --set `{assignment}`: the variable name is empty");
    }
    Ok((name.to_string(), parse_number(name, value.trim())?))
}

fn parse_number(name: &str, text: &str) -> anyhow::Result<f64> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => bail!("clinical value `{name}` = `{text}` is not a finite number"),
    }
}

/// Reads a flat table of numbers; the format follows the extension (`.json`, else TOML).
fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read clinical values {}", path.display()))?
        .len();
    if size > MAX_CLINICAL_FILE_BYTES {
        bail!(
            "clinical values {} are {size} bytes, more than the {MAX_CLINICAL_FILE_BYTES} a table of variables needs",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read clinical values {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let table: BTreeMap<String, serde_json::Value> = if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("invalid JSON in {}", path.display()))?
    } else {
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?;
        serde_json::to_value(table)?
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect()
    };

    let mut values = BTreeMap::new();
    for (name, value) in table {
        let number = match &value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number.filter(|v| v.is_finite()) {
            Some(number) => values.insert(name, number),
            None => bail!(
                "clinical value `{name}` = {value} in {} is not a finite number",
                path.display()
            ),
        };
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_name_and_number() {
        assert_eq!(
            parse_assignment("age = 63").unwrap(),
            ("age".to_string(), 63.0)
        );
        assert!(parse_assignment("age").is_err());
        assert!(parse_assignment("=3").is_err());
        assert!(parse_assignment("age=old").is_err());
        assert!(parse_assignment("age=NaN").is_err());
    }

    #[test]
    fn file_values_from_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("c.toml");
        std::fs::write(&toml_path, "age = 63\ncea = \"5.2\"\n").unwrap();
        let json_path = dir.path().join("c.json");
        std::fs::write(&json_path, r#"{"age": 70, "t_stage": 3}"#).unwrap();
        let bad_path = dir.path().join("bad.json");
        std::fs::write(&bad_path, r#"{"age": "old"}"#).unwrap();

        let from_toml = read_file(&toml_path).unwrap();
        assert_eq!(from_toml["age"], 63.0);
        assert_eq!(from_toml["cea"], 5.2);
        let from_json = read_file(&json_path).unwrap();
        assert_eq!(from_json["t_stage"], 3.0);
        let error = read_file(&bad_path).unwrap_err().to_string();
        assert!(error.contains("`age`"), "{error}");
    }

    #[test]
    fn set_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "age = 63\n").unwrap();
        let args = ClinicalArgs {
            clinical: Some(path),
            set: vec!["age=64".to_string()],
        };
        assert_eq!(args.values().unwrap()["age"], 64.0);
    }
}
