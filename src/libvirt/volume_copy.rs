//! Storage pools and volumes, and copying a volume from one host to another through libvirt
//! streams (`virStorageVolDownload` on the source, `virStorageVolUpload` on the destination),
//! both over the hosts' ordinary connections: no ssh or scp of ferry's own.
//!
//! Every operation here is an `async fn`: its libvirt call runs on tokio's blocking pool under
//! the call timeout (`HostConnection::run`), never on a runtime worker.
//!
//! The copy is chunked so that a host that dies mid-copy fails it instead of hanging it: every
//! chunk is one bounded call. Reading from the source (a task of its own) and writing to the
//! destination overlap, with a few chunks in flight between them, as
//! `virsh vol-download | virsh vol-upload` overlaps its two ends through the pipe.
//!
//! The `virt` crate has no safe wrapper for sparse streams (`virStreamSparseRecvAll`,
//! `VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM`), and `unsafe` stays in `job_stats.rs`, so streams
//! are plain: holes travel as zeros and land on the destination as written zeros.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{self, Receiver, Sender};
use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use super::storage::{pool_target_path, xml_escape};
use super::{HostConnection, LibvirtError};

/// The most one `virStreamSend` carries: libvirt's legacy stream packet payload, which is what
/// virsh itself sends per packet, so no libvirt version refuses it.
const STREAM_PACKET_BYTES: usize = 256 * 1024;

/// Chunks queued between the reading task and the writer: enough to keep both ends busy,
/// few enough that memory stays at a few chunks.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Finishing a stream may wait for a whole page cache of the volume to reach the disk.
const FINISH_TIMEOUT_FACTOR: u32 = 4;

/// A directory (or other) storage pool on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolFacts {
    pub name: String,
    /// `<target><path>`: the directory of a dir pool, the device directory of others.
    pub target_path: String,
    pub active: bool,
    pub available_bytes: u64,
}

/// One volume as libvirt describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeFacts {
    pub pool: String,
    pub name: String,
    pub path: String,
    /// `raw`, `qcow2`, …: the destination volume is created with the same format.
    pub format: String,
    /// Size the guest sees.
    pub capacity_bytes: u64,
    /// Bytes a download streams (the file's length).
    pub physical_bytes: u64,
    /// The image this one is an overlay of, if any: it is not part of the volume's data.
    pub backing_path: Option<String>,
}

/// A volume named by its pool, the way it is found again on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRef {
    pub pool: String,
    pub name: String,
}

impl std::fmt::Display for VolumeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pool, self.name)
    }
}

/// The volume to create on the destination before uploading into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVolume {
    pub name: String,
    pub format: String,
    pub capacity_bytes: u64,
}

impl NewVolume {
    /// Allocation 0: the upload writes the data, nothing is preallocated first.
    pub fn xml(&self) -> String {
        format!(
            "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{}</capacity>\n  \
             <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='{}'/>\n  \
             </target>\n</volume>\n",
            xml_escape(&self.name),
            self.capacity_bytes,
            xml_escape(&self.format)
        )
    }
}

/// How a stream copy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySettings {
    /// Bytes moved by one bounded call (several stream packets).
    pub chunk_bytes: usize,
    /// Bound on each chunk's call, and on opening and finishing the streams.
    pub call_timeout: Duration,
    /// Cap on the copy rate; None copies as fast as the hosts go.
    pub bandwidth_bytes_per_second: Option<u64>,
}

/// What went through a stream: its length and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDigest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("stopped at {bytes_done} bytes: {reason}")]
    Stopped { bytes_done: u64, reason: String },
}

