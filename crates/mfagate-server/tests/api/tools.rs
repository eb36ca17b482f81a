//! Outside tools some tests use (PyJWT as an independent EdDSA verifier). A missing one fails
//! the test with the command that installs it, not with a Python traceback.

use std::process::Command;

/// `None` when `python3` can import `module`; else what is missing and how to install it.
pub fn missing_python_module(module: &str, package: &str) -> Option<String> {
    let install = format!("python3 -m pip install '{package}'");
    match Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
    {
        Ok(output) if output.status.success() => None,
        Ok(_) => Some(format!(
            "this test needs the Python module '{module}', which python3 cannot import; \
             install it with `{install}` (.ci/run does this when it is missing)"
        )),
        Err(error) => Some(format!(
            "this test needs python3 ({error}); install it (Debian: apt-get install python3 python3-pip), \
             then `{install}`"
        )),
    }
}

#[test]
fn a_missing_module_is_reported_with_its_install_command() {
    let message = missing_python_module("mfagate_no_such_module", "mfagate-no-such-package")
        .expect("the module does not exist");
    assert!(
        message.contains("python3 -m pip install 'mfagate-no-such-package'"),
        "{message}"
    );
    assert_eq!(missing_python_module("json", "json"), None);
}
