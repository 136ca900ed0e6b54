//! `weir plugin build DIR`: the language's toolchain, then the component is
//! written beside its destination and renamed over it, so a watching weir
//! never reads half a file.
//!
//! - Rust: `cargo build --release --target wasm32-wasip2` (or `cargo
//!   component build`); the `.wasm` cargo reports for the crate.
//! - Python: componentize-py on an entry module that exports the project's
//!   `[tool.weir] transform` class through this host's copy of `weir_sdk`
//!   (so the SDK always matches the host's WIT); pure-Python dependencies
//!   listed in `[project] dependencies` are pip-installed into the build and
//!   bundled, native ones refused by name.
//! - JavaScript: componentize-js (the project's `node_modules`, `npm install`
//!   puts it there) on the module `package.json`'s `main` names; when
//!   `dependencies` lists npm packages, esbuild first bundles them into one
//!   module.
//!
//! The build folder is `<project>/build/weir/` (Python, JavaScript) or
//! cargo's target folder; nothing is written outside it but the placed file.

use super::{Error, Language, Result, WIT, io};
use crate::plugin::cache::ComponentCache;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py release weir is built and tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The componentize-js release weir is built and tested with.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

/// The bundler for JavaScript projects with npm dependencies.
pub const ESBUILD: &str = "esbuild@0.25.12";

/// The Python SDK as this host ships it; the build bundles this copy.
const PYTHON_SDK: [(&str, &str); 4] = [
    (
        "__init__.py",
        include_str!("../../../sdk/python/src/weir_sdk/__init__.py"),
    ),
    (
        "_component.py",
        include_str!("../../../sdk/python/src/weir_sdk/_component.py"),
    ),
    (
        "numbers.py",
        include_str!("../../../sdk/python/src/weir_sdk/numbers.py"),
    ),
    (
        "time.py",
        include_str!("../../../sdk/python/src/weir_sdk/time.py"),
    ),
];

/// A component `weir plugin build` placed.
#[derive(Debug)]
pub struct Placed {
    /// Where it is now.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// The first 12 hex digits of its SHA-256 (the version tag's suffix).
    pub hash: String,
    /// What it was written in.
    pub language: Language,
}

impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "built {} ({} bytes, sha256 {}, {})",
            self.path.display(),
            self.bytes,
            self.hash,
            self.language
        )
    }
}

/// Which language a project folder (or its manifest) is written in.
pub fn detect(project: &Path) -> Result<(Language, PathBuf)> {
    if project.is_file() {
        let name = project.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for language in [Language::Rust, Language::Python, Language::Js] {
            if name == language.manifest() {
                return Ok((language, project.to_owned()));
            }
        }
        return Err(Error::NotAProject(project.to_owned()));
    }
    [Language::Rust, Language::Python, Language::Js]
        .into_iter()
        .map(|language| (language, project.join(language.manifest())))
        .find(|(_, manifest)| manifest.is_file())
        .ok_or_else(|| Error::NotAProject(project.to_owned()))
}

/// Builds the project and places `<name>.wasm` in `out`. `component` picks
/// cargo-component for Rust and is ignored for other languages.
pub fn build(project: &Path, out: &Path, component: bool) -> Result<Placed> {
    let (language, manifest) = detect(project)?;
    let (name, bytes) = match language {
        Language::Rust => rust(&manifest, component)?,
        Language::Python => python(&manifest)?,
        Language::Js => js(&manifest)?,
    };
    place(out, &name, &bytes, language)
}

fn place(out: &Path, name: &str, bytes: &[u8], language: Language) -> Result<Placed> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let destination = out.join(format!("{name}.wasm"));
    let temporary = out.join(format!(".{name}.wasm.tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
    file.write_all(bytes).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, &destination).map_err(io(&destination))?;
    Ok(Placed {
        path: destination,
        bytes: bytes.len(),
        hash: ComponentCache::content_hash(bytes)[..12].to_owned(),
        language,
    })
}

/// Runs a toolchain program with its output on our stderr; a program that
/// cannot be started is reported with the command that installs it.
fn run(command: &mut Command, tool: &str, install: &str, hint: &str) -> Result<()> {
    let status = command
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| Error::ToolMissing {
            tool: tool.into(),
            reason: e.to_string(),
            install: install.into(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::BuildFailed {
            tool: tool.into(),
            status,
            hint: hint.into(),
        })
    }
}

