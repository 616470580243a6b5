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
    KeyUsagePurpose, SanType, SerialNumber,
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
    let issuer = match stored_issuer(existing)? {
        Some(issuer) => issuer,
        None => {
            let key = KeyPair::generate().map_err(pki_error)?;
            let cert = ca_params().self_signed(&key).map_err(pki_error)?;
            out.push(("ca.crt".to_string(), cert.pem()));
            out.push(("ca.key".to_string(), key.serialize_pem()));
            Issuer::new(ca_params(), key)
        }
    };
    for (entry, params) in leaves(members)? {
        if have(&format!("{entry}.crt")) && have(&format!("{entry}.key")) {
            continue;
        }
        let key = KeyPair::generate().map_err(pki_error)?;
        let cert = params.signed_by(&key, &issuer).map_err(pki_error)?;
        out.push((format!("{entry}.crt"), cert.pem()));
        out.push((format!("{entry}.key"), key.serialize_pem()));
    }
    Ok(out)
}

/// Every leaf certificate of `members` and the API servers' client certificate issued
/// again from the CA in `existing`, valid for a year from now with the same names and
/// uses: the entries that replace the old ones (`e1/server.crt`, …). The CA is not
/// touched.
///
/// Each keeps the key it had (as `kubeadm certs renew` does), so a certificate and
/// its key on a host match at every moment of the rewrite, and a run cut between the
/// two files, or before a member was restarted, leaves a pair that works. A member
/// without a key yet gets a new one.
pub fn renewed_entries(
    existing: &BTreeMap<String, String>,
    members: &[EtcdMember],
) -> Result<Vec<(String, String)>, Error> {
    let issuer = stored_issuer(existing)?.ok_or(Error::Pki(
        "there is no etcd CA (`etcd-pki/ca.crt` and `etcd-pki/ca.key`) to issue them from".into(),
    ))?;
    let mut out = Vec::new();
    for (entry, params) in leaves(members)? {
        let (key, new) = match existing.get(&format!("{PREFIX}{entry}.key")) {
            Some(pem) => (KeyPair::from_pem(pem).map_err(pki_error)?, false),
            None => (KeyPair::generate().map_err(pki_error)?, true),
        };
        let cert = params.signed_by(&key, &issuer).map_err(pki_error)?;
        out.push((format!("{entry}.crt"), cert.pem()));
        if new {
            out.push((format!("{entry}.key"), key.serialize_pem()));
        }
    }
    Ok(out)
}

/// The CA kept in `existing` as an issuer: rebuilt from the same parameters and key,
/// so its name and key identifier are what the stored CA certificate says. `None`
/// when there is none yet; an error when the certificate is there without its key
/// (a new CA would not be trusted by the members already running).
fn stored_issuer(
    existing: &BTreeMap<String, String>,
) -> Result<Option<Issuer<'static, KeyPair>>, Error> {
    match (
        existing.get(&format!("{PREFIX}ca.crt")),
        existing.get(&format!("{PREFIX}ca.key")),
    ) {
        (Some(_), Some(key)) => {
            let key = KeyPair::from_pem(key).map_err(pki_error)?;
            Ok(Some(Issuer::new(ca_params(), key)))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::Pki("`etcd-pki/ca.key` is missing".into())),
        (None, Some(_)) => Err(Error::Pki("`etcd-pki/ca.crt` is missing".into())),
    }
}

/// The leaf certificates of `members` and the API servers' client certificate, by
/// entry name (without `.crt`), each with what it is issued with.
fn leaves(members: &[EtcdMember]) -> Result<Vec<(String, CertificateParams)>, Error> {
    let mut out = Vec::new();
    for m in members {
        let sans = member_sans(m);
        out.push((format!("{}/server", m.name), leaf(&m.name, &sans, true)?));
        out.push((format!("{}/peer", m.name), leaf(&m.name, &sans, true)?));
        out.push((
            format!("{}/healthcheck-client", m.name),
            leaf("kube-etcd-healthcheck-client", &[], false)?,
        ));
    }
    out.push((
        "apiserver-etcd-client".to_string(),
        leaf("kube-apiserver-etcd-client", &[], false)?,
    ));
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
/// Its serial number is random: rcgen would derive it from the key, and a renewed
/// certificate keeps its key, while an issuer's serials must differ (RFC 5280).
fn leaf(cn: &str, sans: &[SanType], server: bool) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    p.serial_number = Some(random_serial()?);
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
    Ok(p)
}

