//! Graphs for `spin graph` (maths §11): node features and weighted undirected edges, read from
//! CSV or `.npy`, or built as the K-nearest-neighbour graph of the features (kiddo's k-d tree)
//! or as the path graph of a time series. Every problem with a file is an error that names the
//! file and the line (CSV) or row (`.npy`).

use std::num::NonZero;
use std::path::Path;

use crate::data::npy::{NpyArray, NpyData};
use crate::error::{Result, SpinError};

/// Nodes with features and undirected weighted edges.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Nodes n.
    pub n: usize,
    /// Features per node d.
    pub dim: usize,
    /// Node features (n, d), row-major.
    pub features: Vec<f64>,
    /// Undirected edges (i, j), i ≠ j; an edge listed twice counts twice.
    pub edges: Vec<[u32; 2]>,
    /// The edges' weights (positive).
    pub weights: Vec<f64>,
}

impl Graph {
    /// Degrees d_i = Σ_j w_ij.
    pub fn degrees(&self) -> Vec<f64> {
        let mut d = vec![0.0; self.n];
        for (e, w) in self.edges.iter().zip(&self.weights) {
            d[e[0] as usize] += w;
            d[e[1] as usize] += w;
        }
        d
    }

    /// Σ of the undirected weights (half the total degree).
    pub fn total_weight(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// An error naming the first node with no edge (the random-walk form divides by degrees).
    pub fn check_no_isolated(&self) -> Result<()> {
        match self.degrees().iter().position(|&d| d <= 0.0) {
            Some(i) => Err(SpinError::Config(format!(
                "node {i} has no edge of positive weight: the random-walk Laplacian D⁻¹(D − W) \
                 needs every degree positive (remove the node, or use --laplacian combinatorial)"
            ))),
            None => Ok(()),
        }
    }

    /// Compressed adjacency, both directions: (row_ptr (n + 1), neighbours, weights).
    pub fn adjacency(&self) -> (Vec<usize>, Vec<u32>, Vec<f64>) {
        let mut count = vec![0usize; self.n + 1];
        for e in &self.edges {
            count[e[0] as usize + 1] += 1;
            count[e[1] as usize + 1] += 1;
        }
        for i in 0..self.n {
            count[i + 1] += count[i];
        }
        let mut next = count.clone();
        let mut cols = vec![0u32; 2 * self.edges.len()];
        let mut ws = vec![0.0; 2 * self.edges.len()];
        for (e, &w) in self.edges.iter().zip(&self.weights) {
            for (a, b) in [(e[0], e[1]), (e[1], e[0])] {
                let slot = next[a as usize];
                cols[slot] = b;
                ws[slot] = w;
                next[a as usize] += 1;
            }
        }
        (count, cols, ws)
    }
}

/// A table of numbers: values (rows, cols) row-major, and where each row came from.
#[derive(Clone, Debug)]
pub struct Table {
    /// Values, row-major.
    pub values: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Each row's place in the file, for errors ("line 7" for CSV, "row 6" for `.npy`).
    pub places: Vec<String>,
}

fn parse_err(path: &Path, message: String) -> SpinError {
    SpinError::Parse {
        path: path.display().to_string(),
        message,
    }
}

/// Reads a table of numbers: `.npy` (f32, f64, i32, i64 or u8; 1-D is one column) or CSV
/// (comma-, semicolon- or whitespace-separated, an optional header line, `#` comments).
pub fn read_table(path: &Path) -> Result<Table> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        let bytes = std::fs::read(path).map_err(|source| SpinError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let a = NpyArray::from_bytes(&bytes, &path.display().to_string())?;
        let (rows, cols) = match a.shape[..] {
            [r] => (r, 1),
            [r, c] => (r, c),
            _ => {
                return Err(parse_err(
                    path,
                    format!("expected a 1-D or 2-D array, got shape {:?}", a.shape),
                ))
            }
        };
        let values: Vec<f64> = match &a.data {
            NpyData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::Bool(_) => {
                return Err(parse_err(
                    path,
                    "a boolean array is not a table of numbers".into(),
                ))
            }
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(parse_err(
                path,
                format!("row {}, column {}: not a finite number", i / cols, i % cols),
            ));
        }
        return Ok(Table {
            values,
            rows,
            cols,
            places: (0..rows).map(|r| format!("row {r}")).collect(),
        });
    }
    let table = crate::io::read_numbers_csv(path)?;
    let cols = table.rows.first().map_or(0, |r| r.len());
    for (row, line) in table.rows.iter().zip(&table.lines) {
        if row.len() != cols {
            return Err(parse_err(
                path,
                format!("line {line} has {} values, the first row {cols}", row.len()),
            ));
        }
    }
    Ok(Table {
        rows: table.rows.len(),
        cols,
        values: table.rows.concat(),
        places: table.lines.iter().map(|l| format!("line {l}")).collect(),
    })
}

