//! NumPy's `.npy` arrays (format versions 1.0, 2.0 and 3.0 headers, little-endian, C order) and
//! `.npz` archives (a zip of `.npy` members, stored or deflated), read and written without
//! Python. Every problem is an error that names the file and what is wrong.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Result, SpinError};

/// The values of an array, by dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `|u1`
    U8(Vec<u8>),
    /// `|b1`
    Bool(Vec<bool>),
    /// `<f4`
    F32(Vec<f32>),
    /// `<f8`
    F64(Vec<f64>),
    /// `<i4`
    I32(Vec<i32>),
    /// `<i8`
    I64(Vec<i64>),
}

impl NpyData {
    /// The dtype as NumPy writes it.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::U8(_) => "|u1",
            NpyData::Bool(_) => "|b1",
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::I32(_) => "<i4",
            NpyData::I64(_) => "<i8",
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            NpyData::U8(v) => v.len(),
            NpyData::Bool(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An n-dimensional array.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Shape (C order).
    pub shape: Vec<usize>,
    /// Values.
    pub data: NpyData,
}

impl NpyArray {
    /// An array of `shape` (whose product must be the data's length).
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<Self> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(SpinError::Shape(format!(
                "shape {shape:?} for {} values",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// Parses `.npy` bytes; `what` names the source in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let err = |m: String| SpinError::Parse {
            path: what.to_string(),
            message: m,
        };
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(err("not a NumPy .npy array (no \\x93NUMPY magic)".into()));
        }
        let major = bytes[6];
        let (hlen, start) = match major {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 => {
                if bytes.len() < 12 {
                    return Err(err("truncated .npy header".into()));
                }
                (
                    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                    12,
                )
            }
            v => return Err(err(format!("unsupported .npy format version {v}"))),
        };
        let header = bytes
            .get(start..start + hlen)
            .ok_or_else(|| err("truncated .npy header".into()))?;
        let header = std::str::from_utf8(header).map_err(|_| err("header is not text".into()))?;
        let descr = dict_value(header, "descr")
            .ok_or_else(|| err(format!("header without 'descr': {header}")))?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
            return Err(err(
                "Fortran-ordered arrays are not supported; save with C order".into(),
            ));
        }
        let shape_text = dict_value(header, "shape")
            .ok_or_else(|| err(format!("header without 'shape': {header}")))?;
        let inner = shape_text
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| err(format!("unreadable shape {shape_text}")))?;
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| err(format!("unreadable shape {shape_text}")))?;
        let count: usize = shape.iter().product();
        let body = &bytes[start + hlen..];
        let size = match descr {
            "|u1" | "u1" | "<u1" | "|b1" | "b1" | "?" => 1,
            "<f4" | "<i4" => 4,
            "<f8" | "<i8" => 8,
            d => {
                return Err(err(format!(
                    "unsupported dtype {d} (uint8, bool, little-endian float32/64 or int32/64)"
                )))
            }
        };
        if body.len() < count * size {
            return Err(err(format!(
                "{} bytes of data for shape {shape:?} of {descr} ({} needed)",
                body.len(),
                count * size
            )));
        }
        let body = &body[..count * size];
        let chunks = |n: usize| body.chunks_exact(n);
        let data = match descr {
            "|b1" | "b1" | "?" => NpyData::Bool(body.iter().map(|&b| b != 0).collect()),
            "<f4" => NpyData::F32(
                chunks(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            "<f8" => NpyData::F64(
                chunks(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            "<i4" => NpyData::I32(
                chunks(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            "<i8" => NpyData::I64(
                chunks(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            _ => NpyData::U8(body.to_vec()),
        };
        Ok(Self { shape, data })
    }

    /// The `.npy` bytes (format 1.0, or 2.0 when the header needs it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let shape = match self.shape.len() {
            1 => format!("({},)", self.shape[0]),
            _ => format!(
                "({})",
                self.shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
            self.data.descr()
        );
        let v2 = header.len() + 11 > u16::MAX as usize;
        let pre = if v2 { 12 } else { 10 };
        while (pre + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        if v2 {
            out.extend([2u8, 0]);
            out.extend((header.len() as u32).to_le_bytes());
        } else {
            out.extend([1u8, 0]);
            out.extend((header.len() as u16).to_le_bytes());
        }
        out.extend(header.as_bytes());
        match &self.data {
            NpyData::U8(v) => out.extend(v),
            NpyData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
            NpyData::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            NpyData::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            NpyData::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            NpyData::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        }
        out
    }
}

/// The text after `'key':` in a Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

/// The named arrays of an `.npz` archive, in archive order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| SpinError::Io {
        path: name.clone(),
        source,
    })?;
    let err = |m: String| SpinError::Parse {
        path: name.clone(),
        message: m,
    };
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| err(format!("not a .npz (zip) archive: {e}")))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| err(format!("member {i}: {e}")))?;
        let member_name = member.name().to_string();
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member
            .read_to_end(&mut bytes)
            .map_err(|e| err(format!("member {member_name}: {e}")))?;
        let key = member_name
            .strip_suffix(".npy")
            .unwrap_or(&member_name)
            .to_string();
        let array = NpyArray::from_bytes(&bytes, &format!("{name}: {member_name}"))?;
        out.push((key, array));
    }
    Ok(out)
}

