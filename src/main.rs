//! The `orgmirror` binary: the command line is the library's (`orgmirror::main`).

fn main() -> std::process::ExitCode {
    orgmirror::main()
}
