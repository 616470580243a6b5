//! Where registry credentials come from, first found wins:
//!
//! 1. what the caller passes (`--username` with `--password-stdin`);
//! 2. the environment: `BUNDLE_REGISTRY_USERNAME` and `BUNDLE_REGISTRY_PASSWORD`;
//! 3. the user's docker `config.json` (`$DOCKER_CONFIG/config.json` or
//!    `~/.docker/config.json`): `auths` entries and credential helpers
//!    (`credsStore`, `credHelpers`), read with the `docker_credential` crate; then
//!    the `auth.json` of `podman login` / `skopeo login` (`$REGISTRY_AUTH_FILE` or
//!    `$XDG_RUNTIME_DIR/containers/auth.json`).
//!
//! `bundle build` pulls from many registries: it takes what the caller gives for one
//! named registry (`--registry-login HOST`, with `--password-stdin` or the environment
//! variables), and for every other registry only the docker and podman configuration
//! ([`from_config_files`]), so that no password is sent to a registry it was not meant
//! for.
//!
//! Passwords never go through argv and never appear in `Debug` output.

use docker_credential::{CredentialRetrievalError, DockerCredential};

use crate::{Credentials, Error};

/// Environment variable holding the username.
pub const USERNAME_ENV: &str = "BUNDLE_REGISTRY_USERNAME";
/// Environment variable holding the password.
pub const PASSWORD_ENV: &str = "BUNDLE_REGISTRY_PASSWORD";

/// Where the credentials in use came from (for messages; never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given by the caller.
    Given,
    /// From `BUNDLE_REGISTRY_PASSWORD`.
    Environment,
    /// From the docker configuration.
    DockerConfig,
    /// None found: anonymous.
    None,
}

/// Finds credentials for `registry` (`HOST[:PORT]`). `username` and `password` are
/// what the caller was given; a password without a username takes the username from
/// the environment.
pub fn resolve(
    registry: &str,
    username: Option<String>,
    password: Option<String>,
) -> Result<(Option<Credentials>, Source), Error> {
    let env_user = std::env::var(USERNAME_ENV).ok().filter(|v| !v.is_empty());
    let env_pass = std::env::var(PASSWORD_ENV).ok().filter(|v| !v.is_empty());
    if let Some(password) = password {
        let username = username.or(env_user).ok_or_else(|| Error::DockerConfig {
            registry: registry.into(),
            detail: format!(
                "a password was given without a username (pass `--username` or set {USERNAME_ENV})"
            ),
        })?;
        return Ok((Some(Credentials { username, password }), Source::Given));
    }
    if let Some(password) = env_pass {
        let username = username.or(env_user).ok_or_else(|| Error::DockerConfig {
            registry: registry.into(),
            detail: format!(
                "{PASSWORD_ENV} is set but no username (pass `--username` or set {USERNAME_ENV})"
            ),
        })?;
        return Ok((
            Some(Credentials { username, password }),
            Source::Environment,
        ));
    }
    match from_config_files(registry)? {
        Some(c) if username.as_ref().is_some_and(|want| *want != c.username) => {
            Ok((None, Source::None))
        }
        Some(c) => Ok((Some(c), Source::DockerConfig)),
        None => Ok((None, Source::None)),
    }
}

/// Credentials for `registry` (`HOST[:PORT]`) stored by `docker login`, `podman login`
/// or `skopeo login`: docker's `config.json` first (`auths`, `credHelpers`,
/// `credsStore`), then containers' `auth.json`. `Ok(None)` when neither has any, or
/// the credential helper answers that it has none.
pub fn from_config_files(registry: &str) -> Result<Option<Credentials>, Error> {
    let key = config_key(registry);
    let found = match docker_credential::get_credential(key) {
        Err(e) if is_absent(&e) => docker_credential::get_podman_credential(key),
        other => other,
    };
    match found {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credentials { username, password }))
        }
        Ok(DockerCredential::IdentityToken(_)) => Err(Error::DockerConfig {
            registry: registry.into(),
            detail:
                "the docker configuration holds an identity token, which registries here cannot use"
                    .into(),
        }),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(helper_error(registry, e)),
    }
}

/// The key docker stores a registry's credentials under: Docker Hub's is its old
/// index URL, every other registry's is its `HOST[:PORT]`.
fn config_key(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// No configuration, no entry, or a helper that has nothing for this registry (the
/// protocol's answer is exit status 1 with "credentials not found in native keychain").
fn is_absent(e: &CredentialRetrievalError) -> bool {
    match e {
        CredentialRetrievalError::ConfigNotFound
        | CredentialRetrievalError::NoCredentialConfigured
        | CredentialRetrievalError::ConfigReadError => true,
        CredentialRetrievalError::HelperFailure { stdout, stderr, .. } => {
            stdout.contains("credentials not found") || stderr.contains("credentials not found")
        }
        _ => false,
    }
}

/// Names the helper that failed. docker_credential's own messages name none when the
/// helper cannot be started, and print a failing helper's whole output.
fn helper_error(registry: &str, e: CredentialRetrievalError) -> Error {
    let (helper, problem) = match e {
        CredentialRetrievalError::HelperFailure {
            helper,
            stdout,
            stderr,
        } => {
            let said = first_line(&stderr).or_else(|| first_line(&stdout));
            let problem = match said {
                Some(line) => format!("failed: {line}"),
                None => "failed without saying why".into(),
            };
            (helper, problem)
        }
        CredentialRetrievalError::HelperCommunicationError => (
            configured_helper(registry),
            "cannot be run (is it installed and on PATH?)".into(),
        ),
        CredentialRetrievalError::MalformedHelperResponse => (
            configured_helper(registry),
            "answered something other than the credential-helper protocol's JSON".into(),
        ),
        other => {
            return Error::DockerConfig {
                registry: registry.into(),
                detail: other.to_string(),
            }
        }
    };
    Error::CredentialHelper {
        registry: registry.into(),
        helper,
        problem,
    }
}

fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(200).collect())
}

/// `docker-credential-NAME` as docker's config.json names it for `registry`
/// (`credHelpers`, else `credsStore`), for messages.
fn configured_helper(registry: &str) -> String {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
    let config: Option<serde_json::Value> = dir
        .and_then(|d| std::fs::read(d.join("config.json")).ok())
        .and_then(|data| serde_json::from_slice(&data).ok());
    let name = config.and_then(|c| {
        let helper = c["credHelpers"][config_key(registry)].as_str();
        helper.or(c["credsStore"].as_str()).map(str::to_string)
    });
    match name {
        Some(n) => format!("docker-credential-{n}"),
        None => "docker-credential-*".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_looked_up_under_its_index_url() {
        assert_eq!(config_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(
            config_key("registry-1.docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(config_key("quay.io"), "quay.io");
    }

    #[test]
    fn a_helper_without_an_entry_is_no_credentials_and_other_failures_are_errors() {
        let none = CredentialRetrievalError::HelperFailure {
            helper: "docker-credential-x".into(),
            stdout: "credentials not found in native keychain\n".into(),
            stderr: String::new(),
        };
        assert!(is_absent(&none));
        let broken = CredentialRetrievalError::HelperFailure {
            helper: "docker-credential-x".into(),
            stdout: String::new(),
            stderr: "\nerror: keyring locked\nmore\n".into(),
        };
        assert!(!is_absent(&broken));
        let e = helper_error("r:5000", broken);
        assert_eq!(
            e.to_string(),
            "credential helper `docker-credential-x` for `r:5000` failed: error: keyring locked"
        );
    }
}
