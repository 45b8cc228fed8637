//! The tile generator: expands a kernel template (`shaders/templates/*.wgsl`) into the WGSL
//! that is compiled (`shaders/generated/*.wgsl`), so that a register-tiled kernel has one source whatever
//! its tile shape. Three constructs, nothing else:
//!
//! * a line `//# for VAR in A..B` … `//# end` repeats the lines between for VAR = A, …, B − 1
//!   (loops nest);
//! * a line `//# if EXPR` … `//# end` keeps the lines between when EXPR is not 0 (one template,
//!   two kernels: `jbar_update` and `jbar_factored`);
//! * `${EXPR}` anywhere is replaced by the value of an integer expression over the loop
//!   variables and the template's constants (`+ - * / %`, parentheses, integers).
//!
//! The constants come from [`super::tiles`]; the generated files are committed (people read
//! and grep them), and a test fails when one differs from its template's expansion. After
//! changing a template or a tile: `cargo run --example generate_shaders`.

use std::collections::HashMap;

use crate::error::{Result, SpinError};

/// A templated kernel: `shaders/templates/NAME.wgsl` expands to `shaders/generated/NAME.wgsl`.
#[derive(Clone, Debug)]
pub struct Template {
    /// The kernel's name.
    pub name: &'static str,
    /// The template's file in `shaders/templates/`, without `.wgsl`.
    pub file: &'static str,
    /// The template's source.
    pub source: &'static str,
    /// Its constants (the tile).
    pub constants: Vec<(&'static str, i64)>,
}

/// The templated kernels.
pub fn templates() -> Vec<Template> {
    use super::tiles::*;
    let rows = |t: RowTile| vec![("TILE_ROWS", t.rows as i64), ("TILE_QUADS", t.quads as i64)];
    // One template, two kernels: FACTORED picks `jbar_factored` (maths §3).
    let jbar = |name, factored, shared| Template {
        name,
        file: "jbar_update",
        source: include_str!("../../shaders/templates/jbar_update.wgsl"),
        constants: vec![
            ("TILE_IN_QUADS", JBAR_TILE.in_quads as i64),
            ("FACTORED", factored),
            ("SHARED", shared),
        ],
    };
    let param_grad = |name, tile: ParamGradTile, wide, shared| Template {
        name,
        file: "param_grad",
        source: include_str!("../../shaders/templates/param_grad.wgsl"),
        constants: vec![
            ("IQ", tile.in_quads as i64),
            ("OQ", tile.out_quads as i64),
            ("WIDE", wide),
            ("SHARED", shared),
        ],
    };
    vec![
        Template {
            name: "dense_forward",
            file: "dense_forward",
            source: include_str!("../../shaders/templates/dense_forward.wgsl"),
            constants: with_flag(rows(DENSE_TILE), "SHARED", 0),
        },
        Template {
            name: "dense_forward_shared",
            file: "dense_forward",
            source: include_str!("../../shaders/templates/dense_forward.wgsl"),
            constants: with_flag(rows(DENSE_SHARED_TILE), "SHARED", 1),
        },
        Template {
            name: "dense_backward",
            file: "dense_backward",
            source: include_str!("../../shaders/templates/dense_backward.wgsl"),
            constants: with_flag(rows(DENSE_BACKWARD_TILE), "SHARED", 0),
        },
        Template {
            name: "dense_backward_shared",
            file: "dense_backward",
            source: include_str!("../../shaders/templates/dense_backward.wgsl"),
            constants: with_flag(rows(DENSE_SHARED_TILE), "SHARED", 1),
        },
        Template {
            name: "conv2d_backward",
            file: "conv2d_backward",
            source: include_str!("../../shaders/templates/conv2d_backward.wgsl"),
            constants: rows(CONV_BACKWARD_TILE),
        },
        Template {
            name: "conv2d_forward",
            file: "conv2d_forward",
            source: include_str!("../../shaders/templates/conv2d_forward.wgsl"),
            constants: vec![("TILE_PIXELS", CONV_FORWARD_PIXELS as i64)],
        },
        jbar("jbar_update", 0, 0),
        jbar("jbar_factored", 1, 0),
        jbar("jbar_update_shared", 0, 1),
        jbar("jbar_factored_shared", 1, 1),
        param_grad("param_grad", PARAM_GRAD_TILE, 0, 0),
        param_grad("param_grad_wide", PARAM_GRAD_WIDE_TILE, 1, 0),
        param_grad("param_grad_shared", PARAM_GRAD_SHARED_TILE, 0, 1),
    ]
}

/// `constants` and one more.
fn with_flag(
    mut constants: Vec<(&'static str, i64)>,
    name: &'static str,
    value: i64,
) -> Vec<(&'static str, i64)> {
    constants.push((name, value));
    constants
}

/// The generated WGSL of the template `name`, with the header that says where it comes from.
pub fn generate(name: &str) -> Result<String> {
    let Template {
        file,
        source,
        constants,
        ..
    } = templates()
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| SpinError::Config(format!("no kernel template `{name}`")))?;
    let vars: HashMap<String, i64> = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let shown: Vec<String> = constants
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let mut out = format!(
        "// GENERATED by src/gpu/template.rs from shaders/templates/{file}.wgsl{}.\n\
         // Edit the template (or the tile in src/gpu/tiles.rs), then run\n\
         // `cargo run --example generate_shaders`.\n",
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        }
    );
    out.push_str(&expand(source, &vars).map_err(|e| SpinError::Shader {
        kernel: name.to_string(),
        message: format!("template: {e}"),
    })?);
    Ok(out)
}

