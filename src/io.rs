//! File helpers: atomic writes (write to a temporary file in the same folder, then rename).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Result, SpinError};

static WRITES: AtomicBool = AtomicBool::new(true);

/// Turns this process's file writes on or off (on by default). The data-parallel layer turns
/// them off on every rank but 0 when it installs the workers, so rank 0 writes every file.
pub fn set_writes(on: bool) {
    WRITES.store(on, Ordering::Relaxed);
}

/// Writes `bytes` to `path` atomically: a reader sees the old file or the new one, never a
/// partial write, and a crash leaves the old file in place. Nothing is written while
/// [`set_writes`] has turned writes off.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if !WRITES.load(Ordering::Relaxed) {
        return Ok(());
    }
    let io_err = |source| SpinError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

/// Serialises `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| SpinError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, text.as_bytes())
}

/// A table of numbers read by [`read_numbers_csv`].
#[derive(Clone, Debug, PartialEq)]
pub struct NumberTable {
    /// Column names from a header line, when the file has one.
    pub header: Option<Vec<String>>,
    /// The rows, as written.
    pub rows: Vec<Vec<f64>>,
    /// The 1-based file line of every row (for messages).
    pub lines: Vec<usize>,
}

/// Reads a table of finite numbers from CSV, the one reader for every CSV the program takes:
/// cells separated by commas, semicolons or whitespace; blank lines and lines starting with `#`
/// skipped; an optional header line first (a line none of whose cells is a number, as pandas and
/// spreadsheets write, and as `spin eval` writes its own output). Any other cell that is not a
/// finite number is an error naming its line and column.
pub fn read_numbers_csv(path: &Path) -> Result<NumberTable> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpinError::Io {
        path: name.clone(),
        source,
    })?;
    parse_numbers_csv(&text).map_err(|message| SpinError::Parse {
        path: name,
        message,
    })
}

/// [`read_numbers_csv`] on text; the error is the message without the file name.
pub fn parse_numbers_csv(text: &str) -> std::result::Result<NumberTable, String> {
    let mut table = NumberTable {
        header: None,
        rows: Vec::new(),
        lines: Vec::new(),
    };
    let mut first = true;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let parsed: Vec<Option<f64>> = cells
            .iter()
            .map(|t| t.trim_matches('"').parse::<f64>().ok())
            .collect();
        if first && parsed.iter().all(|v| v.is_none()) {
            table.header = Some(
                cells
                    .iter()
                    .map(|c| c.trim_matches('"').to_string())
                    .collect(),
            );
            first = false;
            continue;
        }
        first = false;
        let mut row = Vec::with_capacity(cells.len());
        for (col, (tok, v)) in cells.iter().zip(parsed).enumerate() {
            match v.filter(|v| v.is_finite()) {
                Some(v) => row.push(v),
                None => {
                    return Err(format!(
                        "line {}, column {}: `{tok}` is not a finite number",
                        ln + 1,
                        col + 1
                    ))
                }
            }
        }
        table.rows.push(row);
        table.lines.push(ln + 1);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::parse_numbers_csv;

    #[test]
    fn header_is_optional_and_errors_name_line_and_column() {
        let t = parse_numbers_csv("x0,x1\n1,2\n\n# c\n3 4\n").unwrap();
        assert_eq!(t.header, Some(vec!["x0".to_string(), "x1".to_string()]));
        assert_eq!(t.rows, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(t.lines, vec![2, 5]);
        let t = parse_numbers_csv("1;2\n3;4").unwrap();
        assert_eq!(t.header, None);
        assert_eq!(t.rows.len(), 2);
        let e = parse_numbers_csv("x,y\n1,2\n3,abc\n").unwrap_err();
        assert_eq!(e, "line 3, column 2: `abc` is not a finite number");
        // A header is only the first line; a half-numeric first line is an error.
        let e = parse_numbers_csv("1,y\n").unwrap_err();
        assert!(e.starts_with("line 1, column 2"), "{e}");
        let e = parse_numbers_csv("1,2\nnan,3\n").unwrap_err();
        assert!(e.starts_with("line 2, column 1"), "{e}");
    }
}
