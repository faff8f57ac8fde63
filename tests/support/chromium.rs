//! The status page as a browser shows it: Debian's headless `chromium` (tests/setup.sh installs it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Chromium, or a panic saying how to get it (tests/setup.sh installs it).
pub fn chromium() -> &'static str {
    let ok = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "chromium is missing: tests/setup.sh installs Debian's chromium"
    );
    "chromium"
}

/// Headless Chromium on `url` with its own profile folder, given 5 s of virtual time to run the page's
/// scripts; `extra` are more flags (`--dump-dom`, `--screenshot=...`). Its stdout.
pub fn headless(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of the status page at `addr` after its scripts ran.
pub fn rendered(addr: SocketAddr) -> String {
    headless(&format!("http://{addr}/"), &["--dump-dom"])
}

/// A screenshot of the status page at `addr` in target/tmp/NAME, kept after the test.
pub fn screenshot(addr: SocketAddr, name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&path);
    headless(
        &format!("http://{addr}/"),
        &[
            &format!("--screenshot={}", path.display()),
            "--window-size=1280,900",
        ],
    );
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "screenshot {} is {len} bytes", path.display());
    path
}
