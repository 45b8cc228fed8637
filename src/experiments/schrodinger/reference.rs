//! A Schrödinger run's reference eigenvalues: closed forms, the two-electron models' levels and
//! the finite-difference grid's extrapolated eigenvalues.

use super::config::*;
use super::{harmonic_eigenvalues, hydrogen_eigenvalues};
use crate::error::Result;
use crate::experiments::grid::{self, GridConfig, GridResult};

impl SchrodingerConfig {
    /// The closed-form eigenvalues, where known (hydrogen in 2D/3D, the isotropic oscillator),
    /// and the two-electron models' references (in the `--exchange` sector).
    pub fn exact_eigenvalues(&self) -> Option<Vec<f64>> {
        match self.potential.as_str() {
            "hydrogen" => hydrogen_eigenvalues(self.dim, self.charge, self.kinetic, self.neig),
            "harmonic" => Some(harmonic_eigenvalues(self.dim, self.kinetic, self.neig)),
            "soft-coulomb" | "helium" => self.exact_levels().map(|l| l.0),
            _ => self.expression_reference(),
        }
    }

    /// The key of this setting's grid references.
    fn grid_key(&self, n: usize) -> String {
        format!(
            "{} {} {} {} {} {} {} {n}",
            self.potential,
            self.dim,
            self.particles,
            self.charge,
            self.kinetic,
            self.half_width,
            self.neig
        )
    }

    /// The grid's solutions for the potential `field` in this box at `n` and 2n + 1 points per
    /// axis.
    fn grid_pair(
        &self,
        field: &crate::operators::ScalarField,
        n: usize,
    ) -> Result<(GridResult, GridResult)> {
        let solve = |n: usize| {
            grid::solve(
                &GridConfig {
                    dim: self.dim,
                    n,
                    half_width: self.half_width,
                    kinetic: self.kinetic,
                    neig: self.neig,
                },
                field,
            )
        };
        Ok((solve(n)?, solve(2 * n + 1)?))
    }

    /// The grid reference of an expression potential, once
    /// [`SchrodingerConfig::prepare_expression_reference`] has computed and accepted it in this
    /// process.
    fn expression_reference(&self) -> Option<Vec<f64>> {
        if !self.envelope {
            return None;
        }
        expression_references()
            .lock()
            .ok()?
            .get(&self.grid_key(GRID_REFERENCE_N))
            .cloned()
            .flatten()
    }

