//! The one module of ferry that holds `unsafe` libvirt FFI: every call the `virt` crate lacks
//! or gets wrong is wrapped here, and nowhere else.
//!
//! Job statistics and job control: the `virt` crate's `Domain::job_stats` builds a `Vec` from
//! the null pointer libvirt returns when a domain has no job (a process abort in debug builds,
//! undefined behaviour in release) and frees libvirt's memory with Rust's allocator; see
//! LAB-NOTES "The virt crate". So `virDomainGetJobStats` is wrapped here by hand: typed-parameter
//! getters, then `virTypedParamsFree`. The crate also lacks `virDomainAbortJob`,
//! `virDomainMigrateStartPostCopy` and `virDomainMigrateGetMaxDowntime`, wrapped here too.
//!
//! Prechecks: the crate has neither `virConnectCompareHypervisorCPU` (only the older
//! `virConnectCompareCPU`, which compares with the host's physical CPU rather than with what
//! the hypervisor can give a guest) nor `virNodeGetMemoryStats`; both are wrapped at the end.
//!
//! These calls block; run them through `HostConnection::call` (a worker thread with a timeout).

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, CStr, CString};
use std::ptr;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use super::LibvirtError;
use crate::model::job::{JobOperation, JobSample, JobType};

/// Typed parameters looked up by name. The libvirt-backed implementation is [`OwnedParams`];
/// tests use a map, so the mapping to [`JobSample`] is checked without a hypervisor.
pub trait JobParams {
    fn ullong(&self, name: &CStr) -> Option<u64>;
    fn int(&self, name: &CStr) -> Option<i32>;
    fn string(&self, name: &CStr) -> Option<String>;
}

/// Builds a sample from libvirt's job type and parameters. `sampled_at_ms` is left 0 for the
/// caller to set. `completed_stats` says the parameters came from `VIR_DOMAIN_JOB_STATS_COMPLETED`,
/// where `downtime` is the real pause rather than QEMU's estimate.
pub fn sample_from_params(
    job_type_raw: i32,
    params: &impl JobParams,
    completed_stats: bool,
) -> JobSample {
    let job_type = JobType::from_libvirt(job_type_raw);
    let downtime_ms = params.ullong(sys::VIR_DOMAIN_JOB_DOWNTIME);
    let downtime_is_real = completed_stats || job_type == Some(JobType::Completed);
    JobSample {
        sampled_at_ms: 0,
        job_type,
        operation: params
            .int(sys::VIR_DOMAIN_JOB_OPERATION)
            .map(JobOperation::from_libvirt),
        time_elapsed_ms: params.ullong(sys::VIR_DOMAIN_JOB_TIME_ELAPSED),
        data_total_bytes: params.ullong(sys::VIR_DOMAIN_JOB_DATA_TOTAL),
        data_processed_bytes: params.ullong(sys::VIR_DOMAIN_JOB_DATA_PROCESSED),
        data_remaining_bytes: params.ullong(sys::VIR_DOMAIN_JOB_DATA_REMAINING),
        memory_total_bytes: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_TOTAL),
        memory_processed_bytes: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_PROCESSED),
        memory_remaining_bytes: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_REMAINING),
        memory_bps: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_BPS),
        memory_dirty_rate_pages_per_second: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE),
        memory_page_size_bytes: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE),
        memory_iteration: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_ITERATION),
        memory_postcopy_requests: params.ullong(sys::VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS),
        expected_downtime_ms: if downtime_is_real { None } else { downtime_ms },
        real_downtime_ms: if downtime_is_real { downtime_ms } else { None },
        disk_total_bytes: params.ullong(sys::VIR_DOMAIN_JOB_DISK_TOTAL),
        disk_processed_bytes: params.ullong(sys::VIR_DOMAIN_JOB_DISK_PROCESSED),
        disk_remaining_bytes: params.ullong(sys::VIR_DOMAIN_JOB_DISK_REMAINING),
        disk_bps: params.ullong(sys::VIR_DOMAIN_JOB_DISK_BPS),
        auto_converge_throttle_percent: params
            .int(sys::VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE)
            .and_then(|percent| u32::try_from(percent).ok()),
        error_message: params.string(sys::VIR_DOMAIN_JOB_ERRMSG),
    }
}

/// A typed-parameter array allocated by libvirt, freed with `virTypedParamsFree` on drop.
pub struct OwnedParams {
    params: sys::virTypedParameterPtr,
    count: c_int,
}

