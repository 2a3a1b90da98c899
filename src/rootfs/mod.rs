//! Preparing a tar or OCI root before the sandbox starts: unpacked once into the
//! content-addressed [`cache`], verified, then shared read-only by every sandbox that uses it
//! (the executor puts a per-sandbox overlay on top).
//!
//! This runs in the launcher before the clone, so it may draw progress bars, but it must leave
//! no thread behind: the bars have no steady tick (indicatif's tick is a thread) and are
//! finished before [`prepare`] returns.

pub mod cache;
pub mod oci;
mod unpack;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};

pub use cache::{Cache, CacheError};
pub use oci::{Image, ImageConfig, OciError};
pub use unpack::{UnpackError, Why};

use crate::escape::escaped;
use crate::plan::{Layer, RootSource};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot read {}: {source}", escaped(path))]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{} is not a usable archive: {error}", escaped(path))]
    Unpack { path: PathBuf, error: UnpackError },
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(
        "{} has sha256 {actual}, not the {expected} the manifest pins",
        escaped(path)
    )]
    Sha256 {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl RootfsError {
    /// The manifest key a diagnostic should point at.
    pub fn key(&self, source: &RootSource) -> &'static str {
        match (self, source) {
            (RootfsError::Sha256 { .. }, _) => "rootfs.sha256",
            (RootfsError::Cache(_), _) => "rootfs",
            (_, RootSource::Oci { .. }) => "rootfs.oci",
            _ => "rootfs.tar",
        }
    }
}

/// A root ready for the executor: a directory in the cache, locked in use until dropped.
pub struct PreparedRoot {
    pub dir: PathBuf,
    pub digest: String,
    /// How long unpacking took, when this run unpacked it (`None`: it was cached).
    pub unpacked: Option<Duration>,
    _in_use: File,
}

/// Whether progress bars are drawn (on a terminal, unless quiet).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub visible: bool,
}

impl Progress {
    fn bar(&self, length: u64, message: String) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message);
        bar
    }
}

/// Unpack (or find in the cache) the root of a tar or OCI source; `None` for other sources.
pub fn prepare(
    source: &RootSource,
    cache: &Cache,
    progress: Progress,
) -> Result<Option<PreparedRoot>, RootfsError> {
    match source {
        RootSource::Tmpfs | RootSource::Dir { .. } => Ok(None),
        RootSource::Tar { path, sha256 } => {
            tarball(path, sha256.as_deref(), cache, progress).map(Some)
        }
        RootSource::Oci {
            path,
            manifest,
            layers,
            ..
        } => image(path, manifest, layers, cache, progress).map(Some),
    }
}

fn prepared(
    cache: &Cache,
    hex: &str,
    unpacked: Option<Duration>,
) -> Result<Option<PreparedRoot>, CacheError> {
    Ok(cache.use_root(hex)?.map(|(dir, lock)| PreparedRoot {
        dir,
        digest: format!("sha256:{hex}"),
        unpacked,
        _in_use: lock,
    }))
}

/// A tarball's identity: a changed file has a new ctime, whatever its mtime says.
fn identity(meta: &std::fs::Metadata, path: &Path) -> String {
    let key = format!(
        "{}:{}:{}:{}.{}:{}.{}:{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        path.display()
    );
    oci::hex(&Sha256::digest(key.as_bytes()))
}