/// Expands `source` with the variables `vars` (see the module docs).
pub fn expand(source: &str, vars: &HashMap<String, i64>) -> std::result::Result<String, String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::new();
    let mut vars = vars.clone();
    let end = block(&lines, 0, &mut vars, &mut out)?;
    if end != lines.len() {
        return Err(format!("line {}: `//# end` without a loop", end + 1));
    }
    Ok(out)
}

/// A directive line: `Some(("for", rest))`, `Some(("if", rest))` or `Some(("end", ""))`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix("//#")?.trim();
    Some(match rest.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (rest, ""),
    })
}

/// Expands lines from `at` until an unmatched `//# end` (returning its index) or the end.
fn block(
    lines: &[&str],
    mut at: usize,
    vars: &mut HashMap<String, i64>,
    out: &mut String,
) -> std::result::Result<usize, String> {
    while at < lines.len() {
        match directive(lines[at]) {
            Some(("end", _)) => return Ok(at),
            Some(("for", spec)) => {
                let (var, range) = spec
                    .split_once(" in ")
                    .ok_or_else(|| format!("line {}: expected `for VAR in A..B`", at + 1))?;
                let (a, b) = range
                    .split_once("..")
                    .ok_or_else(|| format!("line {}: expected a range A..B", at + 1))?;
                let (a, b) = (eval(a, vars)?, eval(b, vars)?);
                let var = var.trim().to_string();
                let saved = vars.get(&var).copied();
                // An empty range still has to find its `end`.
                let mut close = None;
                for i in a..b.max(a + 1) {
                    vars.insert(var.clone(), i);
                    let mut body = String::new();
                    close = Some(block(lines, at + 1, vars, &mut body)?);
                    if i < b {
                        out.push_str(&body);
                    }
                }
                match saved {
                    Some(v) => vars.insert(var, v),
                    None => vars.remove(&var),
                };
                let close = close
                    .filter(|&c| c < lines.len())
                    .ok_or_else(|| format!("line {}: `//# for` without its `//# end`", at + 1))?;
                at = close + 1;
            }
            Some(("if", cond)) => {
                let keep = eval(cond, vars)? != 0;
                let mut body = String::new();
                let close = block(lines, at + 1, vars, &mut body)?;
                if close >= lines.len() {
                    return Err(format!("line {}: `//# if` without its `//# end`", at + 1));
                }
                if keep {
                    out.push_str(&body);
                }
                at = close + 1;
            }
            Some((other, _)) => {
                return Err(format!("line {}: unknown directive `{other}`", at + 1))
            }
            None => {
                out.push_str(
                    &substitute(lines[at], vars).map_err(|e| format!("line {}: {e}", at + 1))?,
                );
                out.push('\n');
                at += 1;
            }
        }
    }
    Ok(at)
}

