//! The limits of `[cgroup]`, one variant each. Everything about a limit is in its arms here:
//! its manifest key and the range of its value, its controller, the rlimit that stands in for
//! it, the files that set it on cgroup v1 and v2, the runtime-spec field it becomes and how it
//! is printed. A new limit is a new variant (and its field in `manifest::Cgroup`); the
//! compiler asks for each of its arms.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxPids, LinuxResources};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{CgroupVersion, Controller};
use crate::manifest::values::{Rlimit, Size};
use crate::manifest::{Cgroup, Span, Spanned};

/// The CFS period the CPU quota is expressed in (the kernel's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Below this the sandbox could not even start its init.
const MIN_MEMORY: u64 = 1 << 20;

/// A limit of `[cgroup]`. Its value, in the kernel units each variant names, is kept beside it
/// in [`CgroupLimits`]; the variants' order is the order limits are checked, written, printed
/// and exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CgroupLimit {
    /// Bytes.
    Memory,
    /// Bytes of swap on top of `memory`.
    MemorySwap,
    /// CPU time per [`CPU_PERIOD_US`], in microseconds.
    Cpus,
    /// 1..=10000 (cgroup v2 cpu.weight).
    CpuWeight,
    /// Tasks.
    Pids,
    /// 1..=10000 (cgroup v2 io.weight).
    IoWeight,
}

/// A limit as `[cgroup]` asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub span: Span,
    /// In kernel units; `None` when the manifest's value has none (a weight the kernel
    /// refuses, a number of cores that is not one).
    pub value: Option<u64>,
    /// What is wrong with the value, and how to fix it. A value the kernel takes but no
    /// sandbox runs with (0 tasks) keeps its `value`, so the host is asked about it too.
    pub out_of_range: Option<(String, &'static str)>,
}

impl Asked {
    fn new(span: Span, value: Option<u64>) -> Asked {
        Asked {
            span,
            value,
            out_of_range: None,
        }
    }

    fn wrong_if(mut self, wrong: bool, message: impl Into<String>, help: &'static str) -> Asked {
        if wrong {
            self.out_of_range = Some((message.into(), help));
        }
        self
    }
}