/// Reads format, sizes and backing store from a volume XML. Sizes in libvirt's volume XML are
/// in bytes unless a unit says otherwise; libvirt itself always writes `unit='bytes'`.
pub fn volume_facts_from_xml(pool: &str, xml: &str) -> Option<VolumeFacts> {
    let document = roxmltree::Document::parse(xml).ok()?;
    let root = document.root_element();
    fn child<'a, 'input>(
        parent: roxmltree::Node<'a, 'input>,
        tag: &str,
    ) -> Option<roxmltree::Node<'a, 'input>> {
        parent.children().find(|n| n.has_tag_name(tag))
    }
    let bytes_of = |tag: &str| -> Option<u64> {
        let node = child(root, tag)?;
        let value: u64 = node.text()?.trim().parse().ok()?;
        let multiplier = match node.attribute("unit").unwrap_or("bytes") {
            "bytes" | "B" | "b" => 1,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" | "m" => 1 << 20,
            "GiB" | "G" | "g" => 1 << 30,
            "TiB" | "T" | "t" => 1 << 40,
            _ => return None,
        };
        value.checked_mul(multiplier)
    };
    let target = child(root, "target")?;
    let capacity_bytes = bytes_of("capacity")?;
    Some(VolumeFacts {
        pool: pool.to_string(),
        name: child(root, "name")?.text()?.trim().to_string(),
        path: child(target, "path")?.text()?.trim().to_string(),
        format: child(target, "format")
            .and_then(|n| n.attribute("type"))
            .unwrap_or("raw")
            .to_string(),
        capacity_bytes,
        physical_bytes: bytes_of("physical")
            .or_else(|| bytes_of("allocation"))
            .unwrap_or(capacity_bytes),
        backing_path: child(root, "backingStore")
            .and_then(|b| child(b, "path"))
            .and_then(|p| p.text())
            .map(|text| text.trim().to_string())
            .filter(|path| !path.is_empty()),
    })
}

fn pool_facts(pool: &StoragePool) -> Result<PoolFacts, LibvirtError> {
    let name = pool
        .name()
        .map_err(|e| LibvirtError::call("reading a pool's name", e))?;
    let xml = pool
        .xml_desc(0)
        .map_err(|e| LibvirtError::call(format!("reading pool {name}"), e))?;
    let active = pool.is_active().unwrap_or(false);
    // An inactive pool reports no free space: it cannot take a volume anyway.
    let available_bytes = if active {
        pool.info().map(|info| info.available).unwrap_or(0)
    } else {
        0
    };
    Ok(PoolFacts {
        target_path: pool_target_path(&xml).unwrap_or_default(),
        name,
        active,
        available_bytes,
    })
}

fn read_volume_facts(pool_name: &str, volume: &StorageVol) -> Result<VolumeFacts, LibvirtError> {
    let xml = volume
        .xml_desc(0)
        .map_err(|e| LibvirtError::call("reading a volume", e))?;
    let mut facts = volume_facts_from_xml(pool_name, &xml).ok_or_else(|| LibvirtError::Call {
        context: format!("pool {pool_name}"),
        message: "volume XML without name, path or capacity".into(),
    })?;
    // With GET_PHYSICAL the allocation field holds the file's length, which is what a download
    // streams; the XML may lack `<physical>` on old libvirt versions.
    if let Ok(info) = volume.info_flags(virt::sys::VIR_STORAGE_VOL_GET_PHYSICAL) {
        if info.allocation > 0 {
            facts.physical_bytes = info.allocation;
        }
    }
    Ok(facts)
}

fn lookup_volume(connect: &Connect, volume: &VolumeRef) -> Result<StorageVol, virt::error::Error> {
    connect
        .lookup_storage_pool_by_name(&volume.pool)?
        .lookup_storage_vol_by_name(&volume.name)
}

fn is_missing(error: &virt::error::Error) -> bool {
    use virt::error::ErrorNumber;
    let code = error.code();
    code.is(ErrorNumber::NoStorageVolume) || code.is(ErrorNumber::NoStoragePool)
}

impl HostConnection {
    pub async fn storage_pools(&self, timeout: Duration) -> Result<Vec<PoolFacts>, LibvirtError> {
        self.run("listing storage pools", timeout, |connect| {
            let pools = connect
                .list_all_storage_pools(0)
                .map_err(|e| LibvirtError::call("listing storage pools", e))?;
            let mut facts = pools
                .iter()
                .map(pool_facts)
                .collect::<Result<Vec<_>, _>>()?;
            facts.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(facts)
        })
        .await
    }

