//! What data-parallel runs print about their workers, for the CLI tests of `--workers` and the
//! MPI tests (both include this file by path).

/// The θ hashes that the workers report at the end, by rank.
pub fn final_hashes(stderr: &str) -> Vec<(usize, String)> {
    // Split at the rank prefixes, not only at line ends: a launcher may merge two ranks' lines
    // into one.
    let mut v: Vec<(usize, String)> = stderr
        .split("[rank ")
        .skip(1)
        .filter_map(|l| {
            let rank: usize = l.split('/').next()?.parse().ok()?;
            let hash = l.split("θ hash ").nth(1)?.split(',').next()?.to_string();
            Some((rank, hash))
        })
        .collect();
    v.sort();
    v
}

/// Both of two workers reported their θ hash, and the hashes agree.
pub fn assert_same_theta(stderr: &str) {
    let h = final_hashes(stderr);
    assert_eq!(h.len(), 2, "expected a θ hash from each worker:\n{stderr}");
    assert_eq!((h[0].0, h[1].0), (0, 1));
    assert_eq!(h[0].1, h[1].1, "the workers' θ differ:\n{stderr}");
}
