//! Rendering a resolved configuration as TOML, optionally with the source of every value.

use std::fmt::Write;

/// A TOML key, quoted when it is not a bare key.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// A value in inline TOML syntax.
pub fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", parts.join(", "))
        }
        toml::Value::Table(table) => {
            if table.is_empty() {
                return "{}".to_string();
            }
            let parts: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        toml::Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
            format!("{f:.1}")
        }
        other => other.to_string(),
    }
}

/// Renders `table` as TOML: leaves first, then sub-tables as `[a.b]` sections. `source` gives a
/// comment for the dotted path of each leaf (None: no comment).
pub fn render(table: &toml::Table, source: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    render_table(&mut out, &[], table, source);
    out
}

fn render_table(
    out: &mut String,
    path: &[String],
    table: &toml::Table,
    source: &dyn Fn(&str) -> Option<String>,
) {
    let dotted = |k: &str| {
        let mut p = path.to_vec();
        p.push(k.to_string());
        p.join(".")
    };
    let (tables, leaves): (Vec<_>, Vec<_>) = table
        .iter()
        .partition(|(_, v)| matches!(v, toml::Value::Table(_)));
    if !path.is_empty() && (!leaves.is_empty() || tables.is_empty()) {
        let header: Vec<String> = path.iter().map(|p| key(p)).collect();
        let _ = writeln!(out, "\n[{}]", header.join("."));
    }
    for (k, v) in leaves {
        let line = format!("{} = {}", key(k), inline(v));
        match source(&dotted(k)) {
            Some(comment) => {
                let _ = writeln!(out, "{line:<40} # {comment}");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    for (k, v) in tables {
        if let toml::Value::Table(t) = v {
            let mut p = path.to_vec();
            p.push(k.clone());
            render_table(out, &p, t, source);
        }
    }
}

/// A table in inline TOML syntax (`{ a = 1, b = "x" }`).
pub fn inline_table(table: &toml::Table) -> String {
    inline(&toml::Value::Table(table.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_round_trippable_toml_with_comments() {
        let table: toml::Table = toml::from_str(
            "seed = 1\n[encoder]\nname = 'x'\n[encoder.x]\nwidths = [1, 2]\nlr = 1.0\n[loss]\nterms = [{ name = 'tcr', weight = 1.0 }]",
        )
        .unwrap();
        let text = render(&table, &|p| Some(format!("from {p}")));
        assert!(text.contains("seed = 1"));
        assert!(text.contains("# from encoder.x.widths"));
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(back, table);
    }
}
