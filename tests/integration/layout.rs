//! README's `## Layout` is the map of the code: it names every source file of the library, the
//! local tools, the function binaries and the test kit, by its path in backticks. These tests
//! fail when a file is added without a line there, or when a line names a file that is gone
//! (renamed or removed), so the map cannot drift from the tree.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The folders whose every `.rs` file the Layout names.
const MAPPED: [&str; 4] = ["shared/src", "local/src", "functions", "tests/support"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Every `.rs` file under `dir` (relative to the repository, `/`-separated), skipping build
/// output.
fn sources(dir: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![repo().join(dir)];
    while let Some(at) = todo.pop() {
        let entries = std::fs::read_dir(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    todo.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(repo()).expect("under the repository");
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found
}

/// The README section headed `## Layout`, up to the next `## ` heading.
fn layout_section(readme: &str) -> &str {
    let start = readme
        .find("\n## Layout\n")
        .expect("README.md has a `## Layout` section");
    let body = &readme[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |at| at + 3);
    &body[..end]
}

/// Every backticked `….rs` path the section names.
fn named_files(section: &str) -> BTreeSet<String> {
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| quoted.ends_with(".rs") && quoted.contains('/'))
        .map(str::to_owned)
        .collect()
}

fn readme_layout() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    named_files(layout_section(&readme))
}

#[test]
fn every_source_file_has_a_line_in_the_readme_layout() {
    let named = readme_layout();
    let missing: Vec<String> = MAPPED
        .iter()
        .flat_map(|dir| sources(dir))
        .filter(|file| !named.contains(file))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's Layout does not name (add a line `path`: what it is for): {missing:#?}"
    );
}

#[test]
fn the_readme_layout_names_no_file_that_is_gone() {
    let gone: Vec<String> = readme_layout()
        .into_iter()
        .filter(|file| !repo().join(file).is_file())
        .collect();
    assert!(
        gone.is_empty(),
        "README.md's Layout names files that do not exist: {gone:#?}"
    );
}

#[test]
fn the_section_ends_at_the_next_heading_and_names_only_paths() {
    let readme = "# T\n\n## Layout\n\n- `a/b.rs`: x, see `c.rs` and `x/y.toml`\n- `d/e.rs`\n\n\
                  ## Next\n\n- `f/g.rs`\n";
    let named: Vec<String> = named_files(layout_section(readme)).into_iter().collect();
    assert_eq!(named, ["a/b.rs", "d/e.rs"]);
}