    /// The volume at `path` on this host, or None when no storage pool holds that path. Pools
    /// are refreshed once if the first lookup misses: a file added behind libvirt's back is only
    /// known after a refresh.
    pub async fn volume_by_path(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<Option<VolumeFacts>, LibvirtError> {
        let path = path.to_string();
        self.run(
            format!("looking up volume {path}"),
            timeout,
            move |connect| {
                let found = match connect.lookup_storage_vol_by_path(&path) {
                    Ok(volume) => Some(volume),
                    Err(_) => {
                        for pool in connect.list_all_storage_pools(0).unwrap_or_default() {
                            if pool.is_active().unwrap_or(false) {
                                let _ = pool.refresh(0);
                            }
                        }
                        connect.lookup_storage_vol_by_path(&path).ok()
                    }
                };
                let Some(volume) = found else {
                    return Ok(None);
                };
                let pool = volume
                    .lookup_storage_pool()
                    .and_then(|p| p.name())
                    .map_err(|e| LibvirtError::call(format!("finding the pool of {path}"), e))?;
                read_volume_facts(&pool, &volume).map(Some)
            },
        )
        .await
    }

    /// The named volume, or None when the pool holds no volume of that name.
    pub async fn volume(
        &self,
        volume: &VolumeRef,
        timeout: Duration,
    ) -> Result<Option<VolumeFacts>, LibvirtError> {
        let volume = volume.clone();
        self.run(
            format!("looking up volume {volume}"),
            timeout,
            move |connect| match lookup_volume(connect, &volume) {
                Ok(found) => read_volume_facts(&volume.pool, &found).map(Some),
                Err(error) if is_missing(&error) => Ok(None),
                Err(error) => Err(LibvirtError::call(format!("looking up {volume}"), error)),
            },
        )
        .await
    }

    /// Creates an empty volume in `pool`; fails if one of that name exists (libvirt refuses).
    pub async fn create_volume(
        &self,
        pool: &str,
        volume: &NewVolume,
        timeout: Duration,
    ) -> Result<VolumeFacts, LibvirtError> {
        let pool = pool.to_string();
        let xml = volume.xml();
        let context = format!("creating volume {pool}/{}", volume.name);
        self.run(context.clone(), timeout, move |connect| {
            let storage_pool = connect
                .lookup_storage_pool_by_name(&pool)
                .map_err(|e| LibvirtError::call(context.clone(), e))?;
            let created = StorageVol::create_xml(&storage_pool, &xml, 0)
                .map_err(|e| LibvirtError::call(context.clone(), e))?;
            read_volume_facts(&pool, &created)
        })
        .await
    }

    /// Makes libvirt read the pool's directory again, so that files added or removed behind
    /// its back are known (or forgotten).
    pub async fn refresh_storage_pool(
        &self,
        pool: &str,
        timeout: Duration,
    ) -> Result<(), LibvirtError> {
        let pool = pool.to_string();
        let context = format!("refreshing pool {pool}");
        self.run(context.clone(), timeout, move |connect| {
            connect
                .lookup_storage_pool_by_name(&pool)
                .and_then(|found| found.refresh(0))
                .map(|_| ())
                .map_err(|e| LibvirtError::call(context, e))
        })
        .await
    }

    /// Deletes the volume; Ok(false) when it was not there (already deleted).
    pub async fn delete_volume(
        &self,
        volume: &VolumeRef,
        timeout: Duration,
    ) -> Result<bool, LibvirtError> {
        let volume = volume.clone();
        self.run(
            format!("deleting volume {volume}"),
            timeout,
            move |connect| match lookup_volume(connect, &volume) {
                Ok(found) => found
                    .delete(0)
                    .map(|_| true)
                    .map_err(|e| LibvirtError::call(format!("deleting {volume}"), e)),
                Err(error) if is_missing(&error) => Ok(false),
                Err(error) => Err(LibvirtError::call(format!("looking up {volume}"), error)),
            },
        )
        .await
    }
}

/// One end of a volume stream. Every operation on it is one bounded call on its host.
struct VolumeStream {
    connection: HostConnection,
    stream: Arc<Stream>,
    label: String,
    timeout: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Download,
    Upload,
}

impl VolumeStream {
    async fn open(
        connection: &HostConnection,
        volume: &VolumeRef,
        direction: Direction,
        timeout: Duration,
    ) -> Result<VolumeStream, LibvirtError> {
        let label = match direction {
            Direction::Download => format!("download of {volume}"),
            Direction::Upload => format!("upload into {volume}"),
        };
        let volume = volume.clone();
        let context = format!("opening the {label}");
        let stream = connection
            .run(context.clone(), timeout, move |connect| {
                let found =
                    lookup_volume(connect, &volume).map_err(|e| LibvirtError::call(&context, e))?;
                let stream =
                    Stream::new(connect, 0).map_err(|e| LibvirtError::call(&context, e))?;
                // Offset 0 and length 0: the whole volume.
                let started = match direction {
                    Direction::Download => found.download(&stream, 0, 0, 0),
                    Direction::Upload => found.upload(&stream, 0, 0, 0),
                };
                started.map_err(|e| LibvirtError::call(&context, e))?;
                Ok(Arc::new(stream))
            })
            .await?;
        Ok(VolumeStream {
            connection: connection.clone(),
            stream,
            label,
            timeout,
        })
    }

