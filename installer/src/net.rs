//! IP networks in CIDR notation, enough to check that a cluster's networks do not
//! collide (IPv4 and IPv6).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network such as `10.244.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u32::from(a) as u128, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(prefix: u8, width: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            let all = if width == 128 {
                u128::MAX
            } else {
                (1u128 << width) - 1
            };
            all & !((1u128 << (width - prefix)) - 1)
        }
    }

    /// True when `ip` is inside this network (false across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (net, width) = Self::bits(self.addr);
        let (ip, _) = Self::bits(ip);
        ip & Self::mask(self.prefix, width) == net
    }

    /// True when the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError("expected ADDRESS/PREFIX such as `10.244.0.0/16`".into()))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError(format!("`{addr}` is not an IP address")))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| CidrError(format!("`{prefix}` is not a prefix length")))?;
        let (bits, width) = Self::bits(addr);
        if prefix > width {
            return Err(CidrError(format!(
                "prefix length {prefix} is longer than {width}"
            )));
        }
        if bits & !Self::mask(prefix, width) != 0 {
            return Err(CidrError(
                "host bits are set; use the network address".into(),
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn contains_and_overlaps() {
        assert!(c("10.244.0.0/16").contains("10.244.3.4".parse().unwrap()));
        assert!(!c("10.244.0.0/16").contains("10.245.0.1".parse().unwrap()));
        assert!(c("10.96.0.0/12").overlaps(&c("10.100.0.0/16")));
        assert!(!c("10.96.0.0/12").overlaps(&c("10.244.0.0/16")));
        assert!(c("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(c("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(!c("fd00::/8").contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.1/24",
            "x/8",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
