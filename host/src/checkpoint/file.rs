//! A checkpoint in a local file, for pipelines whose sink cannot hold one.
//!
//! Saving writes `<pipeline>.json.tmp`, fsyncs it, renames it over
//! `<pipeline>.json` and fsyncs the folder, so after a crash the file holds
//! either the old or the new checkpoint, never a torn one.

use super::{Checkpoint, CheckpointStore, Error, Result};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The store.
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The checkpoint of `pipeline` in folder `dir` (created when saving).
    pub fn new(dir: &Path, pipeline: &str) -> Self {
        FileStore {
            path: dir.join(format!("{pipeline}.json")),
        }
    }

    fn io(&self, action: &'static str) -> impl Fn(std::io::Error) -> Error + '_ {
        move |error| Error::Io {
            path: self.path.display().to_string(),
            action,
            error,
        }
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(self.io("create folder"))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(self.io("create temporary file"))?;
        file.write_all(bytes).map_err(self.io("write"))?;
        file.sync_all().map_err(self.io("fsync"))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(self.io("rename into place"))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io("fsync folder"))
    }
}

#[async_trait]
impl CheckpointStore for FileStore {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn load(&mut self) -> Result<Option<Checkpoint>> {
        let text = match tokio::fs::read(&self.path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            })
    }

    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint serialises");
        tokio::task::block_in_place(|| self.write_atomically(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Mark;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_saved_checkpoint_replaces_the_previous_one_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(&dir.path().join("nested"), "p");
        assert_eq!(store.load().await.unwrap(), None);
        for epoch in 1..=3 {
            let checkpoint = Checkpoint {
                pipeline: "p".into(),
                source: "file x".into(),
                epoch,
                positions: Mark::from([("t/0".to_owned(), epoch as i64 * 10)]),
                state: Default::default(),
            };
            store.save(&checkpoint).await.unwrap();
            assert_eq!(store.load().await.unwrap(), Some(checkpoint));
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["p.json"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_torn_checkpoint_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), b"{\"epoch\": 3, ").unwrap();
        let error = FileStore::new(dir.path(), "p").load().await.unwrap_err();
        assert!(error.to_string().contains("p.json"), "{error}");
    }
}