/// The writes that set a limit, or why this kernel cannot apply it although the controller is
/// there.
type Files = Result<Vec<(&'static str, String)>, &'static str>;

impl CgroupLimit {
    pub const ALL: [CgroupLimit; 6] = [
        CgroupLimit::Memory,
        CgroupLimit::MemorySwap,
        CgroupLimit::Cpus,
        CgroupLimit::CpuWeight,
        CgroupLimit::Pids,
        CgroupLimit::IoWeight,
    ];

    /// The setting's name: `cgroup.` and the manifest key.
    pub fn setting(self) -> &'static str {
        match self {
            CgroupLimit::Memory => "cgroup.memory",
            CgroupLimit::MemorySwap => "cgroup.memory_swap",
            CgroupLimit::Cpus => "cgroup.cpus",
            CgroupLimit::CpuWeight => "cgroup.cpu_weight",
            CgroupLimit::Pids => "cgroup.pids",
            CgroupLimit::IoWeight => "cgroup.io_weight",
        }
    }

    /// The key in `[cgroup]`.
    pub fn key(self) -> &'static str {
        &self.setting()["cgroup.".len()..]
    }

    /// The field of `plan --json` that holds the value.
    fn plan_field(self) -> &'static str {
        match self {
            CgroupLimit::Cpus => "cpu_quota_us",
            other => other.key(),
        }
    }

    pub fn controller(self) -> Controller {
        match self {
            CgroupLimit::Memory | CgroupLimit::MemorySwap => Controller::Memory,
            CgroupLimit::Cpus | CgroupLimit::CpuWeight => Controller::Cpu,
            CgroupLimit::Pids => Controller::Pids,
            CgroupLimit::IoWeight => Controller::Io,
        }
    }

    /// What `[cgroup]` asks for, in kernel units; `None` when it does not set the key.
    pub fn asked(self, cgroup: &Cgroup) -> Option<Asked> {
        let weight = |weight: &Spanned<u32>| {
            let ok = (1..=10_000).contains(&weight.value);
            Asked::new(weight.span, ok.then_some(weight.value.into())).wrong_if(
                !ok,
                format!("`{}` is out of range", self.key()),
                "use a weight from 1 to 10000 (100 is the default)",
            )
        };
        match self {
            CgroupLimit::Memory => cgroup.memory.as_ref().map(|memory| {
                Asked::new(memory.span, Some(memory.value.0)).wrong_if(
                    memory.value.0 < MIN_MEMORY,
                    "`memory` is below 1M",
                    "a sandbox needs at least \"1M\"; sizes without a suffix are bytes",
                )
            }),
            CgroupLimit::MemorySwap => cgroup
                .memory_swap
                .as_ref()
                .map(|swap| Asked::new(swap.span, Some(swap.value.0))),
            CgroupLimit::Cpus => cgroup.cpus.as_ref().map(|cpus| {
                let quota = cpus.value * CPU_PERIOD_US as f64;
                let ok = cpus.value.is_finite() && quota >= 1000.0 && cpus.value <= 4096.0;
                Asked::new(cpus.span, ok.then(|| quota.round() as u64)).wrong_if(
                    !ok,
                    "`cpus` is out of range",
                    "use a number of cores from 0.01 to 4096, e.g. 1.5",
                )
            }),
            CgroupLimit::CpuWeight => cgroup.cpu_weight.as_ref().map(weight),
            CgroupLimit::Pids => cgroup.pids.as_ref().map(|pids| {
                Asked::new(pids.span, Some(pids.value.into())).wrong_if(
                    pids.value == 0,
                    "`pids` is 0",
                    "allow at least 1 task (the sandbox's init counts)",
                )
            }),
            CgroupLimit::IoWeight => cgroup.io_weight.as_ref().map(weight),
        }
    }

    /// The rlimit that approximates the limit where its controller cannot be used (with the
    /// same value), and what it really limits.
    pub fn rlimit(self) -> Option<(Rlimit, &'static str)> {
        match self {
            CgroupLimit::Memory => Some((
                Rlimit::Data,
                "the heap and private mappings of each process, not the sandbox's total",
            )),
            CgroupLimit::Pids => Some((
                Rlimit::Nproc,
                "which counts every process of your user on this host, not only the sandbox's",
            )),
            CgroupLimit::MemorySwap
            | CgroupLimit::Cpus
            | CgroupLimit::CpuWeight
            | CgroupLimit::IoWeight => None,
        }
    }

    /// The value as `plan` and `export` print it.
    pub fn value_text(self, value: u64) -> String {
        match self {
            CgroupLimit::Memory | CgroupLimit::MemorySwap => Size(value).to_string(),
            CgroupLimit::Cpus => format!("{value}/{CPU_PERIOD_US} us"),
            CgroupLimit::CpuWeight | CgroupLimit::Pids | CgroupLimit::IoWeight => value.to_string(),
        }
    }

    /// The limit as `plan` lists it.
    pub fn text(self, value: u64) -> String {
        let name = match self {
            CgroupLimit::Memory => "memory",
            CgroupLimit::MemorySwap => "swap",
            CgroupLimit::Cpus => "cpu",
            CgroupLimit::CpuWeight => "cpu weight",
            CgroupLimit::Pids => "pids",
            CgroupLimit::IoWeight => "io weight",
        };
        format!("{name} {}", self.value_text(value))
    }

    /// The interface files that set the limit on `version`, with their values, in the order
    /// the kernel accepts them; `has(file)` says whether the group has a file of this limit's
    /// controller.
    fn files(
        self,
        value: u64,
        limits: &CgroupLimits,
        version: CgroupVersion,
        has: &dyn Fn(&str) -> bool,
    ) -> Files {
        use CgroupVersion::{V1, V2};
        let one = |file, value: u64| Ok(vec![(file, value.to_string())]);
        match (self, version) {
            (CgroupLimit::Memory, V1) => one("memory.limit_in_bytes", value),
            (CgroupLimit::Memory, V2) => one("memory.max", value),
            (CgroupLimit::MemorySwap, V1) => {
                // memsw counts memory plus swap, and may never be below the memory limit:
                // written after it, over the fresh group's unlimited value.
                let Some(memory) = limits.get(CgroupLimit::Memory) else {
                    return Ok(Vec::new());
                };
                if !has("memory.memsw.limit_in_bytes") {
                    return Err(
                        "this kernel does not account swap (memory.memsw.limit_in_bytes is missing): boot it with swapaccount=1, or remove memory_swap",
                    );
                }
                one("memory.memsw.limit_in_bytes", memory.saturating_add(value))
            }
            (CgroupLimit::MemorySwap, V2) => {
                if !has("memory.swap.max") {
                    return Err(
                        "this kernel does not account swap (memory.swap.max is missing): boot it with swapaccount=1, or remove memory_swap",
                    );
                }
                one("memory.swap.max", value)
            }
            (CgroupLimit::Cpus, V1) => Ok(vec![
                ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                ("cpu.cfs_quota_us", value.to_string()),
            ]),
            (CgroupLimit::Cpus, V2) => Ok(vec![("cpu.max", format!("{value} {CPU_PERIOD_US}"))]),
            (CgroupLimit::CpuWeight, V1) => one("cpu.shares", cpu_shares(value)),
            (CgroupLimit::CpuWeight, V2) => one("cpu.weight", value),
            (CgroupLimit::Pids, _) => one("pids.max", value),
            (CgroupLimit::IoWeight, V1) => {
                // BFQ's weight, or CFQ's before Linux 5.0 removed it; same 10..1000 scale.
                let file = ["blkio.bfq.weight", "blkio.weight"]
                    .into_iter()
                    .find(|file| has(file))
                    .ok_or("no I/O scheduler of this kernel offers a weight (blkio.bfq.weight is missing): load BFQ (`modprobe bfq`), or remove io_weight")?;
                one(file, blkio_weight(value))
            }
            (CgroupLimit::IoWeight, V2) => {
                // io.weight is io.cost's (same scale as the manifest), io.bfq.weight BFQ's
                // (v1's scale); the device's scheduler decides which counts, so both are set
                // when there.
                let mut files = Vec::new();
                if has("io.weight") {
                    files.push(("io.weight", format!("default {value}")));
                }
                if has("io.bfq.weight") {
                    files.push(("io.bfq.weight", format!("default {}", blkio_weight(value))));
                }
                if files.is_empty() {
                    return Err(
                        "no I/O controller of this kernel offers a weight (io.weight and io.bfq.weight are missing): build with io.cost or load BFQ, or remove io_weight",
                    );
                }
                Ok(files)
            }
        }
    }

    /// Set the limit in runtime-spec `resources`: the field it became and a note on it, or
    /// `None` when it has no field of its own there (swap without a memory limit).
    pub fn oci(
        self,
        value: u64,
        limits: &CgroupLimits,
        resources: &mut LinuxResources,
    ) -> Option<(&'static str, &'static str)> {
        match self {
            CgroupLimit::Memory => {
                let memory = resources.memory_mut().get_or_insert_default();
                memory.set_limit(Some(value as i64));
                Some(("linux.resources.memory.limit", ""))
            }
            CgroupLimit::MemorySwap => {
                let limit = limits.get(CgroupLimit::Memory)?;
                let memory = resources.memory_mut().get_or_insert_default();
                memory.set_swap(Some(limit.saturating_add(value) as i64));
                Some((
                    "linux.resources.memory.swap",
                    "memory plus swap, as the runtime-spec counts it",
                ))
            }
            CgroupLimit::Cpus => {
                let cpu = resources.cpu_mut().get_or_insert_default();
                cpu.set_quota(Some(value as i64));
                cpu.set_period(Some(CPU_PERIOD_US));
                Some(("linux.resources.cpu.quota, .period", ""))
            }
            CgroupLimit::CpuWeight => {
                let cpu = resources.cpu_mut().get_or_insert_default();
                cpu.set_shares(Some(cpu_shares(value)));
                Some((
                    "linux.resources.cpu.shares",
                    "as v1 shares; runtimes on cgroup v2 convert them back to this weight",
                ))
            }
            CgroupLimit::Pids => {
                let mut pids = LinuxPids::default();
                pids.set_limit(value as i64);
                resources.set_pids(Some(pids));
                Some(("linux.resources.pids.limit", ""))
            }
            CgroupLimit::IoWeight => {
                let io = resources.block_io_mut().get_or_insert_default();
                io.set_weight(Some(blkio_weight(value) as u16));
                Some((
                    "linux.resources.blockIO.weight",
                    "on blkio's 10..1000 scale; runtimes on cgroup v2 convert it back",
                ))
            }
        }
    }
}

