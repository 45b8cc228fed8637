//! Video data: .npz episode files (both header versions, stored and deflated members, bad
//! files), PNG folders, the balls generator's output, clips that never cross an episode and
//! the held-out split.

use std::io::Write;
use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spectral_inference::data::balls::{simulate, Balls};
use spectral_inference::data::npy::{write_npz, NpyArray, NpyData};
use spectral_inference::data::video::{split_episodes, ClipSource, Video};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spin-video-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn balls_video(frames: usize, size: usize) -> Video {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut balls = Balls::random(&mut rng, 2, 0.15, 0.05);
    let (pixels, positions) = simulate(&mut balls, frames, size, |_| {});
    let mut starts = vec![false; frames];
    starts[0] = true;
    starts[frames / 2] = true;
    Video {
        height: size,
        width: size,
        frames: pixels,
        episode_starts: starts,
        positions: Some((2, positions)),
    }
}

#[test]
fn npz_round_trip_of_a_balls_video() {
    let d = dir("roundtrip");
    let v = balls_video(40, 16);
    assert!(v.frames.contains(&255) && v.frames.contains(&0));
    let path = d.join("balls.npz");
    v.save_npz(&path).unwrap();
    let back = Video::load(&path).unwrap();
    assert_eq!(back, v);
    assert_eq!(back.episodes(), vec![0..20, 20..40]);
    let (_, pos) = back.positions.unwrap();
    assert!(pos.iter().all(|&p| (0.0..=1.0).contains(&p)));
}

/// An .npz written by hand: stored members, and `frames` with a version 2.0 header.
#[test]
fn stored_members_and_version_2_headers_are_read() {
    let d = dir("stored");
    let path = d.join("episode.npz");
    let frames = NpyArray::new(vec![3, 2, 2], NpyData::U8((0..12).collect())).unwrap();
    let v1 = frames.to_bytes();
    let hlen = u16::from_le_bytes([v1[8], v1[9]]) as usize;
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend((hlen as u32).to_le_bytes());
    v2.extend(&v1[10..]);
    let starts = NpyArray::new(vec![3], NpyData::Bool(vec![true, false, true])).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("frames.npy", stored).unwrap();
    zip.write_all(&v2).unwrap();
    zip.start_file("episode_starts.npy", stored).unwrap();
    zip.write_all(&starts.to_bytes()).unwrap();
    zip.finish().unwrap();
    let v = Video::load(&path).unwrap();
    assert_eq!((v.height, v.width, v.len()), (2, 2, 3));
    assert_eq!(v.frames[5], 5);
    assert_eq!(v.episodes(), vec![0..2, 2..3]);
}

