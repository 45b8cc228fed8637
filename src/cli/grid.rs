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
    /// Dimension of each particle; the grid has --particles × this axes, at most 3
    /// [default: 2; --potential soft-coulomb: 1].
    #[arg(long)]
    dim: Option<usize>,
    /// Particles sharing the configuration space (an expression sees `p0`, `p1`, …)
    /// [default: 1; --potential soft-coulomb: 2].
    #[arg(long)]
    particles: Option<usize>,
    /// `hydrogen`, `harmonic`, `soft-coulomb` (the 1D two-particle model) or a WGSL expression
    /// in `x` and the particles `p0`, `p1`, ….
    #[arg(long, default_value = "hydrogen", allow_hyphen_values = true)]
    potential: String,
    /// Nuclear charge Z [default: 1; --potential soft-coulomb: 2].
    #[arg(long)]
    charge: Option<f64>,
    /// Kinetic coefficient c [default: 1; --potential soft-coulomb: 0.5].
    #[arg(long)]
    kinetic: Option<f64>,
    /// Box half-width D [default: 50; --potential soft-coulomb: 20].
    #[arg(long = "box")]
    half_width: Option<f64>,
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
    sc.half_width = 50.0;
    sc.set_potential(&args.potential);
    sc.radial = false;
    sc.set_particles(args.particles, args.dim)?;
    if let Some(c) = args.charge {
        sc.charge = c;
    }
    if let Some(k) = args.kinetic {
        sc.kinetic = k;
    }
    if let Some(d) = args.half_width {
        sc.half_width = d;
    }
    sc.neig = args.neig;
    sc.validate()?;
    let cfg = GridConfig {
        dim: sc.dim,
        n: args.n,
        half_width: sc.half_width,
        kinetic: sc.kinetic,
        neig: args.neig,
    };
    // Built-in potentials need no GPU; expressions are evaluated on it.
    let field = match sc.builtin_potential() {
        Some(v) => v,
        None => sc.potential_field(&super::context(cli)?)?,
    };
    // Closed forms only: the soft-Coulomb model's reference is this grid itself.
    let exact = match sc.potential.as_str() {
        "soft-coulomb" => None,
        _ => sc.exact_eigenvalues(),
    };
    let extent = args.plot_extent.unwrap_or(sc.half_width);
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
