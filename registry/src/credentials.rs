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
    // Docker's config.json first, then the auth.json that `podman login` and
    // `skopeo login` write.
    let found = match docker_credential::get_credential(registry) {
        Err(
            CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::NoCredentialConfigured
            | CredentialRetrievalError::ConfigReadError,
        ) => docker_credential::get_podman_credential(registry),
        other => other,
    };
    match found {
        Ok(DockerCredential::UsernamePassword(u, p)) => {
            if username.as_ref().is_some_and(|want| *want != u) {
                return Ok((None, Source::None));
            }
            Ok((
                Some(Credentials {
                    username: u,
                    password: p,
                }),
                Source::DockerConfig,
            ))
        }
        Ok(DockerCredential::IdentityToken(_)) => Err(Error::DockerConfig {
            registry: registry.into(),
            detail:
                "the docker configuration holds an identity token, which registries here cannot use"
                    .into(),
        }),
        Err(
            CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::NoCredentialConfigured
            | CredentialRetrievalError::ConfigReadError,
        ) => Ok((None, Source::None)),
        Err(e) => Err(Error::DockerConfig {
            registry: registry.into(),
            detail: e.to_string(),
        }),
    }
}
