//! Writes the fuzz seeds ([`canvas_engine::fuzzing::seeds`]: real frames, updates and
//! awareness buffers made with the engine's encoders) into `<dir>/<target>/seed-<name>`,
//! leaving a seed that is already there as it is: the bytes differ from run to run (yrs
//! orders map entries by hash), and the committed ones should not change each time.
//!
//! `cargo run -p canvas-engine --example fuzz_seeds -- fuzz/corpus` (scripts/fuzz.sh runs it).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds <corpus dir>");
        return ExitCode::FAILURE;
    };
    let mut written = 0;
    for (target, name, bytes) in canvas_engine::fuzzing::seeds() {
        let folder = dir.join(target);
        let path = folder.join(format!("seed-{name}"));
        if path.exists() {
            continue;
        }
        let result = std::fs::create_dir_all(&folder).and_then(|()| std::fs::write(&path, bytes));
        if let Err(e) = result {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        written += 1;
    }
    println!("{written} new seeds written under {}", dir.display());
    ExitCode::SUCCESS
}
