//! `spin graph`: the readers and their errors, the kNN graph against brute force, the edge
//! batch against the dense Laplacian (and the GPU step against the f64 oracle), the exact
//! moments and the sparse eigensolver against dense linear algebra, the subspace measures,
//! the alias sampler, and end-to-end runs with `spin eval`.

use super::common;

use std::path::PathBuf;
use std::process::Command;

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::data::graph::{self, Graph};
use spectral_inference::experiments::graph::exact::{self, Form};
use spectral_inference::experiments::graph::sampler::Alias;
use spectral_inference::nn::{Activation, NetworkSpec};
use spectral_inference::operators::{self, Batch};
use spectral_inference::spin::EngineOptions;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spin-graph-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A random connected weighted graph: a cycle plus random chords.
fn random_graph(n: usize, chords: usize, seed: u64) -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut edges: Vec<[u32; 2]> = (0..n).map(|i| [i as u32, ((i + 1) % n) as u32]).collect();
    while edges.len() < n + chords {
        let (a, b) = (rng.random_range(0..n as u32), rng.random_range(0..n as u32));
        if a != b {
            edges.push([a, b]);
        }
    }
    let weights = edges.iter().map(|_| rng.random_range(0.2..2.0)).collect();
    Graph {
        n,
        dim: 2,
        features: (0..2 * n).map(|_| rng.random_range(-1.0..1.0)).collect(),
        edges,
        weights,
    }
}

fn dense(g: &Graph) -> (DMatrix<f64>, DMatrix<f64>) {
    let mut w = DMatrix::zeros(g.n, g.n);
    for (e, &x) in g.edges.iter().zip(&g.weights) {
        w[(e[0] as usize, e[1] as usize)] += x;
        w[(e[1] as usize, e[0] as usize)] += x;
    }
    let d = DMatrix::from_diagonal(&w.column_sum());
    (&d - &w, d)
}

