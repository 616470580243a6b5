//! Harbor: detection and projects.
//!
//! Harbor keeps repositories in projects that must exist before anything is pushed
//! into them. `bundle push` asks `GET /api/v2.0/systeminfo` whether the registry is a
//! Harbor; if it is, every target project is checked with
//! `HEAD /api/v2.0/projects?project_name=NAME` (200 exists, 404 missing) and created
//! with `POST /api/v2.0/projects` `{"project_name": NAME, "metadata": {"public": "false"}}`
//! (201 created; 409 means someone else created it meanwhile, which is as good);
//! `"public": "true"` when asked, so that nodes can pull without credentials. An
//! existing project is never changed. Shapes follow Harbor's `api/v2.0/swagger.yaml`.
//! Other registries skip this step.

use reqwest::StatusCode;

use crate::push::http::{Attempt, AttemptResult, Session};
use crate::Error;

/// What `/api/v2.0/systeminfo` told about a Harbor.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HarborInfo {
    /// `v2.10.0-…`, when Harbor says.
    #[serde(default)]
    pub harbor_version: Option<String>,
}

/// What was done for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectOutcome {
    /// It existed already.
    Existed,
    /// It was created (private, or public when asked).
    Created,
}

/// `Some` when the registry answers Harbor's systeminfo.
pub(crate) async fn detect(s: &Session) -> AttemptResult<Option<HarborInfo>> {
    let url = format!("{}/api/v2.0/systeminfo", s.base());
    let resp = s
        .http()
        .get(&url)
        .send()
        .await
        .map_err(|e| s.connect_error(&url, e))?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let text = resp.text().await.unwrap_or_default();
    // A Harbor always names its version or auth mode here; anything else is not one.
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    if value.get("harbor_version").is_none() && value.get("auth_mode").is_none() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_value(value).unwrap_or_default()))
}

fn api(s: &Session, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match s.credentials() {
        Some(c) => req.basic_auth(&c.username, Some(&c.password)),
        None => req,
    }
}

/// Makes sure `project` exists, creating it (private unless `public`) when missing.
pub(crate) async fn ensure_project(
    s: &Session,
    project: &str,
    public: bool,
) -> AttemptResult<ProjectOutcome> {
    let url = format!("{}/api/v2.0/projects", s.base());
    let resp = api(s, s.http().head(&url).query(&[("project_name", project)]))
        .send()
        .await
        .map_err(|e| s.connect_error(&url, e))?;
    match resp.status() {
        StatusCode::OK => return Ok(ProjectOutcome::Existed),
        StatusCode::NOT_FOUND => {}
        StatusCode::UNAUTHORIZED => return Err(bad_credentials(s, &url)),
        status => {
            return Err(s
                .status_error(&format!("HEAD {url}?project_name={project}"), resp, status)
                .await)
        }
    }
    // Harbor's ProjectMetadata holds "true"/"false" strings, not booleans.
    let body = serde_json::json!({ "project_name": project, "metadata": { "public": public.to_string() } });
    let resp = api(s, s.http().post(&url).json(&body))
        .send()
        .await
        .map_err(|e| s.connect_error(&url, e))?;
    match resp.status() {
        StatusCode::CREATED | StatusCode::OK => Ok(ProjectOutcome::Created),
        StatusCode::CONFLICT => Ok(ProjectOutcome::Existed),
        StatusCode::UNAUTHORIZED => Err(bad_credentials(s, &url)),
        status @ StatusCode::FORBIDDEN => Err(Attempt::from(Error::Denied {
            registry: s.host().to_string(),
            account: s.account(),
            repository: project.to_string(),
            action: "create the Harbor project".into(),
            status: status.as_u16(),
        })),
        status => Err(s
            .status_error(
                &format!("POST {url} (create project `{project}`)"),
                resp,
                status,
            )
            .await),
    }
}

fn bad_credentials(s: &Session, url: &str) -> Attempt {
    Attempt::from(Error::BadCredentials {
        registry: s.host().to_string(),
        account: s.account(),
        checked_at: format!("Harbor's API {url}"),
    })
}