    /// Fills `buffer` (cleared first) up to its capacity, or less at the end of the volume;
    /// an empty buffer means the end. What was read is fed to `hasher` in the same call, on the
    /// blocking pool: hashing is work, and the runtime's workers only wait.
    async fn read_chunk(
        &self,
        mut buffer: Vec<u8>,
        mut hasher: Sha256,
    ) -> Result<(Vec<u8>, Sha256), LibvirtError> {
        let stream = Arc::clone(&self.stream);
        let context = format!("reading the {}", self.label);
        self.connection
            .run(context.clone(), self.timeout, move |_| {
                let wanted = buffer.capacity().max(STREAM_PACKET_BYTES);
                buffer.resize(wanted, 0);
                let mut filled = 0;
                while filled < wanted {
                    let received = stream
                        .recv(&mut buffer[filled..])
                        .map_err(|e| LibvirtError::call(&context, e))?;
                    if received <= 0 {
                        break;
                    }
                    filled += received as usize;
                }
                buffer.truncate(filled);
                hasher.update(&buffer);
                Ok((buffer, hasher))
            })
            .await
    }

    /// Sends all of `chunk` and hands the buffer back for reuse.
    async fn write_chunk(&self, chunk: Vec<u8>) -> Result<Vec<u8>, LibvirtError> {
        let stream = Arc::clone(&self.stream);
        let context = format!("writing the {}", self.label);
        self.connection
            .run(context.clone(), self.timeout, move |_| {
                let mut sent = 0;
                while sent < chunk.len() {
                    let end = (sent + STREAM_PACKET_BYTES).min(chunk.len());
                    let written = stream
                        .send(&chunk[sent..end])
                        .map_err(|e| LibvirtError::call(&context, e))?;
                    if written <= 0 {
                        return Err(LibvirtError::Call {
                            context,
                            message: "the stream accepted no data".into(),
                        });
                    }
                    sent += written as usize;
                }
                Ok(chunk)
            })
            .await
    }

    /// Ends the transfer cleanly; for an upload, libvirt answers once the destination has
    /// written out what it still buffers, hence a longer bound than one chunk's.
    async fn finish(self) -> Result<(), LibvirtError> {
        let stream = Arc::clone(&self.stream);
        let context = format!("finishing the {}", self.label);
        self.connection
            .run(
                context.clone(),
                self.timeout * FINISH_TIMEOUT_FACTOR,
                move |_| {
                    stream
                        .as_ref()
                        .clone()
                        .finish()
                        .map_err(|e| LibvirtError::call(&context, e))
                },
            )
            .await
    }