#[test]
fn readers_take_csv_with_a_header_and_npy() {
    let dir = temp_dir("readers");
    let nodes = write(&dir, "nodes.csv", "x,y\n0,1\n2,3\n4,5\n");
    let t = graph::read_nodes(&nodes).unwrap();
    assert_eq!((t.rows, t.cols), (3, 2));
    assert_eq!(t.values, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let arr = spectral_inference::data::npy::NpyArray::new(
        vec![3, 2],
        spectral_inference::data::npy::NpyData::F32(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
    )
    .unwrap();
    let npy = dir.join("nodes.npy");
    std::fs::write(&npy, arr.to_bytes()).unwrap();
    let t2 = graph::read_nodes(&npy).unwrap();
    assert_eq!((t2.rows, t2.cols, t2.values), (3, 2, t.values));
    let edges = write(&dir, "edges.csv", "# i j w\n0 1 2.5\n1,2\n");
    let (e, w) = graph::read_edges(&edges, 3).unwrap();
    assert_eq!(e, vec![[0, 1], [1, 2]]);
    assert_eq!(w, vec![2.5, 1.0]);
    let starts = write(&dir, "starts.csv", "0\n5\n9\n");
    assert_eq!(
        graph::read_episode_starts(&starts, 12).unwrap(),
        vec![0, 5, 9]
    );
    let (seq, _) = graph::sequence_edges(12, &[0, 5, 9]).unwrap();
    assert_eq!(seq.len(), 11 - 2);
    assert!(!seq.contains(&[4, 5]) && !seq.contains(&[8, 9]));
}

#[test]
fn bad_edges_name_the_line() {
    let dir = temp_dir("bad");
    for (name, text, needle) in [
        ("loop.csv", "0,1\n2,2\n", "line 2: self-loop on node 2"),
        (
            "range.csv",
            "0,1\n1,7\n",
            "line 2: node index 7 is not a whole number in 0..3",
        ),
        ("frac.csv", "0,1.5\n", "line 1: node index 1.5"),
        ("neg.csv", "0,1,1\n1,2,-3\n", "line 2: the weight -3"),
        ("nan.csv", "0,1\n1,2,x\n", "line 2, column 3"),
        (
            "cols.csv",
            "0,1,1,1\n",
            "line 1: expected `i, j` or `i, j, w`, got 4 values",
        ),
    ] {
        let p = write(&dir, name, text);
        let e = graph::read_edges(&p, 3).unwrap_err().to_string();
        assert!(e.contains(needle), "{name}: {e}");
        assert!(e.contains(name), "{name}: the error names the file: {e}");
    }
    let g = Graph {
        n: 3,
        dim: 1,
        features: vec![0.0; 3],
        edges: vec![[0, 1]],
        weights: vec![1.0],
    };
    let e = g.check_no_isolated().unwrap_err().to_string();
    assert!(e.contains("node 2 has no edge"), "{e}");
    let ragged = write(&dir, "ragged.csv", "1,2\n3\n");
    let e = graph::read_nodes(&ragged).unwrap_err().to_string();
    assert!(e.contains("line 2 has 1 values"), "{e}");
}

#[test]
fn knn_matches_brute_force() {
    for (dim, n, k) in [(2usize, 300usize, 7usize), (3, 400, 10), (9, 120, 5)] {
        let mut rng = ChaCha8Rng::seed_from_u64(dim as u64);
        let x: Vec<f64> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let nb = graph::nearest_neighbours(&x, dim, k).unwrap();
        for i in 0..n {
            let mut d: Vec<(usize, f64)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let s = (0..dim)
                        .map(|c| (x[i * dim + c] - x[j * dim + c]).powi(2))
                        .sum::<f64>();
                    (j, s)
                })
                .collect();
            d.sort_by(|a, b| a.1.total_cmp(&b.1));
            let want: Vec<usize> = d[..k].iter().map(|p| p.0).collect();
            let got: Vec<usize> = nb[i].iter().map(|p| p.0 as usize).collect();
            assert_eq!(got, want, "d {dim}, node {i}");
            for (p, q) in nb[i].iter().zip(&d[..k]) {
                assert!((p.1 - q.1).abs() < 1e-12);
            }
        }
        // Symmetric: an edge where either is among the other's K nearest; σ the median K-th
        // distance; weights Gaussian.
        let (edges, w, sigma) = graph::knn_edges(&nb, None).unwrap();
        let mut kth: Vec<f64> = nb.iter().map(|l| l[k - 1].1.sqrt()).collect();
        kth.sort_by(f64::total_cmp);
        assert!((sigma - kth[n / 2]).abs() < 1e-12);
        for (e, &wt) in edges.iter().zip(&w) {
            let (a, b) = (e[0] as usize, e[1] as usize);
            assert!(a < b);
            let in_a = nb[a].iter().any(|p| p.0 as usize == b);
            let in_b = nb[b].iter().any(|p| p.0 as usize == a);
            assert!(in_a || in_b);
            let d2: f64 = (0..dim)
                .map(|c| (x[a * dim + c] - x[b * dim + c]).powi(2))
                .sum();
            assert!((wt - (-d2 / (2.0 * sigma * sigma)).exp()).abs() < 1e-12);
        }
        let directed: std::collections::HashSet<(usize, usize)> = nb
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.iter()
                    .map(move |p| (i.min(p.0 as usize), i.max(p.0 as usize)))
            })
            .collect();
        assert_eq!(edges.len(), directed.len());
    }
}