/// Node features (n, d) from a table file.
pub fn read_nodes(path: &Path) -> Result<Table> {
    let t = read_table(path)?;
    if t.rows < 2 || t.cols == 0 {
        return Err(parse_err(
            path,
            format!(
                "expected one row of features per node (at least 2 nodes), got {} rows of {} values",
                t.rows, t.cols
            ),
        ));
    }
    Ok(t)
}

/// Edges `i, j[, w]` (0-based node indices; w = 1 when absent) of a graph on `n` nodes.
/// Self-loops, indices that are not whole numbers in 0..n, and negative or non-finite weights
/// are errors naming the line; zero-weight edges are dropped.
pub fn read_edges(path: &Path, n: usize) -> Result<(Vec<[u32; 2]>, Vec<f64>)> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    // CSV rows may mix `i, j` and `i, j, w`.
    let t = if is_npy {
        read_table(path)?
    } else {
        let csv = crate::io::read_numbers_csv(path)?;
        if let Some((r, l)) = csv
            .rows
            .iter()
            .zip(&csv.lines)
            .find(|(r, _)| !(2..=3).contains(&r.len()))
        {
            return Err(parse_err(
                path,
                format!(
                    "line {l}: expected `i, j` or `i, j, w`, got {} values",
                    r.len()
                ),
            ));
        }
        Table {
            rows: csv.rows.len(),
            cols: 3,
            values: csv
                .rows
                .iter()
                .flat_map(|r| [r[0], r[1], r.get(2).copied().unwrap_or(1.0)])
                .collect(),
            places: csv.lines.iter().map(|l| format!("line {l}")).collect(),
        }
    };
    if t.rows == 0 || !(2..=3).contains(&t.cols) {
        return Err(parse_err(
            path,
            format!(
                "expected rows `i, j` or `i, j, w`, got {} rows of {} values",
                t.rows, t.cols
            ),
        ));
    }
    let mut edges = Vec::with_capacity(t.rows);
    let mut weights = Vec::with_capacity(t.rows);
    for (r, place) in t.places.iter().enumerate() {
        let row = &t.values[r * t.cols..(r + 1) * t.cols];
        let index = |v: f64| -> Result<u32> {
            if v.fract() == 0.0 && v >= 0.0 && v < n as f64 {
                Ok(v as u32)
            } else {
                Err(parse_err(
                    path,
                    format!("{place}: node index {v} is not a whole number in 0..{n}"),
                ))
            }
        };
        let (i, j) = (index(row[0])?, index(row[1])?);
        if i == j {
            return Err(parse_err(path, format!("{place}: self-loop on node {i}")));
        }
        let w = if t.cols == 3 { row[2] } else { 1.0 };
        if !(w >= 0.0 && w.is_finite()) {
            return Err(parse_err(
                path,
                format!("{place}: the weight {w} is not a finite non-negative number"),
            ));
        }
        if w > 0.0 {
            edges.push([i, j]);
            weights.push(w);
        }
    }
    if edges.is_empty() {
        return Err(parse_err(path, "no edge has a positive weight".into()));
    }
    Ok((edges, weights))
}

/// Episode starts for `--sequence` (row indices, ascending, in 0..n; 0 may be left out).
pub fn read_episode_starts(path: &Path, n: usize) -> Result<Vec<usize>> {
    let t = read_table(path)?;
    let mut starts = Vec::with_capacity(t.values.len());
    for (k, &v) in t.values.iter().enumerate() {
        if !(v.fract() == 0.0 && v >= 0.0 && v < n as f64) {
            return Err(parse_err(
                path,
                format!("value {}: {v} is not a row index in 0..{n}", k + 1),
            ));
        }
        if starts.last().is_some_and(|&p| p >= v as usize) {
            return Err(parse_err(
                path,
                format!(
                    "value {}: the starts must increase ({v} follows a larger one)",
                    k + 1
                ),
            ));
        }
        starts.push(v as usize);
    }
    Ok(starts)
}

/// The path graph of a time series of `n` rows: an edge of weight 1 between consecutive rows,
/// none across an episode start.
pub fn sequence_edges(n: usize, episode_starts: &[usize]) -> Result<(Vec<[u32; 2]>, Vec<f64>)> {
    let mut cut = vec![false; n];
    for &s in episode_starts {
        if s < n {
            cut[s] = true;
        }
    }
    let edges: Vec<[u32; 2]> = (1..n)
        .filter(|&t| !cut[t])
        .map(|t| [t as u32 - 1, t as u32])
        .collect();
    if edges.is_empty() {
        return Err(SpinError::Config(
            "the sequence has no two consecutive rows in one episode".into(),
        ));
    }
    let w = vec![1.0; edges.len()];
    Ok((edges, w))
}

