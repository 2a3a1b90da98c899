//! OCI image layouts (image-spec v1.1, `image-layout.md`): index.json names manifests, one per
//! platform; a manifest names the image config and the layers, bottom first; every blob is
//! stored under blobs/sha256/<hex> and named by its digest. A layout is a directory (`skopeo
//! copy ... oci:DIR`) or a tar of one (`docker save`, `skopeo copy ... oci-archive:`).
//!
//! oci-spec's image types would bring ~40 crates (derive_builder, darling, getset, const_format)
//! for the five structs read here, so the few fields used are declared below instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::escape::escaped;
use crate::input::{InputError, open_resolved_file};
use crate::plan::Layer;

/// JSON documents (index, manifest, config) larger than this are refused: real ones are a few KiB.
const JSON_LIMIT: u64 = 4 << 20;
/// Nested indexes (an index of indexes) deeper than this are refused.
const INDEX_DEPTH: usize = 4;

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("cannot read {}: {source}", escaped(path))]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{what} is not valid JSON: {error}")]
    Json {
        what: String,
        error: serde_json::Error,
    },
    #[error("{what} is larger than {JSON_LIMIT} bytes")]
    TooLarge { what: String },
    #[error("the image has no blob {}", escaped(digest))]
    MissingBlob { digest: String },
    #[error(
        "blob {} is damaged: its content has digest sha256:{actual}",
        escaped(digest)
    )]
    DigestMismatch { digest: String, actual: String },
    #[error(
        "blob {} is {actual} bytes, but the image says {expected}",
        escaped(digest)
    )]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "unsupported digest \"{}\" (only sha256:<64 lower-case hex digits>)",
        escaped(digest)
    )]
    BadDigest { digest: String },
    #[error(
        "index.json names no image for linux/{arch} (it has: {})",
        escaped(available)
    )]
    NoPlatform { arch: String, available: String },
    #[error("index.json nests indexes more than {INDEX_DEPTH} deep")]
    TooDeep,
    #[error(
        "layer {} has media type {}, which is not a tar layer",
        escaped(digest),
        escaped(media_type)
    )]
    LayerType { digest: String, media_type: String },
}

/// What validation needs from an image: which manifest, its layers, and the config's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The manifest's digest (`sha256:<hex>`): the image's identity, which `rootfs.sha256` pins.
    pub manifest: String,
    pub layers: Vec<Layer>,
    pub config: ImageConfig,
}

/// The parts of the image config (`config` in the config blob) that are process defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// Docker writes `"Cmd": null` for an absent list.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<ImageConfig>,
}

/// The hex part of a `sha256:<hex>` digest, which is also its file name under blobs/sha256/.
/// Anything else is refused: the digest becomes a path.
pub fn digest_hex(digest: &str) -> Result<&str, OciError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_sha256_hex(hex))
        .ok_or_else(|| OciError::BadDigest {
            digest: digest.to_string(),
        })
}

pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A file of a layout, as a stream, and its size.
type Member<'a> = (Box<dyn Read + 'a>, u64);

/// An image layout, opened: a directory, or a tar whose members are indexed by name.
pub enum Layout {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        file: File,
        /// Member name (without a leading `./`) -> (offset of its data, size).
        members: HashMap<String, (u64, u64)>,
    },
}