/// Every edge once in a batch: Σ̂ and Π̂ (the CPU oracle of the GPU reductions) are the exact
/// moments of the form, which are Uᵀ D U / 2W and Uᵀ L U / 2W (random walk) or Uᵀ U / n and
/// Uᵀ L U / n (combinatorial).
#[test]
fn the_edge_batch_and_the_exact_moments_are_the_dense_laplacian() {
    // Unit weights, so that drawing edges by weight is drawing every edge once.
    let mut g = random_graph(30, 25, 3);
    g.weights = vec![1.0; g.edges.len()];
    let (l, d) = dense(&g);
    let k = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let u_nodes: Vec<f64> = (0..g.n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let um = DMatrix::from_row_slice(g.n, k, &u_nodes);
    let close = |a: &DMatrix<f64>, b: &DMatrix<f64>, tol: f64, what: &str| {
        let err = (a - b).amax();
        assert!(err < tol * b.amax().max(1e-30), "{what}: {a} vs {b}");
    };
    for form in [Form::RandomWalk, Form::Combinatorial] {
        let (sigma, pi) = exact::moments(&g, form, &u_nodes, k);
        let (want_s, want_p) = match form {
            Form::RandomWalk => {
                let m = 2.0 * g.total_weight();
                (um.transpose() * &d * &um / m, um.transpose() * &l * &um / m)
            }
            Form::Combinatorial => {
                let n = g.n as f64;
                (um.transpose() * &um / n, um.transpose() * &l * &um / n)
            }
        };
        close(&sigma, &want_s, 1e-10, "exact Σ");
        close(&pi, &want_p, 1e-10, "exact Π");

        // The minibatch: the rows are the endpoints of every edge (after every node once for
        // the combinatorial form), the batch scale of the form.
        let nodes = if form == Form::Combinatorial { g.n } else { 0 };
        let mut rows: Vec<usize> = (0..nodes).collect();
        for e in &g.edges {
            rows.push(e[1] as usize);
            rows.push(e[0] as usize);
        }
        let inputs = vec![0.0f32; rows.len()];
        let batch = Batch::edges(&inputs, 1, nodes, form.batch_scale(&g)).unwrap();
        batch.validate().unwrap();
        let u_rows: Vec<f64> = rows
            .iter()
            .flat_map(|&r| u_nodes[r * k..(r + 1) * k].to_vec())
            .collect();
        let (xs, ys) = operators::apply(&batch, &u_rows, k);
        let (s_hat, p_hat) = operators::statistics(&batch, &u_rows, &xs, &ys, k);
        // The batch's coefficients are f32.
        close(
            &DMatrix::from_row_slice(k, k, &s_hat),
            &want_s,
            1e-6,
            "batch Σ̂",
        );
        close(
            &DMatrix::from_row_slice(k, k, &p_hat),
            &want_p,
            1e-6,
            "batch Π̂",
        );
    }
}

/// The GPU step (forward, Σ̂, Π̂, J̄, gradient) on edge batches against the f64 oracle.
#[test]
fn gpu_step_on_edge_batches_matches_the_oracle() {
    let spec = NetworkSpec {
        input_dim: 3,
        hidden: vec![16, 16],
        outputs: 5,
        activation: Activation::Softplus,
        constant_first: true,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for nodes in [0usize, 24] {
        let rows = nodes + 2 * 40;
        let inputs: Vec<f32> = (0..rows * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let batch = Batch::edges(&inputs, 3, nodes, 0.5).unwrap();
        common::check_engine(&spec, &batch, 0.5, 6, EngineOptions::default());
    }
}

#[test]
fn the_sparse_eigensolver_matches_dense_eigenpairs() {
    // 60 nodes are solved densely, 800 by Krylov–Schur.
    for (g, form) in [
        (random_graph(60, 40, 7), Form::RandomWalk),
        (random_graph(60, 40, 7), Form::Combinatorial),
        (random_graph(800, 700, 8), Form::RandomWalk),
        (random_graph(800, 700, 8), Form::Combinatorial),
    ] {
        let (l, d) = dense(&g);
        let k = 6;
        // Dense: the symmetric form's eigenvalues.
        let sym = match form {
            Form::RandomWalk => {
                let s = d.map_diagonal(|v| 1.0 / v.sqrt());
                let s = DMatrix::from_diagonal(&s);
                &s * &l * &s
            }
            Form::Combinatorial => l.clone(),
        };
        let mut want: Vec<f64> = sym.symmetric_eigenvalues().iter().copied().collect();
        want.sort_by(f64::total_cmp);
        let (values, vectors) = exact::reference_eigenpairs(&g, form, k).unwrap();
        for (a, b) in values.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-8 * want[k - 1],
                "{form:?}: {values:?} vs {want:?}"
            );
        }
        // Each vector solves L f = λ M f (M = D or I) and is M-normalised.
        let m = match form {
            Form::RandomWalk => d.clone() / (2.0 * g.total_weight()),
            Form::Combinatorial => DMatrix::identity(g.n, g.n) / g.n as f64,
        };
        let scale = match form {
            Form::RandomWalk => 2.0 * g.total_weight(),
            Form::Combinatorial => g.n as f64,
        };
        for (v, f) in values.iter().zip(&vectors) {
            let f = nalgebra::DVector::from_column_slice(f);
            let r = &l * &f / scale - &m * &f * *v;
            let size = (&l * &f / scale).amax() + (&m * &f).amax() * values[k - 1];
            assert!(r.amax() < 1e-7 * size, "{form:?} residual {}", r.amax());
            assert!(((f.transpose() * &m * &f)[(0, 0)] - 1.0).abs() < 1e-9);
        }
        // The exact vectors span themselves: zero angles, R² = 1; a shifted basis of the same
        // span too.
        let w = form.node_weights(&g);
        let u: Vec<f64> = (0..g.n)
            .flat_map(|i| {
                let row: Vec<f64> = (0..k).map(|j| vectors[j][i]).collect();
                (0..k)
                    .map(move |j| row[j] + 0.5 * row[(j + 1) % k])
                    .collect::<Vec<_>>()
            })
            .collect();
        let fit = exact::subspace_fit(&u, k, &vectors, &w).unwrap();
        assert!(
            fit.principal_angles_degrees.iter().all(|a| *a < 1e-4),
            "{fit:?}"
        );
        assert!(fit.r2.iter().all(|r| (r - 1.0).abs() < 1e-9), "{fit:?}");
    }
}

#[test]
fn subspace_fit_sees_an_orthogonal_direction() {
    // Nodes weighted uniformly; u spans e0, e1; the exact vectors e0 and e2.
    let n = 5;
    let w = vec![0.2; n];
    let mut u = vec![0.0; n * 2];
    u[0] = 1.0;
    u[3] = 1.0;
    let mut f0 = vec![0.0; n];
    f0[0] = 1.0;
    let mut f2 = vec![0.0; n];
    f2[2] = 1.0;
    let fit = exact::subspace_fit(&u, 2, &[f0, f2], &w).unwrap();
    assert!(fit.principal_angles_degrees[0].abs() < 1e-6);
    assert!((fit.principal_angles_degrees[1] - 90.0).abs() < 1e-6);
    assert!((fit.r2[0] - 1.0).abs() < 1e-12 && fit.r2[1].abs() < 1e-12);
}

#[test]
fn the_alias_table_draws_by_weight() {
    let weights = [0.5, 3.0, 0.0, 1.5, 5.0];
    let alias = Alias::new(&weights);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let draws = 200_000;
    let mut counts = [0usize; 5];
    for _ in 0..draws {
        counts[alias.draw(&mut rng)] += 1;
    }
    let total: f64 = weights.iter().sum();
    for (c, w) in counts.iter().zip(&weights) {
        let p = w / total;
        let sd = (p * (1.0 - p) / draws as f64).sqrt();
        let got = *c as f64 / draws as f64;
        assert!((got - p).abs() <= 5.0 * sd + 1e-12, "{counts:?}");
    }
    assert_eq!(counts[2], 0);
}

fn spin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .output()
        .unwrap()
}

