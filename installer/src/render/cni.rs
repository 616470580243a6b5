//! The CNI manifest, rewritten as text: every `image:` value goes through the image
//! mapping (the one `bundle push` uses), and the pod network is made the cluster's
//! (calico's `CALICO_IPV4POOL_CIDR`, which ships commented out, is uncommented and
//! set; flannel's `net-conf.json` `"Network"` is set). The inventory's CNI settings
//! ([`CniOptions`]), when given, change their lines too: calico's
//! `CALICO_IPV4POOL_IPIP` and `CALICO_IPV4POOL_VXLAN` values (the VXLAN entry is added
//! after the IPIP one when the manifest lacks it and VXLAN is wanted) and the
//! calico-config `veth_mtu`; flannel's `net-conf.json` `Backend.Type`. Every other
//! line, comments and formatting included, is left as it was.

use bundle_format::ImageReference;
use bundle_registry::mapping::ImageMapping;

use crate::inventory::CniOptions;
use crate::net::Cidr;

/// Path of the rewritten manifest on the first master.
pub const PATH: &str = "/etc/kubernetes/bundle/cni.yaml";

/// What the rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The new manifest.
    pub text: String,
    /// (line number, image as written, image as rewritten), in line order.
    pub images: Vec<(usize, String, String)>,
    /// Line numbers (1-based) of changed CIDR lines.
    pub cidr_lines: Vec<usize>,
    /// Line numbers (1-based, in the original) of lines changed for [`CniOptions`];
    /// an added entry counts as the line it follows.
    pub option_lines: Vec<usize>,
    /// Remarks for the plan's notes.
    pub notes: Vec<String>,
}

/// Why a manifest cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniProblem {
    /// An image the manifest names is not in the bundle.
    NotCarried {
        /// Line (1-based).
        line: usize,
        /// The image as written.
        image: String,
    },
    /// An `image:` value that is not an image reference.
    BadImage {
        /// Line (1-based).
        line: usize,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The pod network cannot be set.
    NoPodNetwork {
        /// What was looked for.
        what: String,
    },
    /// A setting of the inventory has no line to go in.
    NoSetting {
        /// What was looked for.
        what: String,
        /// The inventory field.
        field: String,
    },
}

impl std::fmt::Display for CniProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CniProblem::NotCarried { line, image } => {
                write!(f, "image `{image}` (line {line}) is not carried by the bundle; add it to the bundle's manifest and build again")
            }
            CniProblem::BadImage {
                line,
                value,
                reason,
            } => write!(
                f,
                "`{value}` on line {line} is not an image reference: {reason}"
            ),
            CniProblem::NoPodNetwork { what } => {
                write!(f, "found no {what} to set the pod network in")
            }
            CniProblem::NoSetting { what, field } => {
                write!(f, "found no {what} to set `{field}` in")
            }
        }
    }
}

/// An `image:` line split into (before the value, the value, after it).
fn split_image_line(line: &str) -> Option<(&str, &str, &str)> {
    let trimmed = line.trim_start();
    let rest = trimmed
        .strip_prefix("- ")
        .map(str::trim_start)
        .unwrap_or(trimmed);
    let after_key = rest.strip_prefix("image:")?;
    if !(after_key.is_empty() || after_key.starts_with([' ', '\t', '\r', '\n'])) {
        return None;
    }
    let value_part = after_key.trim_start_matches([' ', '\t']);
    let value_at = line.len() - value_part.len();
    let (start, end) = match value_part.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let close = value_part[1..].find(q)? + 1;
            (value_at + 1, value_at + close)
        }
        Some(c) if !c.is_whitespace() && c != '#' => {
            let len = value_part
                .find([' ', '\t', '\r', '\n'])
                .unwrap_or(value_part.len());
            (value_at, value_at + len)
        }
        _ => return None,
    };
    Some((&line[..start], &line[start..end], &line[end..]))
}

/// Does the manifest's `wanted` image match a carried one (same name; same tag and
/// digest where the manifest gives them)?
pub fn carried(wanted: &ImageReference, images: &[ImageReference]) -> bool {
    images.iter().any(|i| {
        i.name() == wanted.name()
            && (wanted.tag.is_none() || wanted.tag == i.tag)
            && (wanted.digest.is_none() || wanted.digest == i.digest)
    })
}