impl OwnedParams {
    /// # Safety
    /// `params` must be null or an array of `count` typed parameters allocated by libvirt and
    /// owned by nobody else; this value frees it.
    unsafe fn from_raw(params: sys::virTypedParameterPtr, count: c_int) -> OwnedParams {
        OwnedParams {
            params,
            count: if params.is_null() { 0 } else { count.max(0) },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_null() || self.count == 0
    }
}

impl Drop for OwnedParams {
    fn drop(&mut self) {
        if !self.params.is_null() {
            // SAFETY: `params`/`count` came from libvirt (see `from_raw`) and are freed once,
            // here, by libvirt's own allocator.
            unsafe { sys::virTypedParamsFree(self.params, self.count) };
            self.params = ptr::null_mut();
        }
    }
}

impl JobParams for OwnedParams {
    fn ullong(&self, name: &CStr) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        let mut value: c_ulonglong = 0;
        // SAFETY: `params` is a live libvirt array of `count` entries; `name` is NUL-terminated;
        // `value` is a valid out-pointer. Returns 1 found, 0 absent, -1 wrong type.
        let found = unsafe {
            sys::virTypedParamsGetULLong(self.params, self.count, name.as_ptr(), &mut value)
        };
        (found == 1).then_some(value)
    }

    fn int(&self, name: &CStr) -> Option<i32> {
        if self.is_empty() {
            return None;
        }
        let mut value: c_int = 0;
        // SAFETY: as in `ullong`.
        let found = unsafe {
            sys::virTypedParamsGetInt(self.params, self.count, name.as_ptr(), &mut value)
        };
        (found == 1).then_some(value)
    }

