//! Files: downloaded by URL into the cache, checked against their pinned sha256 while
//! streaming. A mismatch keeps nothing.

use bundle_format::digest::Hasher;
use bundle_format::Sha256Digest;
use bundle_registry::{ProxySettings, RetryPolicy};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::cache::Cache;
use crate::manifest::FileSpec;
use crate::Error;

enum Attempt {
    Transient(String),
    Fatal(Error),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Transient(s) => f.write_str(s),
            Attempt::Fatal(e) => write!(f, "{e}"),
        }
    }
}

/// Downloads `file` unless the cache has it; returns its size and whether it was fetched.
pub async fn fetch(
    http: &reqwest::Client,
    proxy: &ProxySettings,
    cache: &Cache,
    file: &FileSpec,
    retry: &RetryPolicy,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(u64, bool), Error> {
    let expected =
        Sha256Digest::from_hex(&file.sha256).expect("checked when the manifest was read");
    if let Some(size) = cache.blob_size(&expected) {
        return Ok((size, false));
    }
    let dest = cache.blob_path(&expected);
    let partial = dest.with_extension("partial");
    let result = retry
        .run(
            &format!("file {}", file.name),
            |a| matches!(a, Attempt::Transient(_)),
            || download(http, proxy, file, &partial, &expected, on_bytes),
        )
        .await;
    match result {
        Ok(size) => {
            tokio::fs::rename(&partial, &dest)
                .await
                .map_err(|source| Error::Cache {
                    path: dest.clone(),
                    source,
                })?;
            Ok((size, true))
        }
        Err(a) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(match a {
                Attempt::Fatal(e) => e,
                Attempt::Transient(detail) => Error::FileDownload {
                    name: file.name.clone(),
                    url: file.url.clone(),
                    detail,
                },
            })
        }
    }
}

async fn download(
    http: &reqwest::Client,
    proxy: &ProxySettings,
    file: &FileSpec,
    partial: &std::path::Path,
    expected: &Sha256Digest,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<u64, Attempt> {
    let fatal_dl = |detail: String| {
        Attempt::Fatal(Error::FileDownload {
            name: file.name.clone(),
            url: file.url.clone(),
            detail,
        })
    };
    let sent = http.get(&file.url).send().await;
    let refusal = match &sent {
        Ok(r) => proxy.diagnose(&file.url, None, Some(r.status().as_u16())),
        Err(e) => proxy.diagnose(&file.url, Some(&error_chain(e)), None),
    };
    if let Some(source) = refusal {
        return Err(Attempt::Fatal(Error::Proxy {
            what: format!("file `{}`", file.name),
            source,
        }));
    }
    let response = sent.map_err(|e| Attempt::Transient(proxy.redact(&error_chain(&e))))?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Attempt::Transient(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(fatal_dl(format!("HTTP {status}")));
    }
    let cache_err = |source| {
        Attempt::Fatal(Error::Cache {
            path: partial.to_path_buf(),
            source,
        })
    };
    let mut out =
        tokio::io::BufWriter::new(tokio::fs::File::create(partial).await.map_err(cache_err)?);
    let mut hasher = Hasher::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Attempt::Transient(error_chain(&e)))?;
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(cache_err)?;
        on_bytes(chunk.len() as u64);
    }
    out.flush().await.map_err(cache_err)?;
    let size = hasher.len();
    let found = hasher.finish();
    if &found != expected {
        return Err(Attempt::Fatal(Error::FileChecksum {
            name: file.name.clone(),
            url: file.url.clone(),
            expected: expected.hex(),
            found: found.hex(),
        }));
    }
    Ok(size)
}

/// reqwest's Display hides the cause ("error sending request"); operators need it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
