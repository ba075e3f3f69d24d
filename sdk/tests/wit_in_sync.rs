//! The SDK ships its own copy of the WIT (so the published crate carries it);
//! in the repository that copy must equal the contract in `../wit`.

use std::path::Path;

#[test]
fn sdk_wit_matches_the_repository_contract() {
    let repo_wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    if !repo_wit.is_dir() {
        // Built from the published crate: there is no repository to compare with.
        return;
    }
    let mut repo_files: Vec<String> = std::fs::read_dir(&repo_wit)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wit"))
        .collect();
    repo_files.sort();
    let sdk_files: Vec<&str> = edgeward_sdk::WIT.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        repo_files, sdk_files,
        "sdk/wit and wit/ hold different files: copy wit/*.wit to sdk/wit/ and list them in edgeward_sdk::WIT"
    );
    for (name, text) in edgeward_sdk::WIT {
        let repo = std::fs::read_to_string(repo_wit.join(name)).unwrap();
        assert_eq!(
            &repo, text,
            "sdk/wit/{name} differs from wit/{name}: run `cp wit/*.wit sdk/wit/`"
        );
    }
}
