//! Data for the video experiments: NumPy arrays and archives ([`npy`]), videos and the clips
//! drawn from them ([`video`]), the bouncing-balls generator ([`balls`]) and an Atari-like game
//! played by a random agent ([`arcade`]).

pub mod arcade;
pub mod balls;
pub mod graph;
pub mod npy;
pub mod video;
