//! Where the SDKs are. Until they are published (crates.io, PyPI, npm) a
//! project depends on a checkout of this repository: found from
//! `--sdk-root`, `$EDGEWARD_SDK_ROOT`, or the directories above this binary
//! (a `target/…/edgeward` inside the checkout) and above the current one.

use std::path::{Path, PathBuf};

fn is_root(dir: &Path) -> bool {
    dir.join("sdk/Cargo.toml").is_file()
        && dir.join("sdk-python").is_dir()
        && dir.join("sdk-js").is_dir()
}

pub fn root(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(d) = given {
        return if is_root(d) {
            std::path::absolute(d).map_err(|e| format!("{}: {e}", d.display()))
        } else {
            Err(format!(
                "--sdk-root {}: no sdk/, sdk-python/ and sdk-js/ there",
                d.display()
            ))
        };
    }
    if let Some(d) = std::env::var_os("EDGEWARD_SDK_ROOT") {
        let d = PathBuf::from(d);
        if is_root(&d) {
            return std::path::absolute(&d).map_err(|e| format!("{}: {e}", d.display()));
        }
        return Err(format!(
            "EDGEWARD_SDK_ROOT={}: no sdk/, sdk-python/ and sdk-js/ there",
            d.display()
        ));
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    for start in starts.into_iter().flatten() {
        let start = start.canonicalize().unwrap_or(start);
        if let Some(d) = start.ancestors().find(|d| is_root(d)) {
            return Ok(d.to_path_buf());
        }
    }
    Err(
        "cannot find the Edgeward SDKs (a checkout with sdk/, sdk-python/, sdk-js/): \
         pass --sdk-root DIR or set EDGEWARD_SDK_ROOT"
            .into(),
    )
}
