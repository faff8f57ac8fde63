//! The `plimsoll` binary: a thin edge that parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    plimsoll_autoscaler::cli::main()
}