impl Layout {
    pub fn open(path: &Path) -> Result<Layout, OciError> {
        let io = |source| OciError::Io {
            path: path.to_path_buf(),
            source,
        };
        // The path is resolved: read following no symlink, it is the layout the trust check
        // judged (see `hostpath`).
        if std::fs::symlink_metadata(path).map_err(io)?.is_dir() {
            return Ok(Layout::Dir(path.to_path_buf()));
        }
        let file = open_resolved_file(path)?;
        let mut members = HashMap::new();
        // The headers are read and the data skipped with seeks: an image of gigabytes is
        // indexed by reading a few kilobytes.
        let mut archive = tar::Archive::new(&file);
        for entry in archive.entries_with_seek().map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.header().entry_type().is_file() {
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let name = name.trim_start_matches("./").to_string();
                members.insert(name, (entry.raw_file_position(), entry.size()));
            }
        }
        Ok(Layout::Tar {
            path: path.to_path_buf(),
            file,
            members,
        })
    }

    fn path(&self) -> &Path {
        match self {
            Layout::Dir(path) | Layout::Tar { path, .. } => path,
        }
    }

    /// A file of the layout, by its name in the layout, with its size.
    fn member(&self, name: &str) -> Result<Option<Member<'_>>, OciError> {
        match self {
            Layout::Dir(dir) => {
                let path = dir.join(name);
                let file = match open_resolved_file(&path) {
                    Ok(file) => file,
                    Err(error) if error.is_not_found() => return Ok(None),
                    Err(error) => return Err(error.into()),
                };
                let size = file
                    .metadata()
                    .map_err(|source| OciError::Io { path, source })?
                    .len();
                Ok(Some((Box::new(file), size)))
            }
            Layout::Tar { file, members, .. } => Ok(members.get(name).map(|&(offset, size)| {
                let range = Range {
                    file,
                    position: offset,
                    end: offset + size,
                };
                (Box::new(range) as Box<dyn Read>, size)
            })),
        }
    }

    /// A blob's content as a stream, after checking that its size is the one its descriptor
    /// gives. The caller hashes what it reads (see [`Verified`]).
    pub fn blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + '_>, OciError> {
        let hex = digest_hex(digest)?;
        let (reader, actual) = self
            .member(&format!("blobs/sha256/{hex}"))?
            .ok_or_else(|| OciError::MissingBlob {
                digest: digest.to_string(),
            })?;
        if actual != size {
            return Err(OciError::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual,
            });
        }
        Ok(reader)
    }

    fn small(&self, what: &str, reader: impl Read, size: u64) -> Result<Vec<u8>, OciError> {
        if size > JSON_LIMIT {
            return Err(OciError::TooLarge { what: what.into() });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(JSON_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|source| OciError::Io {
                path: self.path().join(what),
                source,
            })?;
        Ok(bytes)
    }

    /// A JSON blob, checked against its descriptor's digest.
    fn json_blob<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        descriptor: &Descriptor,
    ) -> Result<T, OciError> {
        let reader = self.blob(&descriptor.digest, descriptor.size)?;
        let bytes = self.small(what, reader, descriptor.size)?;
        let actual = hex(&Sha256::digest(&bytes));
        if digest_hex(&descriptor.digest)? != actual {
            return Err(OciError::DigestMismatch {
                digest: descriptor.digest.clone(),
                actual,
            });
        }
        serde_json::from_slice(&bytes).map_err(|error| OciError::Json {
            what: format!("{what} {}", descriptor.digest),
            error,
        })
    }
}

/// A byte range of the layout's tar, read with pread so several can be open at once.
struct Range<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl Read for Range<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.position).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.position)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.position += n as u64;
        Ok(n)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read the image for linux/`arch` (an OCI architecture name, `amd64`): the
/// manifest and config are verified against their digests here; the layers when unpacked.
pub fn read_image(path: &Path, arch: &str) -> Result<Image, OciError> {
    let layout = Layout::open(path)?;
    let (reader, size) = layout.member("index.json")?.ok_or_else(|| OciError::Io {
        path: path.join("index.json"),
        source: io::ErrorKind::NotFound.into(),
    })?;
    let bytes = layout.small("index.json", reader, size)?;
    let mut index: Index = serde_json::from_slice(&bytes).map_err(|error| OciError::Json {
        what: "index.json".into(),
        error,
    })?;
    for _ in 0..INDEX_DEPTH {
        let descriptor = pick(index.manifests, arch)?;
        let is_index = descriptor
            .media_type
            .as_deref()
            .is_some_and(|t| INDEX_TYPES.contains(&t));
        if is_index {
            index = layout.json_blob("index", &descriptor)?;
            continue;
        }
        let manifest: Manifest = layout.json_blob("manifest", &descriptor)?;
        let config: ConfigBlob = layout.json_blob("config", &manifest.config)?;
        let layers = manifest
            .layers
            .into_iter()
            .map(|layer| {
                let media_type = layer.media_type.unwrap_or_default();
                digest_hex(&layer.digest)?;
                if !LAYER_TYPES.contains(&media_type.as_str()) {
                    return Err(OciError::LayerType {
                        digest: layer.digest,
                        media_type,
                    });
                }
                Ok(Layer {
                    digest: layer.digest,
                    size: layer.size,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Image {
            manifest: descriptor.digest,
            layers,
            config: config.config.unwrap_or_default(),
        });
    }
    Err(OciError::TooDeep)
}

/// The descriptor for linux/`arch`; a lone descriptor without a platform is taken as it is
/// (`docker save` and `skopeo copy` of one image write no platform).
fn pick(descriptors: Vec<Descriptor>, arch: &str) -> Result<Descriptor, OciError> {
    let matches = |d: &Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    if descriptors.len() == 1 && descriptors[0].platform.is_none() {
        return Ok(descriptors.into_iter().next().expect("one descriptor"));
    }
    let available = descriptors
        .iter()
        .map(|d| {
            d.platform
                .as_ref()
                .map_or("(no platform)".to_string(), |p| {
                    format!("{}/{}", p.os, p.architecture)
                })
        })
        .collect::<Vec<_>>()
        .join(", ");
    descriptors
        .into_iter()
        .find(matches)
        .ok_or_else(|| OciError::NoPlatform {
            arch: arch.to_string(),
            available: if available.is_empty() {
                "nothing".into()
            } else {
                available
            },
        })
}
