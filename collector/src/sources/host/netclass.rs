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
    /// The other numeric attributes node_exporter reads, in [`ATTRIBUTES`]' order.
    attributes: Vec<FamilyId>,
    /// `flags` as a number.
    flags: FamilyId,
    nohandler: FamilyId,
}

/// Numeric attributes of `/sys/class/net/<device>/`, with node_exporter's family names; `true` for the
/// ones that change while the device lives (kept open and re-read every pass), `false` for the ones
/// read once when the device appears.
pub const ATTRIBUTES: [(&str, &str, bool); 14] = [
    (
        "addr_assign_type",
        "node_network_address_assign_type",
        false,
    ),
    ("carrier", "node_network_carrier", true),
    (
        "carrier_changes",
        "node_network_carrier_changes_total",
        true,
    ),
    (
        "carrier_down_count",
        "node_network_carrier_down_changes_total",
        true,
    ),
    (
        "carrier_up_count",
        "node_network_carrier_up_changes_total",
        true,
    ),
    ("dev_id", "node_network_device_id", false),
    ("dormant", "node_network_dormant", true),
    ("ifindex", "node_network_iface_id", false),
    ("iflink", "node_network_iface_link", false),
    ("link_mode", "node_network_iface_link_mode", false),
    ("name_assign_type", "node_network_name_assign_type", false),
    ("netdev_group", "node_network_net_dev_group", false),
    ("type", "node_network_protocol_type", false),
    ("tx_queue_len", "node_network_transmit_queue_length", true),
];

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
            attributes: ATTRIBUTES
                .iter()
                .map(|(file, name, _)| {
                    let kind = if name.ends_with("_total") {
                        Kind::Counter
                    } else {
                        Kind::Gauge
                    };
                    ingest.family(FamilyDesc::int(
                        name,
                        &format!("Network device property: {file}"),
                        kind,
                        Scale::One,
                    ))
                })
                .collect::<Result<_, _>>()?,
            flags: f("node_network_flags", "Network device property: flags")?,
            nohandler: ingest.family(FamilyDesc::int(
                "node_network_receive_nohandler_total",
                "Network device statistic receive_nohandler.",
                Kind::Counter,
                Scale::One,
            ))?,
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
    /// [`ATTRIBUTES`] that change, kept open (None where absent), by index.
    changing: Vec<(usize, Option<KeptFile>)>,
    /// [`ATTRIBUTES`] read once, by index.
    fixed: Vec<(usize, i64)>,
    nohandler: Option<KeptFile>,
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
            changing: ATTRIBUTES
                .iter()
                .enumerate()
                .filter(|(_, a)| a.2)
                .map(|(i, (file, _, _))| (i, keep(file)))
                .collect(),
            fixed: ATTRIBUTES
                .iter()
                .enumerate()
                .filter(|(_, a)| !a.2)
                .filter_map(|(i, (file, _, _))| {
                    let v = std::fs::read(dir.join(file)).ok()?;
                    Some((i, number(&v)?))
                })
                .collect(),
            nohandler: keep("statistics/rx_nohandler"),
            seen: 0,
        }
    }
}

/// A numeric sysfs attribute: decimal, or hex with `0x` (flags); None when unreadable or empty
/// (`carrier` of a down device fails to read, and node_exporter leaves it out).
pub fn number(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    match s.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
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
            if let Some(v) = number(buf.content()) {
                w.put(fams.flags, &labels, v);
            }
            adminstate(buf.content())
        } else {
            "unknown"
        };
        for (i, f) in &d.changing {
            if read(f, buf) {
                if let Some(v) = number(buf.content()) {
                    w.put(fams.attributes[*i], &labels, v);
                }
            }
        }
        for (i, v) in &d.fixed {
            w.put(fams.attributes[*i], &labels, *v);
        }
        if read(&d.nohandler, buf) {
            if let Some(v) = number(buf.content()) {
                w.put(fams.nohandler, &labels, v);
            }
        }
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