/// Each point's `k` nearest other points (index, squared distance), nearest first.
pub type Neighbours = Vec<Vec<(u32, f64)>>;

/// Feature dimensions up to which the k-d tree is used; above, exact brute force.
pub const KD_TREE_MAX_DIM: usize = 8;

/// The `k` nearest neighbours of every point of `features` (n, d): kiddo's immutable k-d tree
/// for d ≤ [`KD_TREE_MAX_DIM`], brute force above; on every core.
pub fn nearest_neighbours(features: &[f64], dim: usize, k: usize) -> Result<Neighbours> {
    let n = features.len() / dim.max(1);
    if k == 0 || k >= n {
        return Err(SpinError::Config(format!(
            "--knn needs 1 ≤ K < n = {n}, got {k}"
        )));
    }
    macro_rules! tree {
        ($($d:literal),*) => {
            match dim {
                $($d => knn_tree::<$d>(features, k),)*
                _ => knn_brute(features, dim, k),
            }
        };
    }
    Ok(tree!(1, 2, 3, 4, 5, 6, 7, 8))
}

/// Runs `f` on every index in 0..n in chunks on all cores, collecting the results in order.
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                let f = &f;
                scope.spawn(move || (start..(start + per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a neighbour search thread panicked"))
            .collect()
    })
}

fn knn_tree<const D: usize>(features: &[f64], k: usize) -> Neighbours {
    use kiddo::immutable::float::kdtree::ImmutableKdTree;
    let points: Vec<[f64; D]> = features
        .chunks_exact(D)
        .map(|c| c.try_into().expect("chunks of D"))
        .collect();
    let tree: ImmutableKdTree<f64, u64, D, 32> = ImmutableKdTree::new_from_slice(&points);
    let want = NonZero::new(k + 1).expect("k + 1 > 0");
    par_map(points.len(), |i| {
        tree.nearest_n::<kiddo::SquaredEuclidean>(&points[i], want)
            .into_iter()
            .filter(|nb| nb.item != i as u64)
            .take(k)
            .map(|nb| (nb.item as u32, nb.distance))
            .collect()
    })
}

fn knn_brute(features: &[f64], dim: usize, k: usize) -> Neighbours {
    let n = features.len() / dim;
    par_map(n, |i| {
        let x = &features[i * dim..(i + 1) * dim];
        let mut d: Vec<(u32, f64)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let y = &features[j * dim..(j + 1) * dim];
                let s: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
                (j as u32, s)
            })
            .collect();
        d.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
        d.truncate(k);
        d.sort_by(|a, b| a.1.total_cmp(&b.1));
        d
    })
}

/// The symmetric K-nearest-neighbour graph (maths §11): an edge where either point is among the
/// other's K nearest, weight exp(−‖x_i − x_j‖²/2σ²), σ the median distance to the K-th
/// neighbour unless `bandwidth` is given. Returns the edges, their weights and σ.
pub fn knn_edges(
    neighbours: &Neighbours,
    bandwidth: Option<f64>,
) -> Result<(Vec<[u32; 2]>, Vec<f64>, f64)> {
    let sigma = match bandwidth {
        Some(b) if b > 0.0 && b.is_finite() => b,
        Some(b) => {
            return Err(SpinError::Config(format!(
                "--bandwidth must be a positive number, got {b}"
            )))
        }
        None => {
            let mut kth: Vec<f64> = neighbours
                .iter()
                .filter_map(|l| l.last().map(|p| p.1.sqrt()))
                .collect();
            let mid = kth.len() / 2;
            kth.select_nth_unstable_by(mid, f64::total_cmp);
            kth[mid]
        }
    };
    if sigma <= 0.0 {
        return Err(SpinError::Config(
            "the median distance to the K-th neighbour is 0 (more than K copies of most points): \
             give --bandwidth or a larger --knn"
                .into(),
        ));
    }
    let mut pairs: Vec<(u32, u32, f64)> = neighbours
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.iter()
                .map(move |&(j, d2)| ((i as u32).min(j), (i as u32).max(j), d2))
        })
        .collect();
    pairs.sort_unstable_by_key(|p| (p.0, p.1));
    pairs.dedup_by_key(|p| (p.0, p.1));
    let edges = pairs.iter().map(|p| [p.0, p.1]).collect();
    let weights = pairs
        .iter()
        .map(|p| (-p.2 / (2.0 * sigma * sigma)).exp())
        .collect();
    Ok((edges, weights, sigma))
}