    fn string(&self, name: &CStr) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut value: *const c_char = ptr::null();
        // SAFETY: as in `ullong`; the string returned points into `params` and is copied out
        // before `self` (and so the array) can be dropped.
        let found = unsafe {
            sys::virTypedParamsGetString(self.params, self.count, name.as_ptr(), &mut value)
        };
        if found != 1 || value.is_null() {
            return None;
        }
        // SAFETY: libvirt stores NUL-terminated strings; `value` is non-null and lives as long
        // as `self.params`.
        Some(
            unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

fn domain_label(domain: &Domain) -> String {
    domain.name().unwrap_or_else(|_| "domain".to_string())
}

/// libvirt's last error on this thread, with context. Read it before any other libvirt call
/// (even `virDomainGetName`) replaces it.
fn last_error(domain: &Domain, what: &str) -> LibvirtError {
    let error = virt::error::Error::last_error();
    LibvirtError::call(format!("{}: {what}", domain_label(domain)), error)
}

/// One poll of `virDomainGetJobStats`. `Ok(None)` when the domain has no job (libvirt returns
/// type NONE, often with no parameter array at all). With `completed`, asks for the statistics
/// of the job that just ended (`VIR_DOMAIN_JOB_STATS_COMPLETED`): on the destination after a
/// successful migration they carry the real downtime.
pub fn job_stats(domain: &Domain, completed: bool) -> Result<Option<JobSample>, LibvirtError> {
    let mut job_type: c_int = sys::VIR_DOMAIN_JOB_NONE as c_int;
    let mut params: sys::virTypedParameterPtr = ptr::null_mut();
    let mut count: c_int = 0;
    let flags: c_uint = if completed {
        sys::VIR_DOMAIN_JOB_STATS_COMPLETED
    } else {
        0
    };
    // SAFETY: `domain` holds a live virDomainPtr for the duration of the call; the out-pointers
    // are valid locals. On success libvirt hands us ownership of `params` (possibly null).
    let rc = unsafe {
        sys::virDomainGetJobStats(
            domain.as_ptr(),
            &mut job_type,
            &mut params,
            &mut count,
            flags,
        )
    };
    if rc < 0 {
        return Err(last_error(domain, "reading job statistics"));
    }
    // SAFETY: on success `params`/`count` are libvirt's allocation, now owned by `owned`.
    let owned = unsafe { OwnedParams::from_raw(params, count) };
    if job_type == sys::VIR_DOMAIN_JOB_NONE as c_int {
        return Ok(None);
    }
    Ok(Some(sample_from_params(job_type, &owned, completed)))
}

/// `virDomainAbortJob`: stops the migration; the guest keeps running on the source.
pub fn abort_job(domain: &Domain) -> Result<(), LibvirtError> {
    // SAFETY: `domain` holds a live virDomainPtr.
    let rc = unsafe { sys::virDomainAbortJob(domain.as_ptr()) };
    if rc < 0 {
        return Err(last_error(domain, "aborting the migration job"));
    }
    Ok(())
}

/// `virDomainMigrateStartPostCopy`: the guest moves to the destination now and pulls the rest
/// of its memory from the source. Only valid if the migration began with `VIR_MIGRATE_POSTCOPY`.
pub fn start_post_copy(domain: &Domain) -> Result<(), LibvirtError> {
    // SAFETY: `domain` holds a live virDomainPtr; flags must be 0.
    let rc = unsafe { sys::virDomainMigrateStartPostCopy(domain.as_ptr(), 0) };
    if rc < 0 {
        return Err(last_error(domain, "switching the migration to post-copy"));
    }
    Ok(())
}

// libvirt-qemu's one call ferry needs; the virt crate does not bind libvirt-qemu.
#[link(name = "virt-qemu")]
extern "C" {
    fn virDomainQemuMonitorCommand(
        domain: sys::virDomainPtr,
        cmd: *const c_char,
        result: *mut *mut c_char,
        flags: c_uint,
    ) -> c_int;
}

/// `virDomainQemuMonitorCommand` with a QMP command (JSON): QEMU's answer, as JSON text.
/// libvirt marks the domain "tainted: custom-monitor" afterwards; ferry uses it only where no
/// libvirt API does the job safely (resuming a broken post-copy, see live.rs).
pub fn qemu_monitor_command(domain: &Domain, command_json: &str) -> Result<String, LibvirtError> {
    let command = CString::new(command_json).map_err(|_| LibvirtError::Call {
        context: domain_label(domain),
        message: "a QMP command with a NUL byte".into(),
    })?;
    let mut reply: *mut c_char = ptr::null_mut();
    // SAFETY: `domain` holds a live virDomainPtr; `command` is a valid C string for the call;
    // `reply` is a valid out-pointer. On success libvirt hands us a malloc'd string.
    let rc =
        unsafe { virDomainQemuMonitorCommand(domain.as_ptr(), command.as_ptr(), &mut reply, 0) };
    if rc < 0 {
        return Err(last_error(domain, "sending a QEMU monitor command"));
    }
    if reply.is_null() {
        return Ok(String::new());
    }
    // SAFETY: `reply` is a NUL-terminated string libvirt allocated with malloc; it is copied
    // and freed exactly once.
    let text = unsafe { CStr::from_ptr(reply) }
        .to_string_lossy()
        .into_owned();
    unsafe { libc::free(reply.cast()) };
    Ok(text)
}

/// `virDomainMigrateGetMaxDowntime` (libvirt ≥ 3.7): the max downtime now in force, ms.
pub fn max_downtime_ms(domain: &Domain) -> Result<u64, LibvirtError> {
    let mut downtime_ms: c_ulonglong = 0;
    // SAFETY: `domain` holds a live virDomainPtr; `downtime_ms` is a valid out-pointer.
    let rc = unsafe { sys::virDomainMigrateGetMaxDowntime(domain.as_ptr(), &mut downtime_ms, 0) };
    if rc < 0 {
        return Err(last_error(domain, "reading the max migration downtime"));
    }
    Ok(downtime_ms)
}

/// `virDomainMigrateSetMaxDowntime`, through the `virt` crate's safe wrapper.
pub fn set_max_downtime_ms(domain: &Domain, downtime_ms: u64) -> Result<(), LibvirtError> {
    domain
        .migrate_set_max_downtime(downtime_ms, 0)
        .map_err(|e| {
            LibvirtError::call(
                format!(
                    "{}: setting max migration downtime to {downtime_ms} ms",
                    domain_label(domain)
                ),
                e,
            )
        })
}

/// `virDomainMigrateSetMaxSpeed` in MiB/s (libvirt's unit), for the pre-copy phase or, with
/// `post_copy`, for the post-copy phase (`VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`).
pub fn set_max_speed_mib_per_second(
    domain: &Domain,
    mib_per_second: u64,
    post_copy: bool,
) -> Result<(), LibvirtError> {
    let flags = if post_copy {
        sys::VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
    } else {
        0
    };
    domain
        .migrate_set_max_speed(mib_per_second, flags)
        .map_err(|e| {
            LibvirtError::call(
                format!(
                    "{}: setting migration bandwidth to {mib_per_second} MiB/s",
                    domain_label(domain)
                ),
                e,
            )
        })
}

/// What `virConnectCompareHypervisorCPU` is asked: a CPU definition and the hypervisor that
/// would have to provide it. `None` lets the destination's libvirt pick its default (its
/// default emulator, the host's architecture, the default machine type, the best virt type).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HypervisorCpuQuery {
    pub emulator: Option<String>,
    pub arch: Option<String>,
    pub machine: Option<String>,
    /// `kvm` or `qemu` (TCG), the domain's `type`.
    pub virt_type: Option<String>,
    /// A guest `<cpu>` definition, or a host CPU from the capabilities XML.
    pub cpu_xml: String,
}

/// `virConnectCompareHypervisorCPU` (libvirt ≥ 4.4): can this host's hypervisor, for this
/// emulator, architecture, machine and virt type, provide the CPU described? Asked with
/// `VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE`, so an incompatible CPU comes back as an error
/// whose message names the missing features instead of a bare 0. Returns libvirt's result
/// (`VIR_CPU_COMPARE_IDENTICAL` or `VIR_CPU_COMPARE_SUPERSET`) or libvirt's error, code included.
pub fn compare_hypervisor_cpu(
    connect: &Connect,
    query: &HypervisorCpuQuery,
) -> Result<sys::virCPUCompareResult, virt::error::Error> {
    let optional = |value: &Option<String>| value.as_deref().map(CString::new).transpose();
    let emulator = optional(&query.emulator)?;
    let arch = optional(&query.arch)?;
    let machine = optional(&query.machine)?;
    let virt_type = optional(&query.virt_type)?;
    let cpu_xml = CString::new(query.cpu_xml.as_str())?;
    let as_ptr = |value: &Option<CString>| value.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: `connect` holds a live virConnectPtr for the duration of the call; every string is
    // NUL-terminated and outlives the call, or null where libvirt accepts null (all but the XML).
    let result = unsafe {
        sys::virConnectCompareHypervisorCPU(
            connect.as_ptr(),
            as_ptr(&emulator),
            as_ptr(&arch),
            as_ptr(&machine),
            as_ptr(&virt_type),
            cpu_xml.as_ptr(),
            sys::VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE,
        )
    };
    if result == sys::VIR_CPU_COMPARE_ERROR {
        return Err(virt::error::Error::last_error());
    }
    Ok(result)
}

/// Host-wide memory figures from `virNodeGetMemoryStats` for all NUMA cells: the kernel's
/// `/proc/meminfo` MemTotal, MemFree, Buffers and Cached. A field the host does not report
/// stays `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMemoryStats {
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
}

