//! Writing plugins: `weir plugin new` (a working template per language) and
//! `weir plugin build` (the language's toolchain, then the `.wasm` placed
//! atomically in the plugins folder).
//!
//! - [`build`]: recognises a project by its manifest (`Cargo.toml`,
//!   `pyproject.toml`, `package.json`) and runs cargo, componentize-py or
//!   componentize-js.
//! - [`template`]: the templates `weir plugin new` writes.
//!
//! Nothing here runs a plugin: `weir plugin test` and `weir run` load what
//! the build placed, whatever language made it.

pub mod build;
pub mod template;

use std::path::PathBuf;

/// The languages a weir transform can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// A crate built with cargo for `wasm32-wasip2` (or cargo-component).
    Rust,
    /// A Python project built with componentize-py and the `weir_sdk` package.
    Python,
    /// A JavaScript ES module built with componentize-js.
    Js,
}

impl Language {
    /// The manifest that marks a project of this language.
    pub fn manifest(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            Language::Python => "pyproject.toml",
            Language::Js => "package.json",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
        })
    }
}

/// The WIT contract every plugin is built against, as this host reads it.
pub const WIT: &str = include_str!("../../../wit/transform.wit");

/// Why a plugin project could not be created or built; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No manifest of a known language in the folder.
    #[error(
        "{0} is not a plugin project: no Cargo.toml, pyproject.toml or package.json (create one with `weir plugin new NAME --lang rust|python|js`)"
    )]
    NotAProject(PathBuf),
    /// The manifest is missing something the build needs.
    #[error("{manifest}: {problem}")]
    Manifest {
        /// The manifest file.
        manifest: PathBuf,
        /// What is wrong, naming the key.
        problem: String,
    },
    /// A tool the language needs is not installed.
    #[error("{tool} is not installed or not runnable ({reason}); install it: {install}")]
    ToolMissing {
        /// The program.
        tool: String,
        /// Why running it failed.
        reason: String,
        /// The command that installs it.
        install: String,
    },
    /// The toolchain ran and failed; its own messages are above on stderr.
    #[error("{tool} failed ({status}); its messages are above{hint}")]
    BuildFailed {
        /// The program.
        tool: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What usually fixes it.
        hint: String,
    },
    /// A dependency the project lists cannot run inside a component.
    #[error(
        "{package} contains native code ({file}), which cannot run inside a WebAssembly component; list only pure-Python dependencies in pyproject.toml"
    )]
    NativeDependency {
        /// The package (its folder under the bundled dependencies).
        package: String,
        /// The native file.
        file: String,
    },
    /// `weir plugin new` would overwrite something.
    #[error("{0} exists already; choose another name or folder")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