/// A cycle of `n` nodes on the unit circle, written into `dir`: (nodes.csv, edges.csv).
fn ring(dir: &std::path::Path, n: usize) -> (PathBuf, PathBuf) {
    let mut nodes = String::new();
    let mut edges = String::new();
    for i in 0..n {
        let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        nodes.push_str(&format!("{},{}\n", t.cos(), t.sin()));
        edges.push_str(&format!("{i},{}\n", (i + 1) % n));
    }
    (
        write(dir, "nodes.csv", &nodes),
        write(dir, "edges.csv", &edges),
    )
}

/// A cycle of 120 nodes on the unit circle: the learned eigenvalues approach the exact ones
/// (1 − cos 2πk/n, twice each), the exact evaluation agrees with the solver, and `spin eval`
/// gives the same eigenfunction values as the run's own test-node file.
#[test]
fn a_ring_end_to_end_with_eval() {
    let dir = temp_dir("ring");
    let n = 120;
    let (nodes, edges) = ring(&dir, n);
    let test = write(&dir, "test.csv", "x,y\n1,0\n0,1\n-0.6,0.8\n");
    let out = dir.join("run");
    let o = spin(&[
        "--quiet",
        "graph",
        "--nodes",
        nodes.to_str().unwrap(),
        "--edges",
        edges.to_str().unwrap(),
        "--test-nodes",
        test.to_str().unwrap(),
        "--neig",
        "5",
        "--hidden",
        "32,32",
        "--batch",
        "256",
        "--steps",
        "400",
        "--lr",
        "3e-3",
        "--heldout-every",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let list = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let exact = list(&m["exact"]["eigenvalues"]);
    for (k, want) in [0.0, 1.0, 1.0, 2.0, 2.0].iter().enumerate() {
        let closed = 1.0 - (2.0 * std::f64::consts::PI * want / n as f64).cos();
        assert!((exact[k] - closed).abs() < 1e-9, "solver {exact:?}");
    }
    let ours = list(&m["eigenvalues"]);
    assert!(ours[0].abs() < 1e-3 * exact[1], "λ₀ {ours:?}");
    for k in 1..5 {
        assert!(
            (ours[k] - exact[k]).abs() < 0.05 * exact[k],
            "λ{k}: {ours:?} vs {exact:?}"
        );
        // Ritz values of any basis bound the exact ones from above.
        assert!(ours[k] >= exact[k] * (1.0 - 1e-6));
    }
    let r2 = list(&m["exact"]["subspace"]["r2"]);
    assert!(r2.iter().all(|r| *r > 0.95), "R² {r2:?}");
    // The held-out curve has a row per 200 steps.
    let held = std::fs::read_to_string(out.join("heldout.csv")).unwrap();
    assert_eq!(held.lines().count(), 3, "{held}");

    let e = spin(&[
        "eval",
        "--checkpoint",
        out.to_str().unwrap(),
        "--points",
        test.to_str().unwrap(),
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let from_eval = String::from_utf8_lossy(&e.stdout).to_string();
    let from_run = std::fs::read_to_string(out.join("test-eigenfunctions.csv")).unwrap();
    let parse = |t: &str| -> Vec<f64> {
        t.lines()
            .skip(1)
            .flat_map(|l| {
                l.split(',')
                    .map(|c| c.parse::<f64>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (a, b) = (parse(&from_eval), parse(&from_run));
    assert_eq!(a.len(), 3 * (2 + 5));
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
            "{from_eval} vs {from_run}"
        );
    }
}

#[test]
fn spin_graph_rejects_bad_input_clearly() {
    let dir = temp_dir("cli");
    let nodes = write(&dir, "nodes.csv", "0,0\n1,0\n0,1\n");
    let edges = write(&dir, "edges.csv", "0,1\n1,1\n");
    let n = nodes.to_str().unwrap();
    for (args, needle) in [
        (vec!["graph", "--nodes", n], "give the edges"),
        (
            vec!["graph", "--nodes", n, "--edges", edges.to_str().unwrap()],
            "line 2: self-loop on node 1",
        ),
        (
            vec!["graph", "--nodes", n, "--knn", "2", "--batch", "7"],
            "--batch must be a positive multiple of 2",
        ),
        (
            vec!["graph", "--nodes", n, "--knn", "5"],
            "--knn needs 1 ≤ K < n = 3",
        ),
        (
            vec!["graph", "--nodes", n, "--edges", "/nonexistent/e.csv"],
            "/nonexistent/e.csv",
        ),
        (
            vec![
                "graph",
                "--nodes",
                n,
                "--knn",
                "1",
                "--laplacian",
                "normalised",
            ],
            "random-walk or combinatorial",
        ),
    ] {
        let o = spin(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// `--test-sequence`: every learned feature's λ along a held-out series (the constant's 0), and
/// linear SFA's fitted on the training series, which on (cos ωt, sin ωt) is 1 − cos ω for both
/// directions on any series of that frequency; a held-out series with other features, or one
/// without `--sequence`, is refused.
#[test]
fn a_held_out_series_gets_each_features_lambda() {
    let dir = temp_dir("test-sequence");
    let series = |phase: f64| -> String {
        (0..2000)
            .map(|t| {
                let a = 0.05 * t as f64 + phase;
                format!("{},{}\n", a.cos(), a.sin())
            })
            .collect()
    };
    let train = write(&dir, "train.csv", &series(0.0));
    let test = write(&dir, "test.csv", &series(1.3));
    let other = write(&dir, "other.csv", "1,2,3\n4,5,6\n");
    let out = dir.join("out");
    let run = |test: &std::path::Path, sequence: bool| {
        let mut args = vec!["graph", "--nodes", train.to_str().unwrap()];
        if sequence {
            args.push("--sequence");
        } else {
            args.extend(["--knn", "3"]);
        }
        args.extend([
            "--test-sequence",
            test.to_str().unwrap(),
            "--neig",
            "3",
            "--hidden",
            "16",
            "--steps",
            "60",
            "--heldout-every",
            "0",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        spin(&args)
    };
    let o = run(&test, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let t = &m["test_sequence"];
    assert_eq!(t["rows"], 2000, "{t}");
    let ours: Vec<f64> = serde_json::from_value(t["eigenvalues"].clone()).unwrap();
    assert_eq!(ours.len(), 3);
    assert_eq!(ours[0], 0.0, "the constant: {ours:?}");
    assert!(ours.iter().all(|l| l.is_finite() && *l >= 0.0), "{ours:?}");
    let sum: f64 = ours.iter().sum();
    assert!((t["sum"].as_f64().unwrap() - sum).abs() < 1e-12);
    let linear: Vec<f64> = serde_json::from_value(t["linear_eigenvalues"].clone()).unwrap();
    let want = 1.0 - 0.05f64.cos();
    assert_eq!(linear[0], 0.0);
    for l in &linear[1..] {
        assert!((l - want).abs() < 0.02 * want, "{linear:?} vs {want}");
    }
    let o = run(&other, true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("held-out series has 3 features"),
        "{err}"
    );
    let o = run(&test, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--sequence"), "{err}");
}

/// The exact evaluation reads the 128-wide last hidden layer at every node: an evaluation
/// engine's per-chunk N×N statistics grow with N² per row, so 70 000 nodes take more than one
/// piece on a 128 MiB binding limit; the pieces give the same values as a small batch.
#[test]
fn the_hidden_layer_of_many_nodes_is_read_in_pieces() {
    use spectral_inference::experiments::graph::{EdgeSource, GraphConfig, GraphModel};
    let g = random_graph(70_000, 0, 5);
    let cfg = GraphConfig::ours(PathBuf::from("nodes.csv"), EdgeSource::Sequence(None));
    let model = GraphModel::new(common::ctx(), &cfg, &g).unwrap();
    let all = model.hidden(&g.features).unwrap();
    let width = all.len() / g.n;
    assert_eq!(width, cfg.hidden.last().unwrap() + 1);
    let tail = &g.features[(g.n - 50) * 2..];
    let few = model.hidden(tail).unwrap();
    let from_all = &all[(g.n - 50) * width..];
    for (a, b) in few.iter().zip(from_all) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

/// `spin graph --seeds 2` on a ring: each seed into OUT/seed-S, and seeds.json with Σλ and the
/// relative errors against the sparse solver, with their median and worst.
#[test]
fn seeds_run_each_seed_and_summarise_the_errors() {
    let dir = temp_dir("seeds");
    let (nodes, edges) = ring(&dir, 60);
    let out = dir.join("run");
    let o = spin(&[
        "--quiet",
        "graph",
        "--nodes",
        nodes.to_str().unwrap(),
        "--edges",
        edges.to_str().unwrap(),
        "--neig",
        "3",
        "--hidden",
        "16",
        "--batch",
        "64",
        "--steps",
        "50",
        "--seed",
        "7",
        "--seeds",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sums = common::check_seeds_summary(&out, &[7, 8], "eigenvalue_sum");
    let errors = common::check_seeds_summary(&out, &[7, 8], "mean_relative_error");
    for (seed, (sum, error)) in [7, 8].iter().zip(sums.iter().zip(&errors)) {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("seed-{seed}/metrics.json"))).unwrap(),
        )
        .unwrap();
        let ev: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone()).unwrap();
        assert!(
            (ev.iter().sum::<f64>() - sum).abs() <= 1e-12,
            "{ev:?} vs {sum}"
        );
        let rel: Vec<f64> = serde_json::from_value(m["exact"]["relative_errors"].clone()).unwrap();
        let mean = rel.iter().sum::<f64>() / rel.len() as f64;
        assert!((mean - error).abs() <= 1e-12, "{rel:?} vs {error}");
    }
    // --seeds starts new runs: resuming one with it is a clear error.
    let o = spin(&[
        "graph",
        "--resume",
        out.join("seed-7").to_str().unwrap(),
        "--seeds",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--seeds starts new runs"));
}
