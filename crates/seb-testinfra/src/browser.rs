//! A real browser for the console's tests: Debian's `chromium` driven by Playwright for
//! Python (pinned), which is told to use that binary (no browser download; the machines that
//! run the tests cannot reach Playwright's CDN), and NSS's `certutil` so a test can make
//! Chromium trust its throwaway CA.

use crate::InfraError;
use crate::process::{apt_install, ensure_python_package};

/// The Chromium binary the tests launch.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The pinned Playwright for Python.
pub const PLAYWRIGHT: &str = "playwright==1.65.3";

/// Make sure Debian's Chromium and the pinned Playwright are installed (installing them when
/// missing); returns Chromium's version line.
pub fn ensure() -> Result<String, InfraError> {
    if !std::path::Path::new(CHROMIUM).exists() {
        apt_install(&["chromium"])?;
    }
    // certutil: the tests' CA goes into a throwaway NSS database Chromium reads.
    if !crate::process::have("certutil") {
        apt_install(&["libnss3-tools"])?;
    }
    ensure_python_package(
        "import importlib.metadata as m; print(m.version('playwright'))",
        "1.65.3",
        PLAYWRIGHT,
    )?;
    crate::process::run(CHROMIUM, &["--version"]).map(|v| v.trim().to_owned())
}