/// Writes named arrays as an `.npz` archive (deflated members), atomically.
pub fn write_npz(path: &Path, arrays: &[(&str, &NpyArray)]) -> Result<()> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut cursor);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for (key, array) in arrays {
            let err = |e: String| SpinError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            };
            zip.start_file(format!("{key}.npy"), options)
                .map_err(|e| err(e.to_string()))?;
            zip.write_all(&array.to_bytes())
                .map_err(|e| err(e.to_string()))?;
        }
        zip.finish().map_err(|e| SpinError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    crate::io::write_atomic(path, &cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header_versions() {
        let a = NpyArray::new(
            vec![2, 3],
            NpyData::F32(vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0]),
        )
        .unwrap();
        let bytes = a.to_bytes();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!((bytes.len() - 24) % 4, 0);
        assert_eq!(NpyArray::from_bytes(&bytes, "t").unwrap(), a);
        // The same array with a version 2.0 header, as NumPy writes for huge headers.
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend((hlen as u32).to_le_bytes());
        v2.extend(&bytes[10..]);
        assert_eq!(NpyArray::from_bytes(&v2, "t").unwrap(), a);
        let b = NpyArray::new(vec![4], NpyData::Bool(vec![true, false, false, true])).unwrap();
        assert_eq!(NpyArray::from_bytes(&b.to_bytes(), "t").unwrap(), b);
        // A header as NumPy writes it for a scalar-free 1-D uint8 array.
        let mut raw = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }          \n";
        raw.extend((header.len() as u16).to_le_bytes());
        raw.extend(header.as_bytes());
        raw.extend([7u8, 8, 9]);
        let c = NpyArray::from_bytes(&raw, "t").unwrap();
        assert_eq!(c.shape, vec![3]);
        assert_eq!(c.data, NpyData::U8(vec![7, 8, 9]));
    }

    #[test]
    fn bad_arrays_are_errors() {
        assert!(NpyArray::from_bytes(b"PK\x03\x04 not npy", "t").is_err());
        let a = NpyArray::new(vec![5], NpyData::F64(vec![1.0; 5])).unwrap();
        let bytes = a.to_bytes();
        let e = NpyArray::from_bytes(&bytes[..bytes.len() - 3], "t").unwrap_err();
        assert!(e.to_string().contains("bytes of data"), "{e}");
        let mut fortran = bytes.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        let e = NpyArray::from_bytes(&fortran, "t").unwrap_err();
        assert!(e.to_string().contains("Fortran"), "{e}");
    }
}
