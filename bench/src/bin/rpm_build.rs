//! `bundle build` of an RPM-only manifest against `dnf download --resolve --alldeps`
//! (dnf-plugins-core) followed by `createrepo_c`, from the same local upstream of a few
//! hundred RPMs (built with rpmbuild, served on 127.0.0.1).
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin rpm_build [-- 300]

use std::path::Path;

use bundle_bench::{bundle_binary, header, measure, row};
use bundle_testbed::real::rpms::{createrepo, RepoServer, RpmSpec};

/// The upstream: `apps` pinned packages, each needing four libraries; libraries need one
/// or two base packages, some through a virtual provide; the rest is noise nobody needs.
fn upstream(total: usize, repo: &Path, work: &Path) -> anyhow::Result<Vec<String>> {
    let apps = total / 15;
    let libs = total * 2 / 5;
    let bases = total / 5;
    let noise = total - apps - libs - bases;
    let mut specs = Vec::new();
    for b in 0..bases {
        let spec = RpmSpec::new(&format!("base{b}"), "1.0-1.el9", "x86_64")
            .files(&[&format!("/usr/lib64/libbase{b}.so.1")]);
        specs.push(if b.is_multiple_of(3) {
            spec.provides(&[&format!("virtual-base{b}")])
        } else {
            spec
        });
    }
    for l in 0..libs {
        let b = l % bases;
        let need = if b.is_multiple_of(3) {
            format!("virtual-base{b}")
        } else {
            format!("base{b} >= 1.0")
        };
        let mut spec = RpmSpec::new(&format!("lib{l}"), "2.1-3.el9", "x86_64").requires(&[&need]);
        if l.is_multiple_of(4) {
            spec = spec.requires(&[&format!("/usr/lib64/libbase{}.so.1", (l + 7) % bases)]);
        }
        specs.push(spec);
        // An older release too, so the resolver has a choice to make.
        specs.push(RpmSpec::new(&format!("lib{l}"), "2.0-1.el9", "x86_64").requires(&[&need]));
    }
    let mut pinned = Vec::new();
    for a in 0..apps {
        let needs: Vec<String> = (0..4)
            .map(|i| format!("lib{}", (a * 4 + i) % libs))
            .collect();
        let needs: Vec<&str> = needs.iter().map(String::as_str).collect();
        specs.push(RpmSpec::new(&format!("app{a}"), "1.29.2-1.el9", "x86_64").requires(&needs));
        pinned.push(format!("app{a}-1.29.2"));
    }
    for n in 0..noise {
        specs.push(RpmSpec::new(&format!("noise{n}"), "0.1-1.el9", "noarch"));
    }
    // rpmbuild is single-threaded: two at a time on two cores.
    std::thread::scope(|s| -> anyhow::Result<()> {
        let (left, right) = specs.split_at(specs.len() / 2);
        let a = s.spawn(|| {
            left.iter()
                .try_for_each(|sp| sp.build(&work.join("a"), repo).map(|_| ()))
        });
        let b = s.spawn(|| {
            right
                .iter()
                .try_for_each(|sp| sp.build(&work.join("b"), repo).map(|_| ()))
        });
        a.join().expect("builder thread")?;
        b.join().expect("builder thread")
    })?;
    createrepo(repo)?;
    Ok(pinned)
}

fn main() -> anyhow::Result<()> {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let bundle = bundle_binary()?;
    let bundle = bundle.display();
    let work = tempfile::tempdir()?;
    let w = work.path();
    let repo = w.join("upstream");
    let pinned = upstream(total, &repo, &w.join("rpmbuild"))?;
    let rpms = std::fs::read_dir(&repo)?
        .filter(|e| {
            e.as_ref()
                .map(|e| e.path().extension().is_some_and(|x| x == "rpm"))
                .unwrap_or(false)
        })
        .count();
    let server = RepoServer::serve(&repo)?;
    let url = &server.url;

    std::fs::write(
        w.join("m.yaml"),
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: rpmbench, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: upstream, baseurl: '{url}/'}}\n      packages: [{}]\n",
            pinned.join(", ")
        ),
    )?;
    std::fs::create_dir_all(w.join("home"))?;
    std::fs::write(w.join("home/.rpmmacros"), "%_dbpath /var/lib/rpm\n")?;
    measure(w, &format!("{bundle} keygen --unencrypted --output k"))?;

    let ours = measure(
        w,
        &format!(
            "{bundle} -q build --manifest m.yaml --key k.key --cache cache --output ours.tar.zst"
        ),
    )?;
    let download = format!(
        "HOME=$PWD/home dnf -q download --resolve --alldeps --destdir dl --setopt=reposdir=/dev/null --setopt=cachedir=$PWD/dnfcache \
         --repofrompath=upstream,{url}/ --disablerepo='*' --enablerepo=upstream --installroot=$PWD/root --releasever=9 {}",
        pinned.iter().map(|p| p.replace("-1.29.2", "-1.29.2-1.el9")).collect::<Vec<_>>().join(" ")
    );
    let theirs = measure(w, &download)?.then(measure(w, "createrepo_c -q dl")?);
    let carried = |dir: &str| {
        std::fs::read_dir(w.join(dir))
            .map(|r| {
                r.filter(|e| {
                    e.as_ref()
                        .map(|e| e.path().extension().is_some_and(|x| x == "rpm"))
                        .unwrap_or(false)
                })
                .count()
            })
            .unwrap_or(0)
    };

    println!(
        "\nupstream: {rpms} RPMs in one repo; {} pinned packages; dnf downloaded {} RPMs\n",
        pinned.len(),
        carried("dl")
    );
    header("bundle", "alternative");
    row(
        "RPM-only build (bundle build | dnf download --resolve --alldeps + createrepo_c)",
        ours,
        theirs,
        "≤ 0.5×, ≤ 100 MiB",
    );
    Ok(())
}
