//! Object-store locations shared by the object-store source and the Parquet
//! sink: `s3://bucket/prefix`, `file:///dir`, `memory://…`, or a plain
//! path (a local folder, relative to the configuration file).
//!
//! S3 settings come from the standard `AWS_*` environment variables first
//! (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ALLOW_HTTP`), then from the location's `options`
//! table, whose keys are object_store's (`endpoint`, `access_key_id`,
//! `secret_access_key`, `region`, `allow_http`, …). Addressing is
//! path-style unless `virtual_hosted_style_request = "true"`.

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use url::Url;

/// A location could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("object store {location}: {reason}")]
pub struct Error {
    /// The location as configured.
    pub location: String,
    /// What is wrong and what to do.
    pub reason: String,
}

/// An opened location: the store and the prefix inside it.
#[derive(Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Prefix of every object this location covers.
    pub prefix: StorePath,
    /// The location as the user wrote it, for logs (never holds secrets:
    /// those live in `options`).
    pub display: String,
    /// The location as a folder URL (`s3://bucket/prefix/`,
    /// `file:///abs/dir/`), as table formats address it.
    pub root: Url,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Location {
    /// The full path of `name` under the prefix.
    pub fn child(&self, name: &str) -> StorePath {
        let mut path = self.prefix.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }
}

/// S3 settings: the `AWS_*` environment first, then `options`; path-style
/// addressing unless the options ask otherwise.
fn s3_builder(options: &BTreeMap<String, String>) -> Result<AmazonS3Builder, String> {
    let mut builder = AmazonS3Builder::from_env().with_virtual_hosted_style_request(false);
    for (key, value) in options {
        let key = AmazonS3ConfigKey::from_str(key).map_err(|_| {
            format!(
                "unknown S3 option {key:?} (use object_store's keys: endpoint, region, access_key_id, secret_access_key, allow_http, …)"
            )
        })?;
        builder = builder.with_config(key, value);
    }
    Ok(builder)
}

/// `memory://name` stores live as long as the process, so a test can write
/// through one pipeline and read through another.
static MEMORY: LazyLock<Mutex<BTreeMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);

/// Opens `location`; relative local paths start at `base_dir`. Local
/// folders are created.
pub fn open(
    location: &str,
    options: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<Location, Error> {
    let fail = |reason: String| Error {
        location: location.to_owned(),
        reason,
    };
    let url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // No scheme (or a Windows drive letter): a local path.
        _ => {
            let dir = base_dir.join(location);
            std::fs::create_dir_all(&dir)
                .map_err(|e| fail(format!("cannot create the folder: {e}")))?;
            let dir = dir
                .canonicalize()
                .map_err(|e| fail(format!("cannot resolve the folder: {e}")))?;
            Url::from_directory_path(&dir)
                .map_err(|()| fail("not an absolute local path".into()))?
        }
    };
    let path_of = |p: &str| {
        StorePath::parse(p).map_err(|e| fail(format!("invalid path in the location: {e}")))
    };
    let (store, prefix): (Arc<dyn ObjectStore>, StorePath) = match url.scheme() {
        "s3" | "s3a" => {
            let bucket = url
                .host_str()
                .ok_or_else(|| fail("an S3 location needs a bucket: s3://bucket/prefix".into()))?;
            let store = s3_builder(options)
                .map_err(fail)?
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| fail(format!("{e} (check the S3 options)")))?;
            (Arc::new(store), path_of(url.path())?)
        }
        "file" => {
            if !options.is_empty() {
                return Err(fail("local folders take no options".into()));
            }
            let dir = url
                .to_file_path()
                .map_err(|()| fail("not a local path".into()))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| fail(format!("cannot create the folder: {e}")))?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| fail(e.to_string()))?
                .with_automatic_cleanup(true);
            (Arc::new(store), StorePath::default())
        }
        "memory" => {
            let name = url.host_str().unwrap_or_default().to_owned();
            let store = MEMORY
                .lock()
                .expect("memory stores lock")
                .entry(name)
                .or_default()
                .clone();
            (store, path_of(url.path())?)
        }
        other => {
            return Err(fail(format!(
                "unsupported scheme {other:?} (use s3://, file://, memory:// or a local path)"
            )));
        }
    };
    let mut root = url;
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    Ok(Location {
        store,
        prefix,
        display: location.to_owned(),
        root,
    })
}