/// The limits of a sandbox's group, each with its value in kernel units, in the order of
/// [`CgroupLimit::ALL`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupLimits(BTreeMap<CgroupLimit, u64>);

/// A write that sets a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitWrite {
    pub limit: CgroupLimit,
    /// The controller's name in the hierarchy's version, for finding the directory (v1).
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

/// A limit the host's kernel cannot apply although the controller is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub limit: CgroupLimit,
    pub why: &'static str,
}

impl CgroupLimits {
    pub fn get(&self, limit: CgroupLimit) -> Option<u64> {
        self.0.get(&limit).copied()
    }

    /// Leave `limit` out: nothing is written for it.
    pub fn remove(&mut self, limit: CgroupLimit) {
        self.0.remove(&limit);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (CgroupLimit, u64)> + '_ {
        self.0.iter().map(|(limit, value)| (*limit, *value))
    }

    /// The writes that set every limit on `version`, in the order the kernel accepts them;
    /// `has(controller, file)` says whether the group has an interface file.
    pub fn writes(
        &self,
        version: CgroupVersion,
        has: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<LimitWrite>, Unsupported> {
        let mut writes = Vec::new();
        for (limit, value) in self.iter() {
            let controller = limit.controller();
            let controller = controller.kernel_name(version).unwrap_or(controller.name());
            let files = limit
                .files(value, self, version, &|file| has(controller, file))
                .map_err(|why| Unsupported { limit, why })?;
            writes.extend(files.into_iter().map(|(file, value)| LimitWrite {
                limit,
                controller,
                file,
                value,
            }));
        }
        Ok(writes)
    }
}

impl FromIterator<(CgroupLimit, u64)> for CgroupLimits {
    fn from_iter<I: IntoIterator<Item = (CgroupLimit, u64)>>(limits: I) -> Self {
        CgroupLimits(limits.into_iter().collect())
    }
}

impl<const N: usize> From<[(CgroupLimit, u64); N]> for CgroupLimits {
    fn from(limits: [(CgroupLimit, u64); N]) -> Self {
        limits.into_iter().collect()
    }
}

/// As an object with every limit's field, `null` where not set, and the CPU period.
impl Serialize for CgroupLimits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for limit in CgroupLimit::ALL {
            map.serialize_entry(limit.plan_field(), &self.get(limit))?;
            if limit == CgroupLimit::Cpus {
                map.serialize_entry("cpu_period_us", &CPU_PERIOD_US)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CgroupLimits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = BTreeMap::<String, Option<u64>>::deserialize(deserializer)?;
        Ok(CgroupLimit::ALL
            .into_iter()
            .filter_map(|limit| Some((limit, (*fields.get(limit.plan_field())?)?)))
            .collect())
    }
}

/// cpu.weight (1..10000, default 100) as v1's cpu.shares (2..262144, default 1024): the
/// inverse of crun's shares-to-weight conversion, weight = 10^((l² + 125 l) / 612 - 7/34) with
/// l = log2(shares), which maps 2, 1024 and 262144 to 1, 100 and 10000, so the defaults
/// meet.
pub fn cpu_shares(weight: u64) -> u64 {
    let exponent = (weight.clamp(1, 10_000) as f64).log10() + 7.0 / 34.0;
    let l = (-125.0 + (125.0f64.powi(2) + 4.0 * 612.0 * exponent).sqrt()) / 2.0;
    (2f64.powf(l).round() as u64).clamp(2, 262_144)
}

/// io.weight (1..10000) on v1's blkio and BFQ's scale (10..1000): the inverse of runc's
/// linear blkio-to-io conversion, io = 1 + (blkio - 10) * 9999 / 990, rounded.
pub fn blkio_weight(io_weight: u64) -> u64 {
    let w = io_weight.clamp(1, 10_000);
    10 + ((w - 1) * 990 + 9999 / 2) / 9999
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every limit, with the values in `CgroupLimit::ALL`'s order.
    fn every_limit(values: [u64; 6]) -> CgroupLimits {
        CgroupLimit::ALL.into_iter().zip(values).collect()
    }

    fn writes(
        limits: &CgroupLimits,
        version: CgroupVersion,
        has: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<String> {
        limits
            .writes(version, has)
            .unwrap()
            .into_iter()
            .map(|w| format!("{}/{}={}", w.controller, w.file, w.value))
            .collect()
    }

    #[test]
    fn every_limit_in_v1_files() {
        assert_eq!(
            writes(
                &every_limit([64 << 20, 16 << 20, 25_000, 100, 32, 7475]),
                CgroupVersion::V1,
                &|_, _| true
            ),
            [
                "memory/memory.limit_in_bytes=67108864",
                "memory/memory.memsw.limit_in_bytes=83886080",
                "cpu/cpu.cfs_period_us=100000",
                "cpu/cpu.cfs_quota_us=25000",
                "cpu/cpu.shares=1024",
                "pids/pids.max=32",
                "blkio/blkio.bfq.weight=750",
            ]
        );
        let cfq_only = |_: &str, file: &str| file != "blkio.bfq.weight";
        let io = CgroupLimits::from([(CgroupLimit::IoWeight, 1)]);
        assert_eq!(
            writes(&io, CgroupVersion::V1, &cfq_only),
            ["blkio/blkio.weight=10"]
        );
        // memsw is memory plus swap: without a memory limit there is nothing to add it to.
        let swap = CgroupLimits::from([(CgroupLimit::MemorySwap, 0)]);
        assert!(writes(&swap, CgroupVersion::V1, &|_, _| true).is_empty());
    }

    #[test]
    fn every_limit_in_v2_files() {
        let limits = every_limit([512 << 20, 0, 150_000, 250, 256, 10_000]);
        assert_eq!(
            writes(&limits, CgroupVersion::V2, &|_, _| true),
            [
                "memory/memory.max=536870912",
                "memory/memory.swap.max=0",
                "cpu/cpu.max=150000 100000",
                "cpu/cpu.weight=250",
                "pids/pids.max=256",
                "io/io.weight=default 10000",
                "io/io.bfq.weight=default 1000",
            ]
        );
    }

    #[test]
    fn limits_the_kernel_cannot_apply() {
        let nothing = |_: &str, _: &str| false;
        for version in [CgroupVersion::V1, CgroupVersion::V2] {
            let swap =
                CgroupLimits::from([(CgroupLimit::Memory, 1 << 30), (CgroupLimit::MemorySwap, 0)]);
            let err = swap.writes(version, &nothing).unwrap_err();
            assert_eq!(err.limit, CgroupLimit::MemorySwap);
            assert!(err.why.contains("swapaccount=1"), "{}", err.why);
            let io = CgroupLimits::from([(CgroupLimit::IoWeight, 100)]);
            let err = io.writes(version, &nothing).unwrap_err();
            assert_eq!(err.limit, CgroupLimit::IoWeight);
        }
    }

    #[test]
    fn each_limit_is_a_key_of_its_own_in_cgroup() {
        for limit in CgroupLimit::ALL {
            assert_eq!(format!("cgroup.{}", limit.key()), limit.setting());
        }
    }

    #[test]
    fn json_has_every_field_and_the_period_and_reads_back() {
        let limits =
            CgroupLimits::from([(CgroupLimit::Memory, 1 << 30), (CgroupLimit::Cpus, 50_000)]);
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(
            json,
            r#"{"memory":1073741824,"memory_swap":null,"cpu_quota_us":50000,"cpu_period_us":100000,"cpu_weight":null,"pids":null,"io_weight":null}"#
        );
        assert_eq!(serde_json::from_str::<CgroupLimits>(&json).unwrap(), limits);
    }

    #[test]
    fn oci_fields_in_runtime_spec_units() {
        let limits = every_limit([64 << 20, 16 << 20, 25_000, 100, 32, 7475]);
        let mut resources = LinuxResources::default();
        let fields: Vec<&str> = limits
            .iter()
            .filter_map(|(limit, value)| limit.oci(value, &limits, &mut resources))
            .map(|(field, _)| field)
            .collect();
        assert_eq!(fields.len(), CgroupLimit::ALL.len());
        let memory = resources.memory().unwrap();
        assert_eq!(memory.limit(), Some(64 << 20));
        assert_eq!(memory.swap(), Some(80 << 20), "memory plus swap");
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(25_000), Some(100_000)));
        assert_eq!(cpu.shares(), Some(1024));
        assert_eq!(resources.pids().unwrap().limit(), 32);
        assert_eq!(resources.block_io().as_ref().unwrap().weight(), Some(750));
        // Swap alone has no field: the runtime-spec counts it on top of a memory limit.
        let swap = CgroupLimits::from([(CgroupLimit::MemorySwap, 1)]);
        let mut resources = LinuxResources::default();
        assert_eq!(CgroupLimit::MemorySwap.oci(1, &swap, &mut resources), None);
        assert!(resources.memory().is_none());
    }

    #[test]
    fn cpu_weight_to_shares_meets_the_defaults() {
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(100), 1024);
        assert_eq!(cpu_shares(10_000), 262_144);
        // crun's forward conversion gives the weight back.
        let crun = |shares: u64| {
            let l = (shares as f64).log2();
            10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0).ceil() as u64
        };
        for weight in [1u64, 2, 50, 100, 200, 500, 1000, 5000, 9999] {
            let back = crun(cpu_shares(weight));
            assert!(
                back.abs_diff(weight) <= 1 + weight / 500,
                "{weight} -> {back}"
            );
        }
        assert!((1..10_000).all(|w| cpu_shares(w) <= cpu_shares(w + 1)));
    }

    #[test]
    fn io_weight_to_blkio_scale() {
        assert_eq!(blkio_weight(1), 10);
        assert_eq!(blkio_weight(10_000), 1000);
        // runc's example: blkio 750 is io.weight 7475.
        assert_eq!(blkio_weight(7475), 750);
        assert_eq!(blkio_weight(100), 20);
    }
}
