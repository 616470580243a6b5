//! A connected side in miniature, for tests that need a real bundle with images: a
//! registry seeded with synthetic images (skopeo), a file server with calico.yaml, and
//! a session with a key that runs `bundle build` against them through `--mirror`.
#![allow(dead_code)]

use std::path::PathBuf;

use bundle_testbed::fixtures::images::{self, SeededImage, TestImage};
use bundle_testbed::{FileServer, Registry};

use crate::common::{Run, Session};

pub const CALICO: &[u8] =
    b"# calico-like manifest for tests\nkind: DaemonSet\nimage: docker.io/calico/node:v3.26.4\n";

pub struct Upstream {
    pub registry: Registry,
    pub files: FileServer,
    pub seeded: Vec<(TestImage, SeededImage)>,
    pub s: Session,
    pub scratch: tempfile::TempDir,
}

impl Upstream {
    /// The default manifest's images at `scale`.
    pub fn start(list: Vec<TestImage>) -> Self {
        let registry = Registry::start().expect("registry");
        let scratch = tempfile::tempdir().unwrap();
        let seeded = list
            .into_iter()
            .map(|img| {
                let seeded = images::seed(&registry.addr, &img, scratch.path()).expect("seed");
                (img, seeded)
            })
            .collect();
        let files = FileServer::start().expect("file server");
        files.put("calico.yaml", CALICO);
        let s = Session::new();
        s.keygen("builder");
        Upstream {
            registry,
            files,
            seeded,
            s,
            scratch,
        }
    }

    pub fn seeded(&self, repository: &str) -> &SeededImage {
        &self
            .seeded
            .iter()
            .find(|(i, _)| i.repository == repository)
            .unwrap()
            .1
    }

    /// A manifest naming `images`, with calico.yaml from the file server, no RPMs.
    pub fn manifest(&self, images: &[&str]) -> String {
        let list: String = match images {
            [] => " []\n".into(),
            _ => std::iter::once("\n".to_string())
                .chain(images.iter().map(|i| format!("    - {i}\n")))
                .collect(),
        };
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata:\n  name: test-k8s\n  version: 1.29.2-1\nspec:\n  kubernetesVersion: v1.29.2\n  cni: {{name: calico, manifest: calico.yaml}}\n  platforms: [linux/amd64]\n  images:{list}  files:\n    - name: calico.yaml\n      url: {}/calico.yaml\n      sha256: {}\n",
            self.files.url,
            bundle_format::Sha256Digest::of(CALICO).hex()
        )
    }

    /// Builds with registry.k8s.io, docker.io and quay.io mirrored to the local registry.
    pub fn build(&self, manifest: &str, extra: &[&str]) -> Run {
        self.s.write("m.yaml", manifest);
        let addr = self.registry.addr.as_str();
        let k8s = format!("registry.k8s.io={addr}");
        let hub = format!("docker.io={addr}");
        let quay = format!("quay.io={addr}");
        let mut args = vec![
            "build",
            "--manifest",
            "m.yaml",
            "--key",
            "builder.key",
            "--plain-http",
            addr,
            "--mirror",
            &k8s,
            "--mirror",
            &hub,
            "--mirror",
            &quay,
        ];
        args.extend_from_slice(extra);
        self.s.run(&args)
    }

    /// Builds and asserts success; returns the bundle's path.
    pub fn build_ok(&self, images: &[&str]) -> PathBuf {
        let run = self.build(&self.manifest(images), &[]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        self.bundle_path()
    }

    pub fn bundle_path(&self) -> PathBuf {
        self.s.path("bundles/test-k8s-1.29.2-1.tar.zst")
    }
}
