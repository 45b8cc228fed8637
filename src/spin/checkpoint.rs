//! Resumable checkpoints: `DIR/checkpoint.safetensors` (θ, Σ̄, J̄, optimiser moments, eigenvalue
//! EMA; the step, RNG state and run configuration as JSON in its metadata) and a JSON sidecar
//! `DIR/checkpoint.json` with the same metadata for people and scripts. Python opens both with
//! `safetensors.numpy.load_file` and `json.load`. Each file is written atomically, and the
//! safetensors file alone is enough to resume, so a run killed at any moment keeps the last
//! complete checkpoint.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Result, SpinError};
use crate::io::write_atomic;

/// Format tag stored in the metadata.
pub const FORMAT: &str = "spectral-inference-checkpoint-1";

/// Everything a run needs to continue exactly where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerState {
    /// Steps done.
    pub step: u64,
    /// θ (P).
    pub params: Vec<f32>,
    /// Σ̄ (N, N) row-major.
    pub sigma_avg: Vec<f64>,
    /// J̄ (N(N+1)/2, P).
    pub jbar: Vec<f32>,
    /// Optimiser first moments (empty unless Adam).
    pub opt_m: Vec<f64>,
    /// Optimiser second moments (empty for SGD).
    pub opt_v: Vec<f64>,
    /// Optimiser updates applied.
    pub opt_t: u64,
    /// The optimiser's running gradient norm for clipping (0 without clipping).
    pub opt_grad_norm: f64,
    /// EMA of diag Λ.
    pub lambda_ema: Vec<f64>,
    /// ChaCha8 seed.
    pub rng_seed: [u8; 32],
    /// ChaCha8 stream.
    pub rng_stream: u64,
    /// ChaCha8 word position.
    pub rng_word_pos: u128,
    /// The sampler's own state (an adaptive proposal's cell probabilities; empty for most).
    pub sampler: Vec<f64>,
    /// θ of the network the run finally evaluated, when that is not the trained θ (a
    /// read-out refit, [`crate::spin::Trainer::refit_readout`]); empty otherwise. Resuming
    /// continues from `params`; `spin eval` uses this.
    pub final_params: Vec<f32>,
    /// Seconds of training so far, over every invocation (kept by the front end, for
    /// `--time-limit` and its schedule; 0 when unknown).
    pub train_seconds: f64,
    /// A read-out that replaced the network's own after training (the video refit on the last
    /// hidden layer and the whitened principal coordinates): (hidden units, principal
    /// coordinates, outputs) and its (hidden + coordinates + 1) × outputs coefficients,
    /// row-major, bias last; empty otherwise.
    pub readout: Vec<f64>,
    /// See `readout`.
    pub readout_shape: [usize; 3],
    /// The step after which the bias-correcting tail began, if it has
    /// ([`crate::spin::trainer::Tail`]).
    pub tail_start: Option<u64>,
    /// The optimiser's learning-rate factor (1 unless the divergence guard rolled back).
    pub lr_scale: f64,
}

fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f64(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Writes the checkpoint of `state` with the run description `run` (any JSON) into `dir`.
pub fn save(dir: &Path, state: &TrainerState, run: &serde_json::Value) -> Result<()> {
    let meta = serde_json::json!({
        "format": FORMAT,
        "step": state.step,
        "opt_t": state.opt_t,
        "opt_grad_norm": state.opt_grad_norm,
        "train_seconds": state.train_seconds,
        "readout_shape": state.readout_shape,
        "tail_start": state.tail_start,
        "lr_scale": state.lr_scale,
        "rng": {
            "seed": hex(&state.rng_seed),
            "stream": state.rng_stream,
            "word_pos": state.rng_word_pos.to_string(),
        },
        "run": run,
    });
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "params",
            Dtype::F32,
            vec![state.params.len()],
            bytes_f32(&state.params),
        ),
        (
            "sigma_avg",
            Dtype::F64,
            vec![state.sigma_avg.len()],
            bytes_f64(&state.sigma_avg),
        ),
        (
            "jbar",
            Dtype::F32,
            vec![state.jbar.len()],
            bytes_f32(&state.jbar),
        ),
        (
            "opt_m",
            Dtype::F64,
            vec![state.opt_m.len()],
            bytes_f64(&state.opt_m),
        ),
        (
            "opt_v",
            Dtype::F64,
            vec![state.opt_v.len()],
            bytes_f64(&state.opt_v),
        ),
        (
            "lambda_ema",
            Dtype::F64,
            vec![state.lambda_ema.len()],
            bytes_f64(&state.lambda_ema),
        ),
        (
            "sampler",
            Dtype::F64,
            vec![state.sampler.len()],
            bytes_f64(&state.sampler),
        ),
    ];
    if !state.final_params.is_empty() {
        tensors.push((
            "final_params",
            Dtype::F32,
            vec![state.final_params.len()],
            bytes_f32(&state.final_params),
        ));
    }
    if !state.readout.is_empty() {
        let [h, m, n] = state.readout_shape;
        tensors.push((
            "readout",
            Dtype::F64,
            vec![h + m + 1, n],
            bytes_f64(&state.readout),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            Ok((*name, TensorView::new(*dtype, shape.clone(), data)?))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| checkpoint_error(dir, e.to_string()))?;
    let mut info = HashMap::new();
    info.insert("spin".to_string(), meta.to_string());
    let bytes = safetensors::serialize(views, Some(info))
        .map_err(|e| checkpoint_error(dir, e.to_string()))?;
    write_atomic(&dir.join("checkpoint.safetensors"), &bytes)?;
    let pretty =
        serde_json::to_string_pretty(&meta).map_err(|e| checkpoint_error(dir, e.to_string()))?;
    write_atomic(&dir.join("checkpoint.json"), pretty.as_bytes())
}

fn checkpoint_error(dir: &Path, message: String) -> SpinError {
    SpinError::Parse {
        path: dir.join("checkpoint.safetensors").display().to_string(),
        message,
    }
}

/// Reads the checkpoint in `dir`: the state and the run description saved with it.
pub fn load(dir: &Path) -> Result<(TrainerState, serde_json::Value)> {
    let path = dir.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).map_err(|source| SpinError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let bad = |m: String| checkpoint_error(dir, m);
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta_text = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("spin"))
        .ok_or_else(|| bad("no `spin` metadata: not a spectral-inference checkpoint".into()))?;
    let meta: serde_json::Value =
        serde_json::from_str(meta_text).map_err(|e| bad(e.to_string()))?;
    if meta["format"] != FORMAT {
        return Err(bad(format!("unknown checkpoint format {}", meta["format"])));
    }
    let f32s = |name: &str| -> Result<Vec<f32>> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(bad(format!("{name} is {:?}, expected F32", t.dtype())));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let f64s = |name: &str| -> Result<Vec<f64>> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if t.dtype() != Dtype::F64 {
            return Err(bad(format!("{name} is {:?}, expected F64", t.dtype())));
        }
        Ok(t.data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    };
    let rng = &meta["rng"];
    let state = TrainerState {
        step: meta["step"]
            .as_u64()
            .ok_or_else(|| bad("missing step".into()))?,
        params: f32s("params")?,
        sigma_avg: f64s("sigma_avg")?,
        jbar: f32s("jbar")?,
        opt_m: f64s("opt_m")?,
        opt_v: f64s("opt_v")?,
        opt_t: meta["opt_t"]
            .as_u64()
            .ok_or_else(|| bad("missing opt_t".into()))?,
        opt_grad_norm: meta["opt_grad_norm"].as_f64().unwrap_or(0.0),
        lambda_ema: f64s("lambda_ema")?,
        // Checkpoints from before samplers had state have no such tensor.
        sampler: if st.names().contains(&"sampler") {
            f64s("sampler")?
        } else {
            Vec::new()
        },
        train_seconds: meta["train_seconds"].as_f64().unwrap_or(0.0),
        final_params: if st.names().contains(&"final_params") {
            f32s("final_params")?
        } else {
            Vec::new()
        },
        readout: if st.names().contains(&"readout") {
            f64s("readout")?
        } else {
            Vec::new()
        },
        readout_shape: serde_json::from_value(meta["readout_shape"].clone()).unwrap_or([0; 3]),
        // Checkpoints from before the tail have no such field.
        tail_start: meta["tail_start"].as_u64(),
        lr_scale: meta["lr_scale"].as_f64().unwrap_or(1.0),
        rng_seed: rng["seed"]
            .as_str()
            .and_then(unhex)
            .ok_or_else(|| bad("bad rng seed".into()))?,
        rng_stream: rng["stream"]
            .as_u64()
            .ok_or_else(|| bad("bad rng stream".into()))?,
        rng_word_pos: rng["word_pos"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad rng position".into()))?,
    };
    Ok((state, meta["run"].clone()))
}