/// Reads one `virNodeMemoryStats` array (libvirt reports KiB) into [`NodeMemoryStats`].
fn node_memory_stats_from(entries: &[sys::virNodeMemoryStats]) -> NodeMemoryStats {
    let mut stats = NodeMemoryStats::default();
    for entry in entries {
        // The field is a fixed 80-byte buffer; read up to its NUL without trusting one to exist.
        let bytes: Vec<u8> = entry.field.iter().map(|c| *c as u8).collect();
        let Ok(field) = CStr::from_bytes_until_nul(&bytes) else {
            continue;
        };
        let bytes_value = Some(entry.value.saturating_mul(1024));
        if field == sys::VIR_NODE_MEMORY_STATS_TOTAL {
            stats.total_bytes = bytes_value;
        } else if field == sys::VIR_NODE_MEMORY_STATS_FREE {
            stats.free_bytes = bytes_value;
        } else if field == sys::VIR_NODE_MEMORY_STATS_BUFFERS {
            stats.buffers_bytes = bytes_value;
        } else if field == sys::VIR_NODE_MEMORY_STATS_CACHED {
            stats.cached_bytes = bytes_value;
        }
    }
    stats
}

fn connect_error(what: &str) -> LibvirtError {
    LibvirtError::call(what, virt::error::Error::last_error())
}