/// Creates the bucket of an `s3://bucket` location (a signed
/// `PUT /bucket`, path-style); a bucket that already exists and is yours
/// is fine. object_store reads and writes objects but has no bucket API.
pub async fn create_bucket(
    location: &str,
    options: &BTreeMap<String, String>,
) -> Result<(), Error> {
    use object_store::ClientOptions;
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    use object_store::client::{HttpConnector, HttpRequestBody, ReqwestConnector};
    let fail = |reason: String| Error {
        location: location.to_owned(),
        reason,
    };
    let url = Url::parse(location).map_err(|e| fail(format!("not a URL: {e}")))?;
    let bucket = match (url.scheme(), url.host_str()) {
        ("s3" | "s3a", Some(bucket)) => bucket.to_owned(),
        _ => return Err(fail("expected s3://bucket".into())),
    };
    let builder = s3_builder(options).map_err(fail)?;
    let get = |key| builder.get_config_value(&key);
    let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let endpoint = get(AmazonS3ConfigKey::Endpoint)
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let credential = AwsCredential {
        key_id: get(AmazonS3ConfigKey::AccessKeyId)
            .ok_or_else(|| fail("no access key: set AWS_ACCESS_KEY_ID or access_key_id".into()))?,
        secret_key: get(AmazonS3ConfigKey::SecretAccessKey).ok_or_else(|| {
            fail("no secret key: set AWS_SECRET_ACCESS_KEY or secret_access_key".into())
        })?,
        token: get(AmazonS3ConfigKey::Token),
    };
    let allow_http = get(AmazonS3ConfigKey::Client(
        object_store::ClientConfigKey::AllowHttp,
    ))
    .is_some_and(|v| v == "true");
    let client = ReqwestConnector::default()
        .connect(&ClientOptions::new().with_allow_http(allow_http))
        .map_err(|e| fail(e.to_string()))?;
    let target = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
    let mut request = http::Request::builder()
        .method(http::Method::PUT)
        .uri(&target)
        .body(HttpRequestBody::empty())
        .map_err(|e| fail(format!("bad endpoint {endpoint}: {e}")))?;
    AwsAuthorizer::new(&credential, "s3", &region)
        .try_authorize(&mut request, None)
        .map_err(|e| fail(format!("cannot sign the request: {e}")))?;
    let response = client
        .execute(request)
        .await
        .map_err(|e| fail(format!("PUT {target}: {e} (is the S3 endpoint up?)")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response
        .into_body()
        .bytes()
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if body.contains("BucketAlreadyOwnedByYou") || body.contains("BucketAlreadyExists") {
        return Ok(());
    }
    Err(fail(format!(
        "creating the bucket failed with {status}: {body}"
    )))
}

/// Whether an object-store error may go away by itself (a connection or a
/// server problem, after object_store's own retries), so the pipeline backs
/// off and resumes; or is the request's fault (missing object, refused
/// credentials, any other 4xx but 408/429), which no retry fixes.
pub fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // S3 client errors arrive as `Generic`, their status only in the
        // message ("… non-2xx status code: 403 Forbidden …").
        e => {
            let text = e.to_string();
            !text.split("status code: ").skip(1).any(|rest| {
                rest.starts_with('4') && !rest.starts_with("408") && !rest.starts_with("429")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_errors_are_final_and_connection_errors_transient() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        };
        assert!(!is_transient(&generic(
            "Error performing GET http://h/b in 1ms - Server returned non-2xx status code: 403 Forbidden: <Error>…"
        )));
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 503 Service Unavailable"
        )));
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 429 Too Many Requests"
        )));
        assert!(is_transient(&generic(
            "error sending request: connection refused"
        )));
        assert!(!is_transient(&object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        }));
    }

    use super::*;

    #[test]
    fn relative_paths_are_local_folders_under_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let loc = open("out/taxi", &BTreeMap::new(), dir.path()).unwrap();
        assert!(dir.path().join("out/taxi").is_dir());
        assert_eq!(loc.child("a/b.parquet").as_ref(), "a/b.parquet");
    }

    #[test]
    fn unknown_s3_options_are_refused_with_the_key() {
        let options = BTreeMap::from([("endpiont".to_owned(), "x".to_owned())]);
        let e = open("s3://bucket/p", &options, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("endpiont"), "{e}");
    }

    #[test]
    fn memory_stores_are_shared_by_name() {
        let a = open("memory://shared/x", &BTreeMap::new(), Path::new(".")).unwrap();
        let b = open("memory://shared/y", &BTreeMap::new(), Path::new(".")).unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert_eq!(a.prefix.as_ref(), "x");
    }
}