/// Replaces every `${EXPR}` of `line`.
fn substitute(line: &str, vars: &HashMap<String, i64>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let close = rest[start..]
            .find('}')
            .ok_or_else(|| "`${` without `}`".to_string())?;
        out.push_str(&eval(&rest[start + 2..start + close], vars)?.to_string());
        rest = &rest[start + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of an integer expression (`+ - * / %`, parentheses, integers, variables).
pub fn eval(expr: &str, vars: &HashMap<String, i64>) -> std::result::Result<i64, String> {
    let tokens = tokenize(expr)?;
    let mut p = Parser {
        tokens,
        at: 0,
        vars,
    };
    let v = p.sum()?;
    if p.at != p.tokens.len() {
        return Err(format!("unexpected `{}` in `{expr}`", p.tokens[p.at]));
    }
    Ok(v)
}

fn tokenize(expr: &str) -> std::result::Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' {
                    word.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(word);
        } else if "+-*/%()".contains(c) {
            tokens.push(c.to_string());
            chars.next();
        } else {
            return Err(format!("unexpected `{c}` in `{expr}`"));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<String>,
    at: usize,
    vars: &'a HashMap<String, i64>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(|s| s.as_str())
    }

    fn sum(&mut self) -> std::result::Result<i64, String> {
        let mut v = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            let plus = op == "+";
            self.at += 1;
            let r = self.product()?;
            v = if plus { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> std::result::Result<i64, String> {
        let mut v = self.atom()?;
        while let Some(op @ ("*" | "/" | "%")) = self.peek() {
            let op = op.to_string();
            self.at += 1;
            let r = self.atom()?;
            v = match op.as_str() {
                "*" => v * r,
                _ if r == 0 => return Err("division by zero".into()),
                "/" => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn atom(&mut self) -> std::result::Result<i64, String> {
        let t = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| "expression ends too early".to_string())?;
        self.at += 1;
        if t == "(" {
            let v = self.sum()?;
            if self.peek() != Some(")") {
                return Err("missing `)`".into());
            }
            self.at += 1;
            return Ok(v);
        }
        if t == "-" {
            return Ok(-self.atom()?);
        }
        if let Ok(v) = t.parse() {
            return Ok(v);
        }
        self.vars
            .get(&t)
            .copied()
            .ok_or_else(|| format!("unknown name `{t}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_nest_and_expressions_evaluate() {
        let vars = HashMap::from([("R".to_string(), 2i64), ("Q".to_string(), 3)]);
        let src = "a\n//# for r in 0..R\n//# for c in 1..Q\nx${r}_${c} = ${r * (Q - 1) + c - 1};\n//# end\n//# end\nb ${R*Q}";
        let out = expand(src, &vars).unwrap();
        assert_eq!(out, "a\nx0_1 = 0;\nx0_2 = 1;\nx1_1 = 2;\nx1_2 = 3;\nb 6\n");
        // An empty range emits nothing but still needs its end.
        assert_eq!(
            expand("//# for i in 0..0\nz\n//# end\nq", &vars).unwrap(),
            "q\n"
        );
    }

    #[test]
    fn conditions_keep_or_drop_their_lines() {
        let vars = HashMap::from([("F".to_string(), 1i64)]);
        let src = "a\n//# if F\nkept ${F}\n//# for i in 0..2\n//# if 1 - F\ndropped\n//# end\n//# if i\ni${i}\n//# end\n//# end\n//# end\nb";
        assert_eq!(expand(src, &vars).unwrap(), "a\nkept 1\ni1\nb\n");
        let off = HashMap::from([("F".to_string(), 0i64)]);
        assert_eq!(expand(src, &off).unwrap(), "a\nb\n");
    }

    #[test]
    fn malformed_templates_are_refused() {
        let vars = HashMap::new();
        assert!(expand("//# for i in 0..2\nx", &vars)
            .unwrap_err()
            .contains("without its"));
        assert!(expand("//# if 1\nx", &vars)
            .unwrap_err()
            .contains("without its"));
        assert!(expand("x\n//# end", &vars)
            .unwrap_err()
            .contains("without a loop"));
        assert!(expand("${N}", &vars)
            .unwrap_err()
            .contains("unknown name `N`"));
        assert!(expand("${1 / 0}", &vars).unwrap_err().contains("division"));
        assert!(expand("//# repeat", &vars)
            .unwrap_err()
            .contains("unknown directive"));
        assert_eq!(eval("-(2 + 3) * 4 % 7", &vars).unwrap(), -6);
    }
}
