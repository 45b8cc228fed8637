//! `spin grid`: the exact finite-difference baseline.

use std::path::PathBuf;

use anyhow::Result;

use super::Cli;
use spectral_inference::experiments::grid::{self, GridConfig};
use spectral_inference::experiments::schrodinger::SchrodingerConfig;

/// `spin grid`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct GridArgs {
    /// Dimension: 1, 2 or 3.
    #[arg(long, default_value_t = 2)]
    dim: usize,
    /// `hydrogen`, `harmonic` or a WGSL expression in `x`.
    #[arg(long, default_value = "hydrogen", allow_hyphen_values = true)]
    potential: String,
    /// Nuclear charge Z.
    #[arg(long, default_value_t = 1.0)]
    charge: f64,
    /// Kinetic coefficient c.
    #[arg(long, default_value_t = 1.0)]
    kinetic: f64,
    /// Box half-width D.
    #[arg(long = "box", default_value_t = 50.0)]
    half_width: f64,
    /// Interior grid points per axis.
    #[arg(long, default_value_t = 128)]
    n: usize,
    /// Eigenpairs.
    #[arg(long, default_value_t = 9)]
    neig: usize,
    /// Output folder.
    #[arg(long, default_value = "runs/grid")]
    out: PathBuf,
    /// Half-width of the picture [default: the box].
    #[arg(long)]
    plot_extent: Option<f64>,
}

/// Solves the grid problem, writes grid.json and grid.png, prints the table.
pub fn run(cli: &Cli, args: &GridArgs) -> Result<()> {
    // The potential's checks and its field are the Schrödinger configuration's.
    let mut sc = SchrodingerConfig::generic();
    sc.dim = args.dim;
    sc.potential = args.potential.clone();
    sc.charge = args.charge;
    sc.kinetic = args.kinetic;
    sc.half_width = args.half_width;
    sc.neig = args.neig;
    sc.validate()?;
    let cfg = GridConfig {
        dim: args.dim,
        n: args.n,
        half_width: args.half_width,
        kinetic: args.kinetic,
        neig: args.neig,
    };
    // Built-in potentials need no GPU; expressions are evaluated on it.
    let field = match sc.builtin_potential() {
        Some(v) => v,
        None => sc.potential_field(&super::context(cli)?)?,
    };
    let exact = sc.exact_eigenvalues();
    let extent = args.plot_extent.unwrap_or(args.half_width);
    let (r, m) = grid::run(
        &cfg,
        &args.potential,
        &field,
        exact.as_deref(),
        extent,
        &args.out,
    )?;
    println!(
        "{:>4}  {:>12}  {:>12}  {:>10}",
        "k", "grid", "exact", "rel. error"
    );
    for (k, g) in r.eigenvalues.iter().enumerate() {
        match exact.as_ref().and_then(|e| e.get(k)) {
            Some(e) => println!(
                "{k:>4}  {g:>12.6}  {e:>12.6}  {:>9.3}%",
                100.0 * (g - e).abs() / e.abs()
            ),
            None => println!("{k:>4}  {g:>12.6}"),
        }
    }
    println!(
        "{} unknowns, spacing {:.4}, {:.1} s; wrote {}",
        r.unknowns,
        r.spacing,
        m["wall_seconds"].as_f64().unwrap_or(0.0),
        args.out.display()
    );
    super::report(&args.out)
}
