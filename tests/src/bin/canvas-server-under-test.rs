//! The `canvas-server` binary, built inside this test crate so its tests can start it as a
//! real process (`CARGO_BIN_EXE_canvas-server-under-test`): same code, same flags.

fn main() -> std::process::ExitCode {
    canvas_server::cli::main()
}
