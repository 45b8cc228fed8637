//! Minibatches of a graph: edges drawn by weight (Walker's alias method), and for the
//! combinatorial form nodes drawn uniformly.

use std::sync::Arc;

use rand::Rng;

use crate::operators::samplers::Sampler;

/// Draws edges (and nodes) of a graph whose nodes' network inputs are `inputs` (n, dim).
pub struct EdgeSampler {
    inputs: Arc<Vec<f64>>,
    dim: usize,
    edges: Arc<Vec<[u32; 2]>>,
    alias: Alias,
    uniform_nodes: bool,
}

impl EdgeSampler {
    /// Edges of `edges` with probability ∝ `weights`; with `uniform_nodes`, the first half of
    /// every batch is nodes drawn uniformly and the second half edges.
    pub fn new(
        inputs: Arc<Vec<f64>>,
        dim: usize,
        edges: Arc<Vec<[u32; 2]>>,
        weights: &[f64],
        uniform_nodes: bool,
    ) -> Self {
        Self {
            inputs,
            dim,
            edges,
            alias: Alias::new(weights),
            uniform_nodes,
        }
    }

    fn push(&self, node: u32, out: &mut Vec<f64>) {
        let i = node as usize * self.dim;
        out.extend_from_slice(&self.inputs[i..i + self.dim]);
    }
}

impl Sampler for EdgeSampler {
    fn dim(&self) -> usize {
        self.dim
    }
    /// `count` rows: (with `uniform_nodes`) count/2 uniform nodes, then the two endpoints of
    /// each edge, in random order; unit weights.
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let n = self.inputs.len() / self.dim;
        let nodes = if self.uniform_nodes { count / 2 } else { 0 };
        let pairs = (count - nodes) / 2;
        let mut out = Vec::with_capacity((nodes + 2 * pairs) * self.dim);
        for _ in 0..nodes {
            self.push(rng.random_range(0..n as u32), &mut out);
        }
        for _ in 0..pairs {
            let e = self.edges[self.alias.draw(rng)];
            let flip = rng.random::<bool>() as usize;
            self.push(e[flip], &mut out);
            self.push(e[1 - flip], &mut out);
        }
        (out, vec![1.0; nodes + 2 * pairs])
    }
}

/// Walker's alias table: O(1) draws from a discrete distribution.
pub struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    /// The table for probabilities ∝ `weights` (non-negative, not all zero).
    pub fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n as u32).partition(|&i| prob[i as usize] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s as usize] = l;
            prob[l as usize] -= 1.0 - prob[s as usize];
            if prob[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left is 1 up to rounding.
        for i in small.into_iter().chain(large) {
            prob[i as usize] = 1.0;
        }
        Self { prob, alias }
    }

    /// One index.
    pub fn draw(&self, rng: &mut dyn rand::RngCore) -> usize {
        let i = rng.random_range(0..self.prob.len());
        if rng.random::<f64>() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}