/// `virNodeGetMemoryStats` with `VIR_NODE_MEMORY_STATS_ALL_CELLS`: the whole host's memory,
/// whatever its NUMA layout.
pub fn node_memory_stats(connect: &Connect) -> Result<NodeMemoryStats, LibvirtError> {
    let mut count: c_int = 0;
    // SAFETY: `connect` holds a live virConnectPtr; with a null array and a zero count libvirt
    // only writes the number of parameters it has into `count`.
    let rc = unsafe {
        sys::virNodeGetMemoryStats(
            connect.as_ptr(),
            sys::VIR_NODE_MEMORY_STATS_ALL_CELLS,
            ptr::null_mut(),
            &mut count,
            0,
        )
    };
    if rc < 0 {
        return Err(connect_error("reading node memory statistics"));
    }
    let empty = sys::virNodeMemoryStats {
        field: [0; 80],
        value: 0,
    };
    let mut entries = vec![empty; count.max(0) as usize];
    if entries.is_empty() {
        return Ok(NodeMemoryStats::default());
    }
    // SAFETY: `entries` has room for `count` entries, which libvirt fills and never frees; it
    // writes back how many it filled.
    let rc = unsafe {
        sys::virNodeGetMemoryStats(
            connect.as_ptr(),
            sys::VIR_NODE_MEMORY_STATS_ALL_CELLS,
            entries.as_mut_ptr(),
            &mut count,
            0,
        )
    };
    if rc < 0 {
        return Err(connect_error("reading node memory statistics"));
    }
    entries.truncate(count.max(0) as usize);
    Ok(node_memory_stats_from(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::CString;

    #[derive(Default)]
    struct MapParams {
        ullongs: HashMap<&'static str, u64>,
        ints: HashMap<&'static str, i32>,
        strings: HashMap<&'static str, String>,
    }

    impl JobParams for MapParams {
        fn ullong(&self, name: &CStr) -> Option<u64> {
            self.ullongs.get(name.to_str().ok()?).copied()
        }
        fn int(&self, name: &CStr) -> Option<i32> {
            self.ints.get(name.to_str().ok()?).copied()
        }
        fn string(&self, name: &CStr) -> Option<String> {
            self.strings.get(name.to_str().ok()?).cloned()
        }
    }

    fn running_params() -> MapParams {
        let mut params = MapParams::default();
        for (name, value) in [
            ("time_elapsed", 12_345),
            ("data_total", 538_968_064),
            ("data_processed", 1_200_000_000),
            ("data_remaining", 410_000_000),
            ("memory_total", 538_968_064),
            ("memory_processed", 1_200_000_000),
            ("memory_remaining", 410_000_000),
            ("memory_bps", 104_857_600),
            ("memory_dirty_rate", 25_000),
            ("memory_page_size", 4096),
            ("memory_iteration", 4),
            ("downtime", 3900),
            ("disk_total", 0),
        ] {
            params.ullongs.insert(name, value);
        }
        params.ints.insert("operation", 5);
        params.ints.insert("auto_converge_throttle", 20);
        params
    }

    #[test]
    fn running_job_maps_every_reported_field() {
        let sample = sample_from_params(2, &running_params(), false);
        assert_eq!(sample.job_type, Some(JobType::Unbounded));
        assert_eq!(sample.operation, Some(JobOperation::MigrationOut));
        assert_eq!(sample.time_elapsed_ms, Some(12_345));
        assert_eq!(sample.memory_remaining_bytes, Some(410_000_000));
        assert_eq!(sample.memory_dirty_rate_pages_per_second, Some(25_000));
        assert_eq!(sample.memory_iteration, Some(4));
        assert_eq!(sample.expected_downtime_ms, Some(3900));
        assert_eq!(sample.real_downtime_ms, None);
        assert_eq!(sample.auto_converge_throttle_percent, Some(20));
        assert_eq!(sample.disk_total_bytes, Some(0));
        // Not reported by this (older) libvirt: stays None rather than 0.
        assert_eq!(sample.memory_postcopy_requests, None);
        assert_eq!(sample.disk_bps, None);
    }

    #[test]
    fn completed_stats_carry_real_downtime_and_error() {
        let mut params = MapParams::default();
        params.ullongs.insert("downtime", 219);
        let sample = sample_from_params(3, &params, true);
        assert_eq!(sample.job_type, Some(JobType::Completed));
        assert_eq!(sample.real_downtime_ms, Some(219));
        assert_eq!(sample.expected_downtime_ms, None);

        params.strings.insert(
            "errmsg",
            "operation aborted: migration out job: canceled by client".into(),
        );
        let failed = sample_from_params(4, &params, true);
        assert_eq!(failed.job_type, Some(JobType::Failed));
        assert!(failed.error_message.unwrap().contains("canceled by client"));
    }

    #[test]
    fn negative_throttle_is_dropped() {
        let mut params = MapParams::default();
        params.ints.insert("auto_converge_throttle", -1);
        assert_eq!(
            sample_from_params(2, &params, false).auto_converge_throttle_percent,
            None
        );
    }

    /// Exercises the real typed-parameter reader and `virTypedParamsFree` on an array built by
    /// libvirt's own `virTypedParamsAdd*` (no hypervisor needed).
    #[test]
    fn reads_a_libvirt_allocated_parameter_array() {
        let mut params: sys::virTypedParameterPtr = ptr::null_mut();
        let mut count: c_int = 0;
        let mut capacity: c_int = 0;
        let errmsg = CString::new("no route to host hv2").unwrap();
        // Without a connection nobody has initialised libvirt's thread-local error state, and the
        // wrong-type lookup below reports an error through it.
        // SAFETY: plain library initialisation, idempotent and thread-safe.
        assert_eq!(unsafe { sys::virInitialize() }, 0);
        virt::error::clear_error_callback();
        // SAFETY: out-pointers are valid locals; names and the string are NUL-terminated.
        unsafe {
            assert_eq!(
                sys::virTypedParamsAddULLong(
                    &mut params,
                    &mut count,
                    &mut capacity,
                    sys::VIR_DOMAIN_JOB_MEMORY_REMAINING.as_ptr(),
                    410 * 1024 * 1024,
                ),
                0
            );
            assert_eq!(
                sys::virTypedParamsAddInt(
                    &mut params,
                    &mut count,
                    &mut capacity,
                    sys::VIR_DOMAIN_JOB_OPERATION.as_ptr(),
                    5,
                ),
                0
            );
            assert_eq!(
                sys::virTypedParamsAddString(
                    &mut params,
                    &mut count,
                    &mut capacity,
                    sys::VIR_DOMAIN_JOB_ERRMSG.as_ptr(),
                    errmsg.as_ptr(),
                ),
                0
            );
        }
        // SAFETY: libvirt allocated `params` with `count` entries; `owned` frees it.
        let owned = unsafe { OwnedParams::from_raw(params, count) };
        let sample = sample_from_params(2, &owned, false);
        assert_eq!(sample.memory_remaining_bytes, Some(410 * 1024 * 1024));
        assert_eq!(sample.operation, Some(JobOperation::MigrationOut));
        assert_eq!(
            sample.error_message.as_deref(),
            Some("no route to host hv2")
        );
        // Wrong type asked for: absent, not garbage.
        assert_eq!(owned.int(sys::VIR_DOMAIN_JOB_MEMORY_REMAINING), None);
        assert_eq!(owned.ullong(sys::VIR_DOMAIN_JOB_DISK_BPS), None);
    }

    #[test]
    fn node_memory_stats_read_kib_fields_by_name() {
        let entry = |name: &str, kib: u64| {
            let mut field = [0 as c_char; 80];
            for (slot, byte) in field.iter_mut().zip(name.bytes()) {
                *slot = byte as c_char;
            }
            sys::virNodeMemoryStats { field, value: kib }
        };
        let stats = node_memory_stats_from(&[
            entry("total", 24_684_096),
            entry("free", 13_034_240),
            entry("buffers", 26_488),
            entry("cached", 10_571_644),
            entry("unheard-of", 7),
        ]);
        assert_eq!(stats.total_bytes, Some(24_684_096 * 1024));
        assert_eq!(stats.free_bytes, Some(13_034_240 * 1024));
        assert_eq!(stats.buffers_bytes, Some(26_488 * 1024));
        assert_eq!(stats.cached_bytes, Some(10_571_644 * 1024));
        // A field with no NUL in its 80 bytes is skipped, not read past its end.
        let unterminated = sys::virNodeMemoryStats {
            field: [b'x' as c_char; 80],
            value: 1,
        };
        assert_eq!(
            node_memory_stats_from(&[unterminated]),
            NodeMemoryStats::default()
        );
    }

    #[test]
    fn null_parameter_array_reads_as_empty() {
        // SAFETY: a null array owns nothing.
        let owned = unsafe { OwnedParams::from_raw(ptr::null_mut(), 7) };
        assert!(owned.is_empty());
        assert_eq!(owned.ullong(sys::VIR_DOMAIN_JOB_MEMORY_TOTAL), None);
        assert_eq!(
            sample_from_params(0, &owned, false).job_type,
            Some(JobType::None)
        );
    }
}
