fn main() -> std::process::ExitCode {
    campus_pay::cli::run()
}