/// Every image the manifest names: (line, value as written).
pub fn images(manifest: &str) -> Vec<(usize, String)> {
    manifest
        .split_inclusive('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| split_image_line(l).map(|(_, v, _)| (i + 1, v.to_string())))
        .collect()
}

/// Rewrites `manifest` of CNI `cni` (`calico`, `flannel`), applying `options`.
pub fn rewrite(
    cni: &str,
    manifest: &str,
    mapping: &ImageMapping,
    pod_subnet: &Cidr,
    bundle_images: &[ImageReference],
    options: &CniOptions,
) -> Result<Rewritten, Vec<CniProblem>> {
    let mut problems = Vec::new();
    let mut out = String::with_capacity(manifest.len() + 1024);
    let mut imgs = Vec::new();
    let mut cidr_lines = Vec::new();
    let mut notes = Vec::new();
    let lines: Vec<&str> = manifest.split_inclusive('\n').collect();
    let mut i = 0;
    let mut network_set = false;
    let mut option_lines = Vec::new();
    let encapsulation = options.calico_encapsulation.filter(|_| cni == "calico");
    let mtu = options.calico_mtu.filter(|_| cni == "calico");
    let backend = options
        .flannel_backend
        .as_deref()
        .filter(|_| cni == "flannel");
    let has_vxlan = lines
        .iter()
        .any(|l| env_name(l) == Some("CALICO_IPV4POOL_VXLAN"));
    let (mut ipip_set, mut mtu_set, mut backend_set, mut in_backend) = (false, false, false, false);
    while i < lines.len() {
        let line = lines[i];
        let n = i + 1;
        if !line.trim_start().starts_with('#') {
            if let Some((before, value, after)) = split_image_line(line) {
                match value.parse::<ImageReference>() {
                    Ok(r) if carried(&r, bundle_images) => {
                        let mapped = mapping.map(&r).to_string();
                        out.push_str(before);
                        out.push_str(&mapped);
                        out.push_str(after);
                        imgs.push((n, value.to_string(), mapped));
                        i += 1;
                        continue;
                    }
                    Ok(_) => problems.push(CniProblem::NotCarried {
                        line: n,
                        image: value.to_string(),
                    }),
                    Err(e) => problems.push(CniProblem::BadImage {
                        line: n,
                        value: value.to_string(),
                        reason: e.reason.to_string(),
                    }),
                }
            }
        }
        if cni == "calico" && uncommented(line).trim() == "- name: CALICO_IPV4POOL_CIDR" {
            let name_line = uncommented(line);
            let next = lines.get(i + 1).copied().unwrap_or("");
            let value_line = uncommented(next);
            if value_line.trim_start().starts_with("value:") {
                let indent = &value_line[..value_line.len() - value_line.trim_start().len()];
                if name_line != line {
                    cidr_lines.push(n);
                }
                out.push_str(&name_line);
                let eol = if next.ends_with("\r\n") { "\r\n" } else { "\n" };
                let new_value = format!("{indent}value: \"{pod_subnet}\"{eol}");
                if new_value != next {
                    cidr_lines.push(n + 1);
                }
                out.push_str(&new_value);
                network_set = true;
                i += 2;
                continue;
            }
        }
        if let Some(e) = encapsulation {
            let env = env_name(line);
            let wanted = match env {
                Some("CALICO_IPV4POOL_IPIP") => Some(e.ipip_mode()),
                Some("CALICO_IPV4POOL_VXLAN") => Some(e.vxlan_mode()),
                _ => None,
            };
            let next = lines.get(i + 1).copied().unwrap_or("");
            if let Some(new_value) = wanted.and_then(|w| env_value(next, w)) {
                out.push_str(line);
                if new_value != next {
                    option_lines.push(n + 1);
                }
                out.push_str(&new_value);
                if env == Some("CALICO_IPV4POOL_IPIP") {
                    ipip_set = true;
                    if !has_vxlan && e.vxlan_mode() != "Never" {
                        // The manifest leaves VXLAN to calico's default (Never): add it.
                        let mut added =
                            line.replacen("CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN", 1);
                        if !added.ends_with('\n') {
                            added.push('\n');
                        }
                        out.push_str(&added);
                        let mut v = env_value(next, e.vxlan_mode()).expect("a value line");
                        if !v.ends_with('\n') {
                            v.push('\n');
                        }
                        out.push_str(&v);
                        option_lines.push(n + 1);
                    }
                }
                i += 2;
                continue;
            }
        }
        if let Some(mtu) = mtu {
            if let Some(new) = config_value(line, "veth_mtu", &mtu.to_string()) {
                if new != line {
                    option_lines.push(n);
                }
                out.push_str(&new);
                mtu_set = true;
                i += 1;
                continue;
            }
        }
        if let Some(backend) = backend {
            if line.contains("\"Backend\"") {
                in_backend = true;
            } else if in_backend && !backend_set {
                if let Some(new) = set_json_string(line, "\"Type\"", backend) {
                    if new != line {
                        option_lines.push(n);
                    }
                    out.push_str(&new);
                    backend_set = true;
                    i += 1;
                    continue;
                }
            }
        }
        if cni == "flannel" {
            if let Some(new) = set_json_string(line, "\"Network\"", &pod_subnet.to_string()) {
                if new != line {
                    cidr_lines.push(n);
                }
                out.push_str(&new);
                network_set = true;
                i += 1;
                continue;
            }
        }
        out.push_str(line);
        i += 1;
    }
    if !network_set {
        match cni {
            "flannel" => problems.push(CniProblem::NoPodNetwork { what: "`\"Network\"` in flannel's `net-conf.json`".into() }),
            "calico" => notes.push(format!(
                "the calico manifest has no CALICO_IPV4POOL_CIDR; calico takes the pod network from kubeadm's configuration ({pod_subnet})"
            )),
            _ => {}
        }
    }
    if encapsulation.is_some() && !ipip_set {
        problems.push(CniProblem::NoSetting {
            what: "`CALICO_IPV4POOL_IPIP` entry with a `value:` in calico-node's env".into(),
            field: "spec.network.calico.encapsulation".into(),
        });
    }
    if mtu.is_some() && !mtu_set {
        problems.push(CniProblem::NoSetting {
            what: "`veth_mtu` in the `calico-config` ConfigMap".into(),
            field: "spec.network.calico.mtu".into(),
        });
    }
    if backend.is_some() && !backend_set {
        problems.push(CniProblem::NoSetting {
            what: "`\"Backend\": {\"Type\": …}` in flannel's `net-conf.json`".into(),
            field: "spec.network.flannel.backend".into(),
        });
    }
    if problems.is_empty() {
        Ok(Rewritten {
            text: out,
            images: imgs,
            cidr_lines,
            option_lines,
            notes,
        })
    } else {
        Err(problems)
    }
}

/// The name of an env entry line `- name: NAME` (not commented out).
fn env_name(line: &str) -> Option<&str> {
    let name = line.trim().strip_prefix("- name:")?.trim();
    Some(name.trim_matches(['"', '\'']))
}

/// The `value:` line `line` with its value replaced by `"value"`; `None` when `line`
/// is not a `value:` line (a `valueFrom:`, say).
fn env_value(line: &str, value: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let rest = trimmed.strip_prefix("value:")?;
    let indent = &line[..line.len() - trimmed.len()];
    let eol = if rest.ends_with("\r\n") {
        "\r\n"
    } else if rest.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    Some(format!("{indent}value: \"{value}\"{eol}"))
}

/// A ConfigMap data line `  key: "value"` with its value replaced (quoted).
fn config_value(line: &str, key: &str, value: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let rest = trimmed.strip_prefix(key)?.strip_prefix(':')?;
    let indent = &line[..line.len() - trimmed.len()];
    let eol = if rest.ends_with("\r\n") {
        "\r\n"
    } else if rest.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    Some(format!("{indent}{key}: \"{value}\"{eol}"))
}

/// The line without a leading `# ` (or `#`) after its indentation; the line itself
/// when it is not a comment.
fn uncommented(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    match trimmed.strip_prefix('#') {
        Some(rest) => format!("{indent}{}", rest.strip_prefix(' ').unwrap_or(rest)),
        None => line.to_string(),
    }
}

/// In a JSON-ish line `"Key": "value",`, replaces the string value.
fn set_json_string(line: &str, key: &str, value: &str) -> Option<String> {
    let at = line.find(key)?;
    let after = &line[at + key.len()..];
    let colon = after.find(':')?;
    if !after[..colon].trim().is_empty() {
        return None;
    }
    let rest = &after[colon + 1..];
    let open = rest.find('"')?;
    if !rest[..open].trim().is_empty() {
        return None;
    }
    let close = rest[open + 1..].find('"')? + open + 1;
    let start = at + key.len() + colon + 1 + open + 1;
    let end = at + key.len() + colon + 1 + close;
    Some(format!("{}{}{}", &line[..start], value, &line[end..]))
}