/// 16 random bytes, the first bit clear so that the number is positive.
fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Random(std::io::Error::other(e.to_string())))?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
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

    /// Entries as `secrets.json` keeps them (with [`PREFIX`]).
    fn stored(entries: Vec<(String, String)>) -> BTreeMap<String, String> {
        entries
            .into_iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v))
            .collect()
    }

    /// `openssl ARGS` in `dir`; its standard output.
    fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn renewed_leaves_come_from_the_same_ca_with_the_same_names_keys_and_a_later_end() {
        let first = stored(missing_entries(&BTreeMap::new(), &members()).unwrap());
        // Whole seconds apart, so that the later notAfter shows in openssl's dates.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let renewed = renewed_entries(&first, &members()).unwrap();
        let names: Vec<&str> = renewed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "e1/server.crt",
                "e1/peer.crt",
                "e1/healthcheck-client.crt",
                "e2/server.crt",
                "e2/peer.crt",
                "e2/healthcheck-client.crt",
                "apiserver-etcd-client.crt"
            ],
            "the CA and the keys are kept"
        );
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).unwrap();
        put("ca.crt", &first[&format!("{PREFIX}ca.crt")]);
        for (entry, new) in &renewed {
            let old = &first[&format!("{PREFIX}{entry}")];
            put("old.crt", old);
            put("new.crt", new);
            put(
                "key",
                &first[&format!("{PREFIX}{}", entry.replace(".crt", ".key"))],
            );
            let verified = openssl(dir.path(), &["verify", "-CAfile", "ca.crt", "new.crt"]);
            assert_eq!(verified, "new.crt: OK\n", "{entry}");
            let show =
                |f: &str, what: &str| openssl(dir.path(), &["x509", "-noout", what, "-in", f]);
            let names = |f: &str| {
                openssl(
                    dir.path(),
                    &[
                        "x509",
                        "-noout",
                        "-subject",
                        "-ext",
                        "subjectAltName,extendedKeyUsage",
                        "-in",
                        f,
                    ],
                )
            };
            assert_eq!(names("new.crt"), names("old.crt"), "{entry}");
            assert_ne!(
                show("new.crt", "-serial"),
                show("old.crt", "-serial"),
                "{entry}"
            );
            let end = |f: &str| {
                let d = show(f, "-enddate");
                let d = d.trim().trim_start_matches("notAfter=");
                time::PrimitiveDateTime::parse(
                    d.trim_end_matches(" GMT"),
                    time::macros::format_description!(
                        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
                    ),
                )
                .unwrap()
            };
            assert!(end("new.crt") > end("old.crt"), "{entry}");
            // The kept key is the key of the new certificate.
            assert_eq!(
                show("new.crt", "-pubkey"),
                openssl(dir.path(), &["pkey", "-pubout", "-in", "key"]),
                "{entry}"
            );
        }
        let mut after = first.clone();
        for (entry, pem) in renewed {
            after.insert(format!("{PREFIX}{entry}"), pem);
        }
        assert_eq!(
            after[&format!("{PREFIX}ca.crt")],
            first[&format!("{PREFIX}ca.crt")]
        );
        assert_eq!(
            after[&format!("{PREFIX}ca.key")],
            first[&format!("{PREFIX}ca.key")]
        );
    }

    #[test]
    fn without_the_ca_key_nothing_is_issued_and_no_new_ca_is_made() {
        let mut first = stored(missing_entries(&BTreeMap::new(), &members()).unwrap());
        first.remove(&format!("{PREFIX}ca.key"));
        let e = renewed_entries(&first, &members()).unwrap_err().to_string();
        assert!(e.contains("`etcd-pki/ca.key` is missing"), "{e}");
        // An install would otherwise make a new CA the running members do not trust.
        first.remove(&format!("{PREFIX}e2/peer.crt"));
        let e = missing_entries(&first, &members()).unwrap_err().to_string();
        assert!(e.contains("`etcd-pki/ca.key` is missing"), "{e}");
    }
}
