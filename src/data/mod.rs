//! Data for the video experiments: NumPy arrays and archives ([`npy`]), videos and the clips
//! drawn from them ([`video`]), and the bouncing-balls generator ([`balls`]).

pub mod balls;
pub mod npy;
pub mod video;