fn rust(manifest: &Path, component: bool) -> Result<(String, Vec<u8>)> {
    let mut cargo = Command::new("cargo");
    if component {
        cargo.args(["component", "build"]);
    } else {
        cargo.args(["build", "--target", "wasm32-wasip2"]);
    }
    cargo
        .args(["--release", "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(manifest)
        .stderr(Stdio::inherit());
    let output = cargo.output().map_err(|e| Error::ToolMissing {
        tool: if component {
            "cargo component"
        } else {
            "cargo"
        }
        .into(),
        reason: e.to_string(),
        install: if component {
            "cargo install cargo-component --locked"
        } else {
            "https://rustup.rs, then rustup target add wasm32-wasip2"
        }
        .into(),
    })?;
    if !output.status.success() {
        return Err(Error::BuildFailed {
            tool: "cargo".into(),
            status: output.status,
            hint: if component {
                String::new()
            } else {
                "; if the target is missing: rustup target add wasm32-wasip2".into()
            },
        });
    }
    let manifest = std::fs::canonicalize(manifest).map_err(io(manifest))?;
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| Error::Manifest {
            manifest: manifest.clone(),
            problem: "cargo built no .wasm; a plugin crate needs crate-type = [\"cdylib\"]".into(),
        })?;
    let name = built
        .file_stem()
        .map(|s| s.to_string_lossy().replace('_', "-"))
        .unwrap_or_else(|| "plugin".into());
    let bytes = std::fs::read(&built).map_err(io(&built))?;
    Ok((name, bytes))
}

/// A manifest read as TOML or JSON, with errors naming the key.
struct Manifest {
    path: PathBuf,
    doc: serde_json::Value,
}

impl Manifest {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let doc = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        }
        .map_err(|problem| Error::Manifest {
            manifest: path.to_owned(),
            problem,
        })?;
        Ok(Manifest {
            path: path.to_owned(),
            doc,
        })
    }

    fn problem(&self, problem: impl Into<String>) -> Error {
        Error::Manifest {
            manifest: self.path.clone(),
            problem: problem.into(),
        }
    }

    /// The string at a dotted key (`project.name`), if present.
    fn string(&self, key: &str) -> Result<Option<String>> {
        let mut at = &self.doc;
        for part in key.split('.') {
            match at.get(part) {
                Some(v) => at = v,
                None => return Ok(None),
            }
        }
        match at {
            serde_json::Value::String(s) => Ok(Some(s.clone())),
            other => Err(self.problem(format!("`{key}` must be a string, not {other}"))),
        }
    }

    fn required(&self, key: &str, example: &str) -> Result<String> {
        self.string(key)?
            .ok_or_else(|| self.problem(format!("`{key}` is missing (e.g. {example})")))
    }

    /// The strings of an array (`project.dependencies`), or of an object's
    /// keys (`dependencies` in package.json).
    fn names(&self, key: &str) -> Vec<String> {
        match self.doc.pointer(&format!("/{}", key.replace('.', "/"))) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn folder(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

/// A fresh `build/weir/` folder in the project.
fn build_folder(project: &Path) -> Result<PathBuf> {
    let dir = project.join("build").join("weir");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(dir.join("wit")).map_err(io(&dir))?;
    let wit = dir.join("wit").join("transform.wit");
    std::fs::write(&wit, WIT).map_err(io(&wit))?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// A program of the project's toolchain: `$VIRTUAL_ENV/bin`, the project's
/// `.venv/bin` or `node_modules/.bin`, else `PATH`.
fn tool(project: &Path, name: &str) -> PathBuf {
    let mut places = vec![
        project.join(".venv").join("bin"),
        project.join("node_modules").join(".bin"),
    ];
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        places.insert(0, PathBuf::from(venv).join("bin"));
    }
    places
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn python(manifest: &Path) -> Result<(String, Vec<u8>)> {
    let m = Manifest::read(manifest)?;
    let project = m.folder();
    let name = m.required("project.name", "name = \"my-transform\"")?;
    let transform = m.required(
        "tool.weir.transform",
        "[tool.weir] transform = \"my_transform:MyTransform\"",
    )?;
    let Some((module, class)) = transform
        .split_once(':')
        .filter(|(m, c)| is_identifier_path(m) && is_identifier_path(c))
    else {
        return Err(m.problem(format!(
            "`tool.weir.transform` is {transform:?}; write \"module:Class\", e.g. \"taxi_enrich:TaxiEnrich\""
        )));
    };
    let dir = build_folder(&project)?;
    for (file, text) in PYTHON_SDK {
        write(&dir.join("sdk").join("weir_sdk").join(file), text)?;
    }
    write(
        &dir.join("app").join("weir_entry.py"),
        &format!(
            "# Written by `weir plugin build`: exports {transform} as the weir:transform world.\n\
             from weir_sdk._component import world\n\
             from {module} import {class} as _Transform\n\n\
             WitWorld = world(_Transform)\n"
        ),
    )?;
    let componentize = tool(&project, "componentize-py");
    let install = format!("python3 -m pip install {COMPONENTIZE_PY} (into the venv you build in)");
    let mut paths = vec![dir.join("app"), dir.join("sdk")];
    let dependencies = m.names("project.dependencies");
    if !dependencies.is_empty() {
        let deps = dir.join("deps");
        let python = componentize
            .parent()
            .map(|bin| bin.join("python3"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("python3"));
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-compile",
                    "--target",
                ])
                .arg(&deps)
                .args(&dependencies),
            "pip",
            "python3 -m ensurepip",
            "; check the names in [project] dependencies",
        )?;
        refuse_native(&deps)?;
        paths.push(deps);
    }
    paths.push(project.clone());
    let output = dir.join(format!("{name}.wasm"));
    let mut command = Command::new(&componentize);
    command
        .arg("-d")
        .arg(dir.join("wit"))
        .args(["-w", "transform", "componentize", "weir_entry"]);
    for path in &paths {
        command.arg("-p").arg(path);
    }
    command.arg("-o").arg(&output);
    run(
        &mut command,
        "componentize-py",
        &install,
        "; an ImportError names a module that is not in the project or its dependencies",
    )?;
    let bytes = std::fs::read(&output).map_err(io(&output))?;
    Ok((name, bytes))
}

fn is_identifier_path(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// Refuses a bundled dependency that carries native code, naming it.
fn refuse_native(deps: &Path) -> Result<()> {
    let mut stack = vec![deps.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "so" || e == "pyd" || e == "dylib")
            {
                let relative = path.strip_prefix(deps).unwrap_or(&path);
                return Err(Error::NativeDependency {
                    package: relative
                        .components()
                        .next()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    file: relative.display().to_string(),
                });
            }
        }
    }
    Ok(())
}

