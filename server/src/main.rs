//! `canvas-server`: the collaboration server. See `canvas-server --help`.

fn main() -> std::process::ExitCode {
    canvas_server::cli::main()
}
