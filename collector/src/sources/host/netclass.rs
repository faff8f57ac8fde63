//! node_exporter's `netclass` collector (the part dashboards use): `node_network_up`,
//! `node_network_mtu_bytes`, `node_network_speed_bytes` and `node_network_info` from
//! `/sys/class/net/<device>/`.
//!
//! The devices are those of `/proc/net/dev`, which the host pass reads anyway. The files that change
//! (operstate, mtu, speed, duplex, flags) are kept open per device and re-read in place; the address,
//! broadcast address and alias are read once when the device appears.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::sources::procfile::{parse_u64, KeptFile, ReadBuf};
use crate::store::{FamilyDesc, FamilyId, Ingest, IngestError, Kind, Scale, Writer};

#[derive(Debug)]
pub struct Families {
    up: FamilyId,
    mtu: FamilyId,
    speed: FamilyId,
    info: FamilyId,
}

impl Families {
    pub fn register(ingest: &Ingest) -> Result<Self, IngestError> {
        let f = |n: &str, h: &str| ingest.family(FamilyDesc::int(n, h, Kind::Gauge, Scale::One));
        Ok(Self {
            up: f(
                "node_network_up",
                "Value is 1 if operstate is 'up', 0 otherwise.",
            )?,
            mtu: f(
                "node_network_mtu_bytes",
                "Network device property: mtu_bytes",
            )?,
            speed: f(
                "node_network_speed_bytes",
                "Network device property: speed_bytes",
            )?,
            info: f(
                "node_network_info",
                "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            )?,
        })
    }
}

/// The sysfs files of one device.
#[derive(Debug)]
struct Device {
    operstate: Option<KeptFile>,
    mtu: Option<KeptFile>,
    speed: Option<KeptFile>,
    duplex: Option<KeptFile>,
    flags: Option<KeptFile>,
    address: String,
    broadcast: String,
    ifalias: String,
    /// Pass number of the last time /proc/net/dev listed it.
    seen: u64,
}

impl Device {
    fn open(dir: &Path) -> Self {
        let keep = |f: &str| KeptFile::open(dir.join(f)).ok();
        let once = |f: &str| {
            std::fs::read(dir.join(f))
                .map(|b| text(&b).to_string())
                .unwrap_or_default()
        };
        Self {
            operstate: keep("operstate"),
            mtu: keep("mtu"),
            speed: keep("speed"),
            duplex: keep("duplex"),
            flags: keep("flags"),
            address: once("address"),
            broadcast: once("broadcast"),
            ifalias: once("ifalias"),
            seen: 0,
        }
    }
}

/// A sysfs attribute's text without its newline ("" when it is not UTF-8).
pub fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("").trim_end_matches('\n')
}

/// Link speed in Mbit/s as node_exporter's `speed_bytes` (bytes per second); None for an unknown
/// speed (-1, or the EINVAL a down link gives), which node_exporter 2.x leaves out as
/// `--collector.netclass.ignore-invalid-speed` does today.
pub fn speed_bytes(s: &[u8]) -> Option<i64> {
    let (mbit, _) = parse_u64(s.trim_ascii())?;
    i64::try_from(mbit).ok()?.checked_mul(1_000_000 / 8)
}

/// `flags` ("0x1003") as node_exporter's `adminstate`: "up" when IFF_UP is set.
pub fn adminstate(s: &[u8]) -> &'static str {
    let s = s.trim_ascii();
    let hex = s.strip_prefix(b"0x").unwrap_or(s);
    match std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    {
        Some(f) if f & 1 == 1 => "up",
        Some(_) => "down",
        None => "unknown",
    }
}

#[derive(Debug)]
pub struct NetClass {
    root: PathBuf,
    devices: HashMap<String, Device>,
    pass: u64,
    buf: ReadBuf,
    state: String,
    duplex: String,
}

impl NetClass {
    /// Devices under `sys_root`/class/net.
    pub fn new(sys_root: &Path) -> Self {
        Self {
            root: sys_root.join("class/net"),
            devices: HashMap::new(),
            pass: 0,
            buf: ReadBuf::with_capacity(256),
            state: String::new(),
            duplex: String::new(),
        }
    }

    #[cfg(test)]
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Starts a pass.
    pub fn begin(&mut self) {
        self.pass += 1;
    }

    /// Writes the series of `device` (listed by /proc/net/dev in this pass).
    pub fn write(&mut self, fams: &Families, w: &mut Writer<'_, '_>, device: &str) {
        let Self {
            root,
            devices,
            pass,
            buf,
            state,
            duplex,
        } = self;
        if !devices.contains_key(device) {
            if device.contains('/') || device.starts_with('.') {
                return;
            }
            devices.insert(device.to_string(), Device::open(&root.join(device)));
        }
        let d = devices.get_mut(device).expect("inserted above");
        d.seen = *pass;
        let read = |f: &Option<KeptFile>, buf: &mut ReadBuf| -> bool {
            f.as_ref().is_some_and(|f| f.read(buf).is_ok())
        };
        // No operstate: not in this sysfs (another network namespace); nothing to say about it.
        if !read(&d.operstate, buf) {
            return;
        }
        state.clear();
        state.push_str(text(buf.content()));
        let labels = [("device", device)];
        w.put(fams.up, &labels, i64::from(state == "up"));
        if read(&d.mtu, buf) {
            if let Some((v, _)) = parse_u64(buf.content()) {
                w.put(fams.mtu, &labels, v as i64);
            }
        }
        if read(&d.speed, buf) {
            if let Some(v) = speed_bytes(buf.content()) {
                w.put(fams.speed, &labels, v);
            }
        }
        duplex.clear();
        if read(&d.duplex, buf) {
            duplex.push_str(text(buf.content()));
        }
        let admin = if read(&d.flags, buf) {
            adminstate(buf.content())
        } else {
            "unknown"
        };
        w.put(
            fams.info,
            &[
                ("address", &d.address),
                ("adminstate", admin),
                ("broadcast", &d.broadcast),
                ("device", device),
                ("duplex", duplex),
                ("ifalias", &d.ifalias),
                ("operstate", state),
            ],
            1,
        );
    }

    /// Ends a pass: devices /proc/net/dev no longer lists are forgotten (their files closed).
    pub fn end(&mut self) {
        let pass = self.pass;
        self.devices.retain(|_, d| d.seen == pass);
    }
}
