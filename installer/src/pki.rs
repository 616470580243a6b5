//! The external etcd's certificates (`spec.etcd.external`), laid out as kubeadm lays
//! them out: an etcd CA, and for each member a server, a peer and a health-check
//! client certificate, plus the client certificate the API servers present.
//!
//! kubeadm's guide makes them on the first etcd host and copies them around with
//! `scp`. Here the deploy node makes them (with `rcgen`) and keeps them in the plan
//! folder's `secrets.json` (mode 0600) under `etcd-pki/…`; plans and host files carry
//! `<secret:etcd-pki/…>` placeholders that the executor fills in, like every other
//! secret. A re-run finds them there, so the files on the hosts do not change; a
//! member added later gets certificates from the same CA. The CA's key never leaves
//! the deploy node.
//!
//! ECDSA P-256 keys (kubeadm's `encryptionAlgorithm: ECDSA-P256`); the CA is valid for
//! 10 years and the others for one, kubeadm's defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::Error;

/// Prefix of the entries in `secrets.json` (and of their placeholders).
pub const PREFIX: &str = "etcd-pki/";

/// Where kubeadm keeps etcd's certificates on a host.
pub const ETCD_DIR: &str = "/etc/kubernetes/pki/etcd";
/// The API server's etcd client certificate (kubeadm's `apiserver-etcd-client`).
pub const APISERVER_CLIENT_CRT: &str = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
/// Its key.
pub const APISERVER_CLIENT_KEY: &str = "/etc/kubernetes/pki/apiserver-etcd-client.key";

/// One etcd member: its name (certificate CN) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// Host name.
    pub name: String,
    /// Address its peers and clients use.
    pub address: IpAddr,
}

/// The `<secret:…>` placeholder of a PKI entry (`ca.crt`, `m1/server.key`).
pub fn placeholder(entry: &str) -> String {
    format!("<secret:{PREFIX}{entry}>")
}

/// A member's certificate kinds, as file stems under [`ETCD_DIR`].
pub const MEMBER_CERTS: [&str; 3] = ["server", "peer", "healthcheck-client"];

/// The entries `members` need that `existing` lacks, made from the CA in `existing`
/// (a new CA when there is none). Entry names are relative to [`PREFIX`].
pub fn missing_entries(
    existing: &BTreeMap<String, String>,
    members: &[EtcdMember],
) -> Result<Vec<(String, String)>, Error> {
    let have = |e: &str| existing.contains_key(&format!("{PREFIX}{e}"));
    let mut out = Vec::new();
    let (ca_params, ca_key) = match (
        existing.get(&format!("{PREFIX}ca.crt")),
        existing.get(&format!("{PREFIX}ca.key")),
    ) {
        (Some(_), Some(key)) => (ca_params(), KeyPair::from_pem(key).map_err(pki_error)?),
        _ => {
            let key = KeyPair::generate().map_err(pki_error)?;
            let params = ca_params();
            let cert = params.self_signed(&key).map_err(pki_error)?;
            out.push(("ca.crt".to_string(), cert.pem()));
            out.push(("ca.key".to_string(), key.serialize_pem()));
            (params, key)
        }
    };
    // The issuer is rebuilt from the same parameters and key: its name and key
    // identifier are what the stored CA certificate says.
    let issuer = Issuer::new(ca_params, ca_key);
    let mut issue = |entry: &str, params: CertificateParams| -> Result<(), Error> {
        if have(&format!("{entry}.crt")) && have(&format!("{entry}.key")) {
            return Ok(());
        }
        let key = KeyPair::generate().map_err(pki_error)?;
        let cert = params.signed_by(&key, &issuer).map_err(pki_error)?;
        out.push((format!("{entry}.crt"), cert.pem()));
        out.push((format!("{entry}.key"), key.serialize_pem()));
        Ok(())
    };
    for m in members {
        let sans = member_sans(m);
        issue(&format!("{}/server", m.name), leaf(&m.name, &sans, true))?;
        issue(&format!("{}/peer", m.name), leaf(&m.name, &sans, true))?;
        issue(
            &format!("{}/healthcheck-client", m.name),
            leaf("kube-etcd-healthcheck-client", &[], false),
        )?;
    }
    issue(
        "apiserver-etcd-client",
        leaf("kube-apiserver-etcd-client", &[], false),
    )?;
    Ok(out)
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "etcd-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut p, 3650);
    p
}

/// A member's names: its host name, `localhost`, its address and the loopbacks (the
/// static pod listens on 127.0.0.1 too), as kubeadm's etcd-server and etcd-peer have.
fn member_sans(m: &EtcdMember) -> Vec<SanType> {
    let dns = |s: &str| SanType::DnsName(s.try_into().expect("checked host names are DNS names"));
    vec![
        dns(&m.name),
        dns("localhost"),
        SanType::IpAddress(m.address),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

/// A certificate for `cn`: server and client use for members, client only otherwise.
fn leaf(cn: &str, sans: &[SanType], server: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans.to_vec();
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = match server {
        true => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        false => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    p.use_authority_key_identifier_extension = true;
    validity(&mut p, 365);
    p
}

fn validity(p: &mut CertificateParams, days: i64) {
    // A little slack before now, for hosts whose clocks run behind the deploy node's.
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(days);
}

fn pki_error(e: rcgen::Error) -> Error {
    Error::Pki(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<EtcdMember> {
        ["e1", "e2"]
            .iter()
            .enumerate()
            .map(|(i, n)| EtcdMember {
                name: n.to_string(),
                address: format!("10.0.0.{}", i + 1).parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn entries_once_made_are_kept_and_new_members_share_the_ca() {
        let first: BTreeMap<String, String> = missing_entries(&BTreeMap::new(), &members())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v))
            .collect();
        // CA (2) + 2 members × 3 certificates × 2 files + the API server's pair.
        assert_eq!(first.len(), 2 + 12 + 2, "{:?}", first.keys());
        assert!(missing_entries(&first, &members()).unwrap().is_empty());
        let mut more = members();
        more.push(EtcdMember {
            name: "e3".into(),
            address: "10.0.0.3".parse().unwrap(),
        });
        let added = missing_entries(&first, &more).unwrap();
        let names: Vec<&str> = added.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "e3/server.crt",
                "e3/server.key",
                "e3/peer.crt",
                "e3/peer.key",
                "e3/healthcheck-client.crt",
                "e3/healthcheck-client.key"
            ]
        );
    }
}