fn tarball(
    path: &Path,
    sha256: Option<&str>,
    cache: &Cache,
    progress: Progress,
) -> Result<PreparedRoot, RootfsError> {
    let read = |source| RootfsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let expected = sha256.map(str::to_ascii_lowercase);
    // The path is resolved: opened following no symlink, the tarball is the one the trust
    // check judged (see `hostpath`), and its identity is that of the file read.
    let open = || crate::input::open_resolved_file(path);
    // A pinned root is looked up by its digest (the tarball is not even opened); otherwise the
    // tarball is hashed once and then known by its identity.
    let (file, identity) = match &expected {
        Some(_) => (None, None),
        None => {
            let file = open()?;
            let identity = identity(&file.metadata().map_err(read)?, path);
            (Some(file), Some(identity))
        }
    };
    let known = || {
        expected
            .clone()
            .or_else(|| cache.source_digest(identity.as_deref().expect("no pinned digest")))
    };
    if let Some(hex) = known()
        && let Some(root) = prepared(cache, &hex, None)?
    {
        return Ok(root);
    }
    let lock_key = expected
        .clone()
        .or_else(|| identity.clone())
        .expect("a key");
    let _unpacking = cache.unpack_lock(&lock_key)?;
    // Another launcher may have unpacked it while this one waited for the lock.
    if let Some(hex) = known()
        && let Some(root) = prepared(cache, &hex, None)?
    {
        return Ok(root);
    }

    let file = match file {
        Some(file) => file,
        None => open()?,
    };
    let started = Instant::now();
    let scratch = cache.scratch()?;
    let options = unpack::Options {
        as_root: nix::unistd::geteuid().is_root(),
        budget: free_space(cache.dir()).map_err(read)?,
    };
    let mut tree = unpack::Tree::new(&crate::sys::KERNEL, scratch.fd()?, options);
    let size = file.metadata().map_err(read)?.len();
    let name = escaped(path.file_name().unwrap_or_default());
    let bar = progress.bar(size, format!("unpacking {name}"));
    let verified = unpack_one(&mut tree, bar.wrap_read(file), false, path);
    bar.finish_and_clear();
    let (actual, bytes) = verified?;
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(RootfsError::Sha256 {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    tree.finish().map_err(|error| RootfsError::Unpack {
        path: path.to_path_buf(),
        error,
    })?;
    let meta = cache::EntryMeta {
        kind: "tar".into(),
        source: path.to_path_buf(),
        unpacked: now(),
        bytes,
    };
    cache.publish(scratch, &actual, &meta)?;
    if let Some(identity) = &identity {
        cache.record_source(identity, &actual)?;
    }
    prepared(cache, &actual, Some(started.elapsed()))?
        .ok_or_else(|| read(io::Error::other("the cache lost the root it just unpacked")))
}

fn image(
    path: &Path,
    manifest: &str,
    layers: &[Layer],
    cache: &Cache,
    progress: Progress,
) -> Result<PreparedRoot, RootfsError> {
    let hex = oci::digest_hex(manifest)?.to_string();
    if let Some(root) = prepared(cache, &hex, None)? {
        return Ok(root);
    }
    let _unpacking = cache.unpack_lock(&hex)?;
    if let Some(root) = prepared(cache, &hex, None)? {
        return Ok(root);
    }
    let read = |source| RootfsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let started = Instant::now();
    let layout = oci::Layout::open(path)?;
    let scratch = cache.scratch()?;
    let options = unpack::Options {
        as_root: nix::unistd::geteuid().is_root(),
        budget: free_space(cache.dir()).map_err(read)?,
    };
    let mut tree = unpack::Tree::new(&crate::sys::KERNEL, scratch.fd()?, options);
    let mut total = 0;
    for (n, layer) in layers.iter().enumerate() {
        let blob = layout.blob(&layer.digest, layer.size)?;
        let short = &layer.digest[..layer.digest.len().min(19)];
        let bar = progress.bar(
            layer.size,
            format!("layer {}/{} {short}", n + 1, layers.len()),
        );
        let verified = unpack_one(&mut tree, bar.wrap_read(blob), true, path);
        bar.finish_and_clear();
        let (actual, bytes) = verified?;
        if oci::digest_hex(&layer.digest)? != actual {
            return Err(OciError::DigestMismatch {
                digest: layer.digest.clone(),
                actual,
            }
            .into());
        }
        total += bytes;
    }
    tree.finish().map_err(|error| RootfsError::Unpack {
        path: path.to_path_buf(),
        error,
    })?;
    let meta = cache::EntryMeta {
        kind: "oci".into(),
        source: path.to_path_buf(),
        unpacked: now(),
        bytes: total,
    };
    cache.publish(scratch, &hex, &meta)?;
    prepared(cache, &hex, Some(started.elapsed()))?
        .ok_or_else(|| read(io::Error::other("the cache lost the root it just unpacked")))
}

/// Unpack one (possibly compressed) tar stream into the tree, hashing every byte of the
/// stream as read; returns the stream's sha256 and its size. The digest is compared before the
/// root is published, so nothing unverified is ever used.
fn unpack_one(
    tree: &mut unpack::Tree,
    input: impl Read,
    whiteouts: bool,
    path: &Path,
) -> Result<(String, u64), RootfsError> {
    let read = |source| RootfsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut hashing = Hashing {
        inner: input,
        hasher: Sha256::new(),
        bytes: 0,
    };
    {
        let mut decoder = decompress(BufReader::new(&mut hashing)).map_err(read)?;
        tree.apply(&mut decoder, whiteouts)
            .map_err(|error| RootfsError::Unpack {
                path: path.to_path_buf(),
                error,
            })?;
        // What follows the tar's end marker (padding, the compressor's trailer) is part of the
        // blob and of its digest.
        io::copy(&mut decoder, &mut io::sink()).map_err(read)?;
    }
    io::copy(&mut hashing, &mut io::sink()).map_err(read)?;
    Ok((oci::hex(&hashing.hasher.finalize()), hashing.bytes))
}

/// The decompressor the stream's first bytes call for (the file name may lie).
fn decompress<'a, R: BufRead + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
    let magic = input.fill_buf()?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input)?)
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input))
    } else {
        Box::new(input)
    })
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn free_space(dir: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
