//! Rich (boolean) dependencies, rpm ≥ 4.13 syntax: `(a or (b >= 1 and c))`.
//!
//! Parsed into a [`Rich`] tree that the closure in `solve` walks; [`render`] writes one
//! back for messages and `-v` explanations. rpm's own grammar: operators of one kind per
//! group (mixing needs parentheses), `if`/`unless` with an optional `else`.

use super::repo::{Dep, Flag};
use super::vercmp::Evr;

/// A boolean (rich) dependency, rpm ≥ 4.13 syntax.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rich {
    Atom(Dep),
    And(Vec<Rich>),
    Or(Vec<Rich>),
    /// `(A if B [else C])`: A needed when B is installed, else C.
    If(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    /// `(A unless B [else C])`: A needed when B is not installed, else C.
    Unless(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    /// `(A with B)`: one package satisfying all.
    With(Vec<Rich>),
    /// `(A without B)`: a package satisfying A but not B.
    Without(Box<Rich>, Box<Rich>),
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            i += 1;
        } else {
            // A name may carry its own parentheses: `font(sans)`, `perl(Foo::Bar)`.
            let mut tok = String::new();
            let mut depth = 0;
            while i < chars.len() {
                let c = chars[i];
                if c == '(' {
                    depth += 1;
                } else if c == ')' {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                } else if c.is_whitespace() && depth == 0 {
                    break;
                }
                tok.push(c);
                i += 1;
            }
            out.push(tok);
        }
    }
    out
}

const OPS: &[&str] = &["and", "or", "if", "else", "unless", "with", "without"];

/// Parses `(a or (b >= 1 and c))`. `Err` names what is wrong.
pub(crate) fn parse_rich(s: &str) -> Result<Rich, String> {
    let toks = tokenize(s);
    let mut pos = 0;
    let r = parse_group(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("unexpected `{}`", toks[pos]));
    }
    Ok(r)
}

fn parse_group(t: &[String], pos: &mut usize) -> Result<Rich, String> {
    if t.get(*pos).map(String::as_str) != Some("(") {
        return Err("expected `(`".into());
    }
    *pos += 1;
    let mut operands = vec![parse_operand(t, pos)?];
    let mut ops: Vec<String> = Vec::new();
    loop {
        match t.get(*pos).map(String::as_str) {
            Some(")") => {
                *pos += 1;
                break;
            }
            Some(op) if OPS.contains(&op) => {
                ops.push(op.to_string());
                *pos += 1;
                operands.push(parse_operand(t, pos)?);
            }
            Some(other) => return Err(format!("expected an operator, found `{other}`")),
            None => return Err("missing `)`".into()),
        }
    }
    if ops.is_empty() {
        return Ok(operands.pop().expect("one operand"));
    }
    let same = |o: &str| ops.iter().all(|x| x == o);
    let mut it = operands.into_iter();
    Ok(match ops[0].as_str() {
        "and" if same("and") => Rich::And(it.collect()),
        "or" if same("or") => Rich::Or(it.collect()),
        "with" if same("with") => Rich::With(it.collect()),
        "without" if ops.len() == 1 => {
            Rich::Without(Box::new(it.next().unwrap()), Box::new(it.next().unwrap()))
        }
        "if" | "unless" if ops.len() == 1 || (ops.len() == 2 && ops[1] == "else") => {
            let a = Box::new(it.next().unwrap());
            let b = Box::new(it.next().unwrap());
            let c = it.next().map(Box::new);
            if ops[0] == "if" {
                Rich::If(a, b, c)
            } else {
                Rich::Unless(a, b, c)
            }
        }
        _ => {
            return Err(format!(
                "cannot mix `{}` in one group; add parentheses",
                ops.join("`, `")
            ))
        }
    })
}

fn parse_operand(t: &[String], pos: &mut usize) -> Result<Rich, String> {
    match t.get(*pos).map(String::as_str) {
        Some("(") => parse_group(t, pos),
        Some(")") | None => Err("missing operand".into()),
        Some(name) if OPS.contains(&name) => Err(format!("missing operand before `{name}`")),
        Some(name) => {
            *pos += 1;
            let mut dep = Dep {
                name: name.to_string(),
                constraint: None,
            };
            if let Some(flag) = t.get(*pos).and_then(|op| Flag::parse(op)) {
                let v = t.get(*pos + 1).ok_or("missing version after operator")?;
                let evr = Evr::parse(v).ok_or_else(|| format!("bad version `{v}`"))?;
                dep.constraint = Some((flag, evr));
                *pos += 2;
            }
            Ok(Rich::Atom(dep))
        }
    }
}

/// Writes an expression back in rpm syntax.
pub(crate) fn render(r: &Rich) -> String {
    let join = |v: &[Rich], op: &str| {
        format!(
            "({})",
            v.iter()
                .map(render)
                .collect::<Vec<_>>()
                .join(&format!(" {op} "))
        )
    };
    match r {
        Rich::Atom(d) => d.to_string(),
        Rich::And(v) => join(v, "and"),
        Rich::Or(v) => join(v, "or"),
        Rich::With(v) => join(v, "with"),
        Rich::Without(a, b) => format!("({} without {})", render(a), render(b)),
        Rich::If(a, b, c) | Rich::Unless(a, b, c) => {
            let op = if matches!(r, Rich::If(..)) {
                "if"
            } else {
                "unless"
            };
            match c {
                Some(c) => format!("({} {op} {} else {})", render(a), render(b), render(c)),
                None => format!("({} {op} {})", render(a), render(b)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_parse_round_trips() {
        for s in [
            "(a or (b >= 1.2-3 and c))",
            "(font(sans) if fontconfig else d)",
            "(pkgA with pkgB < 2)",
            "(a without b)",
        ] {
            assert_eq!(render(&parse_rich(s).unwrap()), s);
        }
        assert!(parse_rich("(a or b and c)")
            .unwrap_err()
            .contains("cannot mix"));
        assert!(parse_rich("(a or").is_err());
    }
}
