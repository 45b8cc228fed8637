//! What the network is trained to minimise: SpIN's tr Λ, the nested objective (sequential or
//! joint) or NeuralEF (maths §13).

use crate::error::{Result, SpinError};

/// What the network is trained to minimise (maths §13).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// SpIN: tr Λ with Λ = L⁻¹ Π L⁻ᵀ, L = chol(Σ̄), and the masked gradient (the paper's).
    #[default]
    Spin,
    /// The sequentially nested low-rank objective ([`super::host::nested_matrices`]): no
    /// Cholesky in the gradient, each feature's scale fixed at √(c − λ), Σ's coefficient from
    /// the previous steps (unbiased without a moving average of the Jacobian).
    Nested,
    /// The jointly nested objective ([`super::successors::joint_nested_matrices`]): the sum of
    /// the nest's objectives over every rank, each feature descending all of it (NeuralSVD's
    /// joint nesting); the same minimiser, G_Σ full, so the fused gradient at any β.
    #[serde(rename = "nested-joint")]
    NestedJoint,
    /// NeuralEF ([`super::successors::neuralef_matrices`]): each feature normalised over the
    /// batch, its own Rayleigh quotient of T = cI − K up and its overlap with the earlier
    /// features down, those held fixed; no Cholesky, no scale fixed.
    NeuralEf,
}

impl Objective {
    /// Its name on the command line and in metrics.json.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Spin => "spin",
            Objective::Nested => "nested",
            Objective::NestedJoint => "nested-joint",
            Objective::NeuralEf => "neuralef",
        }
    }
}

impl std::str::FromStr for Objective {
    type Err = SpinError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "spin" => Ok(Self::Spin),
            "nested" => Ok(Self::Nested),
            "nested-joint" => Ok(Self::NestedJoint),
            "neuralef" => Ok(Self::NeuralEf),
            _ => Err(SpinError::Config(format!(
                "unknown objective `{s}` (expected spin, nested, nested-joint or neuralef)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_objective_parses_from_its_name_and_nothing_else_does() {
        for o in [
            Objective::Spin,
            Objective::Nested,
            Objective::NestedJoint,
            Objective::NeuralEf,
        ] {
            assert_eq!(o.name().parse::<Objective>().unwrap(), o);
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json, o.name());
        }
        let err = "svd".parse::<Objective>().unwrap_err().to_string();
        assert!(
            err.contains("spin, nested, nested-joint or neuralef"),
            "{err}"
        );
    }
}
