//! Replays the fuzz corpus and every crash the fuzzer found (`fuzz/corpus/<target>/*` and
//! `fuzz/artifacts/<target>/*`) through the same target functions the fuzzer runs
//! ([`canvas_engine::fuzzing`]), so each of them stays a regression test. It also runs the
//! seeds the corpus starts from ([`canvas_engine::fuzzing::seeds`]).

use canvas_engine::fuzzing::{self, TARGETS};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of `fuzz/<kind>/<target>/`, sorted (none if the folder does not exist).
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut ran = 0;
    for target in TARGETS {
        for path in files(kind, target) {
            let data = std::fs::read(&path).expect("a corpus file reads");
            // A panic names the file: the test harness prints this line above it.
            println!("{}", path.display());
            assert!(fuzzing::run(target, &data));
            ran += 1;
        }
    }
    ran
}

#[test]
fn the_corpus_replays() {
    let ran = replay("corpus");
    println!("{ran} corpus files");
    for target in TARGETS {
        assert!(
            !files("corpus", target).is_empty(),
            "fuzz/corpus/{target} is empty"
        );
    }
}

#[test]
fn every_crash_found_replays_fixed() {
    let ran = replay("artifacts");
    println!("{ran} crash files");
}

#[test]
fn the_seeds_replay() {
    for (target, name, data) in fuzzing::seeds() {
        println!("{target}/{name}");
        assert!(fuzzing::run(target, &data));
    }
}

#[test]
fn only_known_targets_have_folders() {
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            assert!(
                TARGETS.contains(&name.as_ref()),
                "fuzz/{kind}/{name} is no target of canvas_engine::fuzzing"
            );
        }
    }
}
