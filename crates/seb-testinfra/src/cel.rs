//! cel-python, an independent CEL implementation (PyPI `cel-python`, pinned), for tests that
//! evaluate the ValidatingAdmissionPolicies the v1.20 test API server cannot run.

use crate::InfraError;
use crate::process::run;

/// The pinned version.
pub const CEL_PYTHON_VERSION: &str = "0.5.0";

/// Make sure `celpy` (cel-python [`CEL_PYTHON_VERSION`]) can be imported by `python3`,
/// installing it with pip when not. Returns the installed version.
pub fn ensure_cel_python() -> Result<String, InfraError> {
    let probe = "import celpy, importlib.metadata as m; print(m.version('cel-python'))";
    if let Ok(v) = run("python3", &["-c", probe])
        && v.trim() == CEL_PYTHON_VERSION
    {
        return Ok(v.trim().to_owned());
    }
    let spec = format!("cel-python=={CEL_PYTHON_VERSION}");
    if run("python3", &["-m", "pip", "install", "--quiet", &spec]).is_err() {
        // Debian's system Python refuses pip installs without this flag (PEP 668).
        run("python3", &["-m", "pip", "install", "--quiet", "--break-system-packages", &spec])?;
    }
    Ok(run("python3", &["-c", probe])?.trim().to_owned())
}