#[test]
fn bad_files_are_clear_errors() {
    let d = dir("bad");
    let check = |name: &str, arrays: Option<Vec<(&str, NpyArray)>>, want: &str| {
        let path = d.join(name);
        match arrays {
            None => std::fs::write(&path, "frames,episode_starts\n1,2\n").unwrap(),
            Some(a) => {
                let refs: Vec<(&str, &NpyArray)> = a.iter().map(|(k, v)| (*k, v)).collect();
                write_npz(&path, &refs).unwrap();
            }
        }
        let e = Video::load(&path).unwrap_err().to_string();
        assert!(e.contains(name), "{e} should name the file");
        assert!(e.contains(want), "{e} should say `{want}`");
    };
    let u8s = |shape: Vec<usize>| {
        let n = shape.iter().product();
        NpyArray::new(shape, NpyData::U8(vec![1; n])).unwrap()
    };
    check("text.npz", None, "not a .npz");
    check(
        "nothing.npz",
        Some(vec![("pixels", u8s(vec![2, 2, 2]))]),
        "no `frames`",
    );
    check(
        "float.npz",
        Some(vec![(
            "frames",
            NpyArray::new(vec![2, 2, 2], NpyData::F32(vec![0.5; 8])).unwrap(),
        )]),
        "must be uint8",
    );
    check(
        "rank.npz",
        Some(vec![("frames", u8s(vec![4, 4]))]),
        "rank 3",
    );
    check(
        "lengths.npz",
        Some(vec![
            ("frames", u8s(vec![3, 2, 2])),
            (
                "episode_starts",
                NpyArray::new(vec![4], NpyData::Bool(vec![true; 4])).unwrap(),
            ),
        ]),
        "there are 3 frames",
    );
    check(
        "positions.npz",
        Some(vec![
            ("frames", u8s(vec![3, 2, 2])),
            (
                "positions",
                NpyArray::new(vec![3, 2], NpyData::F32(vec![0.5; 6])).unwrap(),
            ),
        ]),
        "T × B × 2",
    );
    let e = Video::load(&d.join("missing.npz")).unwrap_err().to_string();
    assert!(e.contains("missing.npz"), "{e}");
    // Too few frames for one clip: 2-frame inputs, clips of 10, episodes of 5 frames.
    let short = Video {
        height: 1,
        width: 1,
        frames: vec![0; 10],
        episode_starts: (0..10).map(|t| t % 5 == 0).collect(),
        positions: None,
    };
    let e = ClipSource::new(short.episodes(), 2, 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too few frames"), "{e}");
}

#[test]
fn png_folders_are_episodes() {
    let d = dir("png");
    let write = |path: PathBuf, value: u8, size: u32| {
        image::GrayImage::from_pixel(size, 3, image::Luma([value]))
            .save(path)
            .unwrap();
    };
    // One folder of frames: one episode, in name order.
    let one = d.join("one");
    std::fs::create_dir_all(&one).unwrap();
    for i in 0..5u8 {
        write(one.join(format!("f{i:03}.png")), 10 * i, 4);
    }
    let v = Video::load(&one).unwrap();
    assert_eq!((v.len(), v.height, v.width), (5, 3, 4));
    assert_eq!(v.frames[12 * 3], 30);
    assert_eq!(v.episodes(), vec![0..5]);
    // A folder of folders: one episode each.
    let many = d.join("many");
    for (e, n) in [("a", 3u8), ("b", 4)] {
        let sub = many.join(e);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..n {
            write(sub.join(format!("{i}.png")), i, 4);
        }
    }
    let v = Video::load(&many).unwrap();
    assert_eq!(v.episodes(), vec![0..3, 3..7]);
    // Frames of different sizes: an error naming the frame.
    write(many.join("b").join("9.png"), 0, 5);
    let e = Video::load(&many).unwrap_err().to_string();
    assert!(e.contains("9.png") && e.contains("first frame"), "{e}");
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = Video::load(&empty).unwrap_err().to_string();
    assert!(e.contains("no PNG frames"), "{e}");
}

#[test]
fn clips_never_cross_episodes_and_held_out_frames_are_never_trained_on() {
    let video = Video {
        height: 1,
        width: 1,
        frames: vec![0; 100],
        episode_starts: (0..100)
            .map(|t| t == 0 || t == 37 || t == 41 || t == 70)
            .collect(),
        positions: None,
    };
    let (train, test) = split_episodes(&video, 0.1);
    // Disjoint, and together every frame.
    let mut seen = [0u8; 100];
    for r in train.iter().chain(&test) {
        for t in r.clone() {
            seen[t] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c == 1));
    assert_eq!(test[0], 33..37);
    let source = ClipSource::new(train.clone(), 2, 5).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for s in source.sample_starts(&mut rng, 2000) {
        let clip = s..s + source.clip_frames();
        assert!(
            train
                .iter()
                .any(|r| r.start <= clip.start && clip.end <= r.end),
            "clip {clip:?} crosses an episode or the held-out split"
        );
    }
    // Every clip start is reachable: the 4-frame episode 37..41 (train 37..41 minus held-out)
    // holds no 6-frame clip, the others do.
    let all: std::collections::BTreeSet<usize> = (0..source.clip_starts())
        .map(|i| source.clip_start(i))
        .collect();
    assert!(all.contains(&0) && all.contains(&(33 - 6)));
    assert!(!all.iter().any(|&s| (37..41).contains(&s)));
}