fn js(manifest: &Path) -> Result<(String, Vec<u8>)> {
    let m = Manifest::read(manifest)?;
    let project = m.folder();
    let name = m.required("name", "\"name\": \"my-transform\"")?;
    let main = m.string("main")?.unwrap_or_else(|| "src/index.js".into());
    let source = project.join(&main);
    if !source.is_file() {
        return Err(m.problem(format!(
            "`main` is {main:?}, which is not a file; name the transform's ES module"
        )));
    }
    let dir = build_folder(&project)?;
    let install = format!(
        "npm install --save-dev {COMPONENTIZE_JS} (in {})",
        project.display()
    );
    // componentize-js follows relative imports itself; npm packages (bare
    // imports) are bundled into one module first.
    let source = if m.names("dependencies").is_empty() {
        source
    } else {
        if !project.join("node_modules").is_dir() {
            return Err(m.problem(format!(
                "`dependencies` lists packages but {} has no node_modules; run `npm install` there first",
                project.display()
            )));
        }
        let bundle = dir.join("bundle.js");
        run(
            Command::new(tool(&project, "esbuild"))
                .arg(&source)
                .args([
                    "--bundle",
                    "--format=esm",
                    "--platform=neutral",
                    "--main-fields=module,main",
                    "--external:weir:*",
                    "--log-level=warning",
                ])
                .arg(format!("--outfile={}", bundle.display())),
            "esbuild",
            &format!(
                "npm install --save-dev {ESBUILD} (in {})",
                project.display()
            ),
            "; a package that needs Node's built-ins (fs, net, …) cannot run inside a component",
        )?;
        bundle
    };
    let output = dir.join(format!("{name}.wasm"));
    run(
        Command::new(tool(&project, "componentize-js"))
            .arg(&source)
            .arg("--wit")
            .arg(dir.join("wit"))
            .args([
                "--world-name",
                "transform",
                "--disable",
                "http",
                "fetch-event",
            ])
            .arg("--out")
            .arg(&output),
        "componentize-js",
        &install,
        "; the module must export describe, init, process, onTick, snapshot and restore",
    )?;
    let bytes = std::fs::read(&output).map_err(io(&output))?;
    Ok((name, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_recognised_by_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(detect(dir.path()), Err(Error::NotAProject(_))));
        std::fs::write(dir.path().join("pyproject.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap().0, Language::Python);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap().0, Language::Rust);
        let package = dir.path().join("package.json");
        std::fs::write(&package, "{}").unwrap();
        assert_eq!(detect(&package).unwrap().0, Language::Js);
    }

    #[test]
    fn a_python_project_without_its_transform_key_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("pyproject.toml");
        std::fs::write(&manifest, "[project]\nname = \"x\"\n").unwrap();
        let e = python(&manifest).unwrap_err().to_string();
        assert!(e.contains("tool.weir.transform"), "{e}");
        std::fs::write(
            &manifest,
            "[project]\nname = \"x\"\n[tool.weir]\ntransform = \"x.Y\"\n",
        )
        .unwrap();
        let e = python(&manifest).unwrap_err().to_string();
        assert!(e.contains("\"module:Class\""), "{e}");
    }

    #[test]
    fn a_missing_toolchain_names_the_install_command() {
        let e = run(
            &mut Command::new("weir-no-such-tool"),
            "componentize-py",
            "python3 -m pip install componentize-py==0.25.1",
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pip install componentize-py==0.25.1"), "{e}");
    }
}
