//! Whether an address is one the collector may scrape: on a network directly attached to this host
//! (a Docker bridge: `docker0`, `br-…`, `docker_gwbridge`) and not behind the host's uplink, so a
//! label can never send scrape traffic off the host (a Swarm task's overlay address, for one, would
//! leave by the default route). Read from the kernel's routing tables of the collector's network
//! namespace, `/proc/self/net/route` and `/proc/self/net/ipv6_route`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A directly connected route: network, prefix length, interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    net: IpAddr,
    prefix: u8,
    iface: String,
}

/// The host's directly connected networks, less those of the interfaces that carry a default
/// route (the uplink).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNetworks {
    routes: Vec<Route>,
}

impl LocalNetworks {
    /// From the text of `/proc/net/route` and `/proc/net/ipv6_route` (either may be empty).
    pub fn parse(v4: &str, v6: &str) -> LocalNetworks {
        let mut uplinks = HashSet::new();
        let mut routes = Vec::new();
        for line in v4.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(iface), Some(dest), Some(gw), Some(mask)) =
                (f.first(), f.get(1), f.get(2), f.get(7))
            else {
                continue;
            };
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            let (Some(dest), Some(gw), Some(mask)) = (hex(dest), hex(gw), hex(mask)) else {
                continue;
            };
            if mask == 0 {
                uplinks.insert(iface.to_string());
            } else if gw == 0 {
                routes.push(Route {
                    // The kernel prints the address's bytes (network order) as a native integer.
                    net: IpAddr::V4(Ipv4Addr::from(dest.to_ne_bytes())),
                    prefix: mask.count_ones() as u8,
                    iface: iface.to_string(),
                });
            }
        }
        for line in v6.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(dest), Some(prefix), Some(next), Some(iface)) =
                (f.first(), f.get(1), f.get(4), f.get(9))
            else {
                continue;
            };
            let (Ok(dest), Ok(prefix), Ok(next)) = (
                u128::from_str_radix(dest, 16),
                u8::from_str_radix(prefix, 16),
                u128::from_str_radix(next, 16),
            ) else {
                continue;
            };
            if prefix == 0 {
                uplinks.insert(iface.to_string());
            } else if next == 0 && *iface != "lo" && prefix <= 128 {
                routes.push(Route {
                    net: IpAddr::V6(Ipv6Addr::from(dest)),
                    prefix,
                    iface: iface.to_string(),
                });
            }
        }
        routes.retain(|r| !uplinks.contains(&r.iface));
        LocalNetworks { routes }
    }

    /// Reads the collector's own routing tables.
    pub fn read() -> LocalNetworks {
        let v4 = std::fs::read_to_string("/proc/self/net/route").unwrap_or_default();
        let v6 = std::fs::read_to_string("/proc/self/net/ipv6_route").unwrap_or_default();
        LocalNetworks::parse(&v4, &v6)
    }

    /// Loopback, or on a directly attached network other than the uplink's.
    pub fn allows(&self, ip: IpAddr) -> bool {
        ip.is_loopback()
            || self.routes.iter().any(|r| match (r.net, ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(r.prefix)).unwrap_or(0);
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(r.prefix))
                        .unwrap_or(0);
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            })
    }
}