    /// Best effort: tells the host to drop the transfer. A dead host cannot be told, and its
    /// side ends when libvirt's keep-alive closes the connection.
    async fn abort(self) {
        let stream = Arc::clone(&self.stream);
        let _ = self
            .connection
            .run(
                format!("aborting the {}", self.label),
                self.timeout,
                move |_| {
                    let _ = stream.as_ref().clone().abort();
                    Ok(())
                },
            )
            .await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps a copy under its bandwidth cap by sleeping before a chunk that would run ahead.
struct Pacer {
    started: Instant,
    bytes_per_second: Option<u64>,
}

impl Pacer {
    async fn wait(&self, bytes_so_far: u64) {
        let Some(rate) = self.bytes_per_second.filter(|r| *r > 0) else {
            return;
        };
        let due = Duration::from_secs_f64(bytes_so_far as f64 / rate as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
}

/// What the reading task hands to the writer.
enum Delivery {
    Chunk(Vec<u8>),
    End(StreamDigest),
    Failed(LibvirtError),
}

/// Reads the whole download, hashing as it goes, sending chunks to `deliver` and taking
/// emptied buffers back from `recycled`. Stops when the writer hangs up.
async fn pump_download(
    reader: VolumeStream,
    settings: CopySettings,
    deliver: Sender<Delivery>,
    mut recycled: Receiver<Vec<u8>>,
) {
    let pacer = Pacer {
        started: Instant::now(),
        bytes_per_second: settings.bandwidth_bytes_per_second,
    };
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    loop {
        pacer.wait(bytes).await;
        let buffer = recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(settings.chunk_bytes));
        match reader.read_chunk(buffer, hasher).await {
            Ok((chunk, fed)) if chunk.is_empty() => {
                let digest = StreamDigest {
                    bytes,
                    sha256: hex(&fed.finalize()),
                };
                let delivery = match reader.finish().await {
                    Ok(()) => Delivery::End(digest),
                    Err(error) => Delivery::Failed(error),
                };
                let _ = deliver.send(delivery).await;
                return;
            }
            Ok((chunk, fed)) => {
                hasher = fed;
                bytes += chunk.len() as u64;
                if deliver.send(Delivery::Chunk(chunk)).await.is_err() {
                    reader.abort().await;
                    return;
                }
            }
            Err(error) => {
                reader.abort().await;
                let _ = deliver.send(Delivery::Failed(error)).await;
                return;
            }
        }
    }
}

/// Starts reading `volume` in a task of its own, so that reading and writing overlap.
async fn spawn_download(
    connection: &HostConnection,
    volume: &VolumeRef,
    settings: CopySettings,
) -> Result<(Receiver<Delivery>, Sender<Vec<u8>>), LibvirtError> {
    let reader = VolumeStream::open(
        connection,
        volume,
        Direction::Download,
        settings.call_timeout,
    )
    .await?;
    let (deliver_tx, deliver_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (recycle_tx, recycle_rx) = mpsc::channel(CHUNKS_IN_FLIGHT + 2);
    tokio::spawn(pump_download(reader, settings, deliver_tx, recycle_rx));
    Ok((deliver_rx, recycle_tx))
}

/// Told the bytes done so far after every chunk; `Break` stops the stream with its reason.
pub type ProgressHook<'a> = &'a mut (dyn FnMut(u64) -> ControlFlow<String> + Send);

/// Copies the source volume into the (existing) destination volume. `on_progress` hears the
/// bytes written so far after every chunk and may stop the copy. Returns the length and sha256
/// of what the source streamed.
pub async fn copy_volume(
    source: &HostConnection,
    from: &VolumeRef,
    destination: &HostConnection,
    to: &VolumeRef,
    settings: CopySettings,
    on_progress: ProgressHook<'_>,
) -> Result<StreamDigest, CopyError> {
    let writer =
        VolumeStream::open(destination, to, Direction::Upload, settings.call_timeout).await?;
    let (mut chunks, recycle) = match spawn_download(source, from, settings).await {
        Ok(pair) => pair,
        Err(error) => {
            writer.abort().await;
            return Err(error.into());
        }
    };
    let mut bytes_done: u64 = 0;
    // On every way out but the end, the writer tells the destination to drop the upload, and
    // `chunks`, dropped on return, makes the reader abort its side.
    let failure = loop {
        let delivery = chunks.recv().await.unwrap_or_else(|| {
            Delivery::Failed(LibvirtError::Call {
                context: format!("download of {from}"),
                message: "the reading task ended without a result".into(),
            })
        });
        match delivery {
            Delivery::Chunk(chunk) => {
                let length = chunk.len() as u64;
                match writer.write_chunk(chunk).await {
                    Ok(buffer) => {
                        let _ = recycle.try_send(buffer);
                    }
                    Err(error) => break error.into(),
                }
                bytes_done += length;
                if let ControlFlow::Break(reason) = on_progress(bytes_done) {
                    break CopyError::Stopped { bytes_done, reason };
                }
            }
            Delivery::End(digest) => {
                writer.finish().await?;
                return Ok(digest);
            }
            Delivery::Failed(error) => break error.into(),
        }
    };
    writer.abort().await;
    Err(failure)
}

/// Streams `volume` back from its host and hashes it: the check that what landed there is what
/// was sent. `on_progress` hears the bytes read so far and may stop it.
pub async fn volume_digest(
    connection: &HostConnection,
    volume: &VolumeRef,
    settings: CopySettings,
    on_progress: ProgressHook<'_>,
) -> Result<StreamDigest, CopyError> {
    let (mut chunks, recycle) = spawn_download(connection, volume, settings).await?;
    let mut bytes_done: u64 = 0;
    loop {
        match chunks.recv().await {
            Some(Delivery::Chunk(chunk)) => {
                bytes_done += chunk.len() as u64;
                let _ = recycle.try_send(chunk);
                if let ControlFlow::Break(reason) = on_progress(bytes_done) {
                    return Err(CopyError::Stopped { bytes_done, reason });
                }
            }
            Some(Delivery::End(digest)) => return Ok(digest),
            Some(Delivery::Failed(error)) => return Err(error.into()),
            None => {
                return Err(LibvirtError::Call {
                    context: format!("download of {volume}"),
                    message: "the reading task ended without a result".into(),
                }
                .into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_xml_gives_format_sizes_and_backing() {
        let xml = "<volume type='file'><name>g1-data.qcow2</name>\
            <key>/var/lib/libvirt/images/g1-data.qcow2</key>\
            <capacity unit='bytes'>67108864</capacity>\
            <allocation unit='bytes'>8650752</allocation>\
            <physical unit='bytes'>8585216</physical>\
            <target><path>/var/lib/libvirt/images/g1-data.qcow2</path><format type='qcow2'/></target>\
            <backingStore><path>/srv/base/debian.qcow2</path><format type='qcow2'/></backingStore>\
            </volume>";
        assert_eq!(
            volume_facts_from_xml("local", xml),
            Some(VolumeFacts {
                pool: "local".into(),
                name: "g1-data.qcow2".into(),
                path: "/var/lib/libvirt/images/g1-data.qcow2".into(),
                format: "qcow2".into(),
                capacity_bytes: 64 << 20,
                physical_bytes: 8_585_216,
                backing_path: Some("/srv/base/debian.qcow2".into()),
            })
        );
        let raw = "<volume><name>r.img</name><capacity unit='KiB'>1024</capacity>\
            <target><path>/p/r.img</path></target></volume>";
        let facts = volume_facts_from_xml("p", raw).unwrap();
        assert_eq!(
            (
                facts.format.as_str(),
                facts.capacity_bytes,
                facts.physical_bytes
            ),
            ("raw", 1 << 20, 1 << 20)
        );
        assert_eq!(facts.backing_path, None);
        assert_eq!(volume_facts_from_xml("p", "<volume/>"), None);
    }

    #[test]
    fn pool_xml_gives_its_directory() {
        let xml = "<pool type='dir'><name>local</name><target>\
                   <path>/var/lib/libvirt/images</path></target></pool>";
        assert_eq!(
            pool_target_path(xml).as_deref(),
            Some("/var/lib/libvirt/images")
        );
        assert_eq!(pool_target_path("<pool/>"), None);
    }

    #[test]
    fn new_volume_xml_is_escaped_and_unallocated() {
        let xml = NewVolume {
            name: "a&b.qcow2".into(),
            format: "qcow2".into(),
            capacity_bytes: 1 << 30,
        }
        .xml();
        let document = roxmltree::Document::parse(&xml).unwrap();
        let text = |tag: &str| {
            document
                .descendants()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .unwrap()
                .to_string()
        };
        assert_eq!(text("name"), "a&b.qcow2");
        assert_eq!(text("capacity"), "1073741824");
        assert_eq!(text("allocation"), "0");
    }

    #[tokio::test]
    async fn pacer_holds_a_copy_to_its_cap() {
        let pacer = Pacer {
            started: Instant::now(),
            bytes_per_second: Some(10 << 20),
        };
        pacer.wait(1 << 20).await;
        let elapsed = pacer.started.elapsed();
        assert!(elapsed >= Duration::from_millis(95), "{elapsed:?}");
        let unlimited = Pacer {
            started: Instant::now(),
            bytes_per_second: None,
        };
        unlimited.wait(u64::MAX).await;
        assert!(unlimited.started.elapsed() < Duration::from_millis(50));
    }
}
