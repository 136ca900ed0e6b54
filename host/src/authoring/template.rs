//! `weir plugin new NAME --lang rust|python|js`: a project that builds with
//! `weir plugin build` and whose test passes as written (`cargo test`,
//! `pytest`, `npm test`). Each upper-cases one JSON field, configurable, and
//! fails a record without it, so the three show the same shape.

use super::{Error, Language, Result, WIT, io};
use std::path::{Path, PathBuf};

type File = (&'static str, &'static str);

const RUST: &[File] = &[
    (
        "Cargo.toml",
        include_str!("../../../sdk/templates/rust/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../sdk/templates/rust/src/lib.rs"),
    ),
    (
        ".gitignore",
        include_str!("../../../sdk/templates/rust/gitignore"),
    ),
    ("wit/transform.wit", WIT),
];

const PYTHON: &[File] = &[
    (
        "pyproject.toml",
        include_str!("../../../sdk/templates/python/pyproject.toml"),
    ),
    (
        "{{module}}.py",
        include_str!("../../../sdk/templates/python/module.py"),
    ),
    (
        "test_{{module}}.py",
        include_str!("../../../sdk/templates/python/test_module.py"),
    ),
    (
        ".gitignore",
        include_str!("../../../sdk/templates/python/gitignore"),
    ),
];

const JS: &[File] = &[
    (
        "package.json",
        include_str!("../../../sdk/templates/js/package.json"),
    ),
    (
        "src/index.js",
        include_str!("../../../sdk/templates/js/src/index.js"),
    ),
    (
        "src/transform.js",
        include_str!("../../../sdk/templates/js/src/transform.js"),
    ),
    ("src/weir.js", include_str!("../../../sdk/js/weir.js")),
    (
        "test/transform.test.js",
        include_str!("../../../sdk/templates/js/test/transform.test.js"),
    ),
    (
        ".gitignore",
        include_str!("../../../sdk/templates/js/gitignore"),
    ),
];

/// Writes a new plugin project called `name` into `dir` (which must not
/// exist) and returns the files written.
pub fn create(name: &str, language: Language, dir: &Path) -> Result<Vec<PathBuf>> {
    if !is_plugin_name(name) {
        return Err(Error::Manifest {
            manifest: dir.to_owned(),
            problem: format!(
                "{name:?} is not a plugin name: use lower-case letters, digits and dashes, starting with a letter (e.g. my-transform)"
            ),
        });
    }
    if dir.exists() {
        return Err(Error::Exists(dir.to_owned()));
    }
    let module = name.replace('-', "_");
    let class: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{module}}", &module)
            .replace("{{class}}", &class)
    };
    let files = match language {
        Language::Rust => RUST,
        Language::Python => PYTHON,
        Language::Js => JS,
    };
    let mut written = Vec::new();
    for (path, text) in files {
        let path = dir.join(fill(path));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, fill(text)).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

fn is_plugin_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_template_names_its_module_and_class_after_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("fare-check");
        create("fare-check", Language::Python, &project).unwrap();
        let pyproject = std::fs::read_to_string(project.join("pyproject.toml")).unwrap();
        assert!(pyproject.contains("transform = \"fare_check:FareCheck\""));
        assert!(project.join("test_fare_check.py").is_file());
        let module = std::fs::read_to_string(project.join("fare_check.py")).unwrap();
        assert!(module.contains("class FareCheck(Transform)"));
        assert!(!module.contains("{{"));
    }

    #[test]
    fn a_rust_template_carries_the_contract_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("x1");
        create("x1", Language::Rust, &project).unwrap();
        assert_eq!(
            std::fs::read_to_string(project.join("wit/transform.wit")).unwrap(),
            WIT
        );
        assert!(matches!(
            create("x1", Language::Rust, &project),
            Err(Error::Exists(_))
        ));
        assert!(create("Bad_Name", Language::Js, &dir.path().join("b")).is_err());
    }
}