    /// For a potential given as an expression (no closed form) on a 1D or 2D configuration
    /// space without an exchange sector, with the box envelope (the grid's zero boundary):
    /// solves the grid at [`GRID_REFERENCE_N`] and 2n + 1
    /// points per axis (the expression evaluated on `ctx`) and keeps the Richardson-extrapolated
    /// eigenvalues as the run's reference when the extrapolation moved each by at most
    /// [`EXPRESSION_REFERENCE_TOLERANCE`] of max(|E_k|, E_{N−1} − E_0): converging as h², as a
    /// smooth potential does. A singular one (−1/|x|) converges more slowly and gets no
    /// reference. Returns `None` where no grid reference applies, else whether one is kept.
    pub fn prepare_expression_reference(
        &self,
        ctx: &std::sync::Arc<crate::gpu::GpuContext>,
    ) -> Result<Option<bool>> {
        if self.builtin_potential().is_some()
            || !self.envelope
            || self.dim > 2
            || (self.particles > 1 && self.exchange != ExchangeKind::None)
        {
            return Ok(None);
        }
        let key = self.grid_key(GRID_REFERENCE_N);
        if let Some(kept) = expression_references()
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(Some(kept.is_some()));
        }
        let field = self.potential_field(ctx)?;
        let (coarse, fine) = self.grid_pair(&field, GRID_REFERENCE_N)?;
        let fine = fine.eigenvalues;
        let e = richardson(&coarse.eigenvalues, &fine);
        let spread = e[e.len() - 1] - e[0];
        let converged = e
            .iter()
            .zip(&fine)
            .all(|(x, f)| (x - f).abs() <= EXPRESSION_REFERENCE_TOLERANCE * x.abs().max(spread));
        let kept = converged.then_some(e);
        if let Ok(mut c) = expression_references().lock() {
            c.insert(key, kept.clone());
        }
        Ok(Some(kept.is_some()))
    }

    /// The two-electron models' reference levels and their exchange parities: the lowest N of
    /// the `--exchange` sector (all levels without it). Helium: Drake's nine levels through
    /// 2¹P, for Z = 2 and kinetic ½ (5 singlets, 4 triplets); the 1D model: the grid's.
    pub fn exact_levels(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        let in_sector = |p: f64| self.exchange.parity().is_none_or(|s| s * p > 0.0);
        let pick = |levels: Vec<(f64, f64)>| -> Option<(Vec<f64>, Vec<f64>)> {
            let chosen: Vec<(f64, f64)> = levels
                .into_iter()
                .filter(|l| in_sector(l.1))
                .take(self.neig)
                .collect();
            (chosen.len() == self.neig).then(|| chosen.into_iter().unzip())
        };
        match self.potential.as_str() {
            "helium" if self.charge == 2.0 && self.kinetic == 0.5 => {
                pick(super::HELIUM_LEVELS.to_vec())
            }
            "soft-coulomb" => {
                // A sector holds about half the levels: solve for enough of both.
                let mut all = self.clone();
                if self.exchange != ExchangeKind::None {
                    all.neig = 2 * self.neig + 4;
                }
                let (e, p) = all.grid_reference_with_parities(GRID_REFERENCE_N).ok()?;
                pick(e.into_iter().zip(p).collect())
            }
            _ => None,
        }
    }

    /// The finite-difference grid's eigenvalues for this potential in this box (zero boundary,
    /// as the envelope), at [`GRID_REFERENCE_N`] and 2n + 1 points per axis,
    /// Richardson-extrapolated; computed once per process for each setting. For the 1D
    /// two-particle model, whose levels have no closed form.
    pub fn grid_reference(&self) -> Result<Vec<f64>> {
        self.grid_reference_at(GRID_REFERENCE_N)
    }

    /// [`SchrodingerConfig::grid_reference`] at `n` and 2n + 1 points per axis.
    pub fn grid_reference_at(&self, n: usize) -> Result<Vec<f64>> {
        Ok(self.grid_reference_with_parities(n)?.0)
    }

    /// The extrapolated eigenvalues at `n` and 2n + 1 points, and the finer grid's exchange
    /// parities (for two particles on a line; empty otherwise), computed once per setting.
    pub fn grid_reference_with_parities(&self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        type Cached = (Vec<f64>, Vec<f64>);
        static CACHE: OnceLock<Mutex<HashMap<String, Cached>>> = OnceLock::new();
        let key = self.grid_key(n);
        let cache = CACHE.get_or_init(Default::default);
        if let Some(v) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(v);
        }
        let v = self.builtin_potential().ok_or_else(|| {
            crate::error::SpinError::Config(format!(
                "no host potential for a grid reference of `{}`",
                self.potential
            ))
        })?;
        let (coarse, fine) = self.grid_pair(&v, n)?;
        let m = 2 * n + 1;
        let parities: Vec<f64> = if self.particles == 2 && self.dim == 2 {
            fine.eigenvectors
                .iter()
                .take(self.neig)
                .map(|v| {
                    let (mut cross, mut norm) = (0.0, 0.0);
                    for i in 0..m {
                        for j in 0..m {
                            cross += v[i * m + j] * v[j * m + i];
                            norm += v[i * m + j] * v[i * m + j];
                        }
                    }
                    cross / norm.max(1e-300)
                })
                .collect()
        } else {
            Vec::new()
        };
        let e = richardson(&coarse.eigenvalues, &fine.eigenvalues);
        if let Ok(mut c) = cache.lock() {
            c.insert(key, (e.clone(), parities.clone()));
        }
        Ok((e, parities))
    }
}

/// The largest relative move of an eigenvalue by the Richardson step for which
/// [`SchrodingerConfig::prepare_expression_reference`] keeps an expression potential's grid
/// reference (a smooth potential's, at the default box and n: ≈ 10⁻⁴).
pub const EXPRESSION_REFERENCE_TOLERANCE: f64 = 1e-3;

/// Expression potentials' grid references by setting: `None` where the grid had not converged.
fn expression_references(
) -> &'static std::sync::Mutex<std::collections::HashMap<String, Option<Vec<f64>>>> {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Option<Vec<f64>>>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Richardson's extrapolation of second-order values at spacings 2h (`coarse`) and h (`fine`):
/// (4 fine − coarse)/3.
fn richardson(coarse: &[f64], fine: &[f64]) -> Vec<f64> {
    coarse
        .iter()
        .zip(fine)
        .map(|(c, f)| (4.0 * f - c) / 3.0)
        .collect()
}
