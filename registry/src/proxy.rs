//! HTTP proxies from the environment, made explicit.
//!
//! reqwest 0.13 reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper case
//! first, then lower case) on its own whenever a client is built without `.proxy()`.
//! Left implicit, the registry pulls, file downloads and RPM repositories would each
//! depend on how their client happened to be built, and nothing could name the proxy in
//! an error. [`ProxySettings`] reads the variables once, with reqwest's rules, and every
//! client of a build is configured from it with [`ProxySettings::apply`]: registries
//! (each pull session, through [`crate::push::Connection::proxy`]), files and RPM
//! repositories. `bundle push` and the install at the site leave `Connection::proxy`
//! unset and get reqwest's own reading of the same variables.
//!
//! A proxy URL may carry `user:password@`. [`ProxyUrl`] never shows it: `Display` and
//! `Debug` print `http://****@host:port`, and [`ProxySettings::redact`] scrubs it from
//! any text (an error chain) before the text is shown or logged.

use hyper_util::client::proxy::matcher::Matcher;

/// One proxy URL as the environment gave it. Shown redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    raw: String,
}

impl ProxyUrl {
    fn new(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (!raw.is_empty()).then(|| Self { raw: raw.into() })
    }

    /// The URL as given, credentials included: only for building clients.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// `user:password` (or `user`) when the URL carries credentials.
    fn userinfo(&self) -> Option<&str> {
        let rest = self.raw.split_once("://").map_or(&*self.raw, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        authority.rsplit_once('@').map(|(info, _)| info)
    }

    /// `scheme://****@host:port`, never the credentials.
    pub fn redacted(&self) -> String {
        match self.userinfo() {
            Some(info) => self.raw.replacen(&format!("{info}@"), "****@", 1),
            None => self.raw.clone(),
        }
    }
}

impl std::fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyUrl({})", self.redacted())
    }
}

/// Which proxy each request goes through: `HTTPS_PROXY` for `https://` URLs,
/// `HTTP_PROXY` for `http://` ones (each falling back to `ALL_PROXY`), none for hosts
/// `NO_PROXY` lists. The default is no proxy at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// For `https://` URLs.
    pub https: Option<ProxyUrl>,
    /// For `http://` URLs.
    pub http: Option<ProxyUrl>,
    /// `NO_PROXY`: comma-separated hosts, domains (`.corp` or `corp`), IPs and CIDRs.
    pub no_proxy: String,
}

impl ProxySettings {
    /// From this process's environment, with reqwest's rules.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From variables looked up by `var` (upper case first, as reqwest does). A CGI
    /// process (`REQUEST_METHOD` set) ignores them, as reqwest does (httpoxy).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        if var("REQUEST_METHOD").is_some() {
            return Self::default();
        }
        let first = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| var(n).and_then(|v| ProxyUrl::new(&v)))
        };
        let all = first(["ALL_PROXY", "all_proxy"]);
        Self {
            https: first(["HTTPS_PROXY", "https_proxy"]).or_else(|| all.clone()),
            http: first(["HTTP_PROXY", "http_proxy"]).or(all),
            no_proxy: ["NO_PROXY", "no_proxy"]
                .iter()
                .find_map(|n| var(n))
                .unwrap_or_default(),
        }
    }

    /// Is any proxy set?
    pub fn is_set(&self) -> bool {
        self.https.is_some() || self.http.is_some()
    }

    /// Configures a reqwest client with exactly these proxies, and no others: without
    /// a call to `.proxy()` or `.no_proxy()` reqwest would read the environment itself.
    pub fn apply(&self, mut b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        if !self.is_set() {
            return Ok(b.no_proxy());
        }
        let no = reqwest::NoProxy::from_string(&self.no_proxy);
        if let Some(p) = &self.https {
            let proxy = reqwest::Proxy::https(p.expose())
                .map_err(|e| self.redact(&format!("HTTPS proxy `{p}`: {e}")))?;
            b = b.proxy(proxy.no_proxy(no.clone()));
        }
        if let Some(p) = &self.http {
            let proxy = reqwest::Proxy::http(p.expose())
                .map_err(|e| self.redact(&format!("HTTP proxy `{p}`: {e}")))?;
            b = b.proxy(proxy.no_proxy(no));
        }
        Ok(b)
    }

    /// The proxy a request to `url` goes through, if any (same matcher as reqwest's).
    pub fn for_url(&self, url: &str) -> Option<&ProxyUrl> {
        let uri: http::Uri = url.parse().ok()?;
        let mut m = Matcher::builder().no(self.no_proxy.clone());
        if let Some(p) = &self.https {
            m = m.https(p.expose().to_string());
        }
        if let Some(p) = &self.http {
            m = m.http(p.expose().to_string());
        }
        m.build().intercept(&uri)?;
        match uri.scheme_str() {
            Some("https") => self.https.as_ref(),
            _ => self.http.as_ref(),
        }
    }

    /// `text` with every proxy's credentials replaced by `****`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for p in [&self.https, &self.http].into_iter().flatten() {
            out = out.replace(p.expose(), &p.redacted());
            if let Some(info) = p.userinfo() {
                out = out.replace(info, "****");
            }
        }
        out
    }

    /// One line per proxy, redacted, for `--verbose`.
    pub fn describe(&self) -> String {
        let show =
            |p: &Option<ProxyUrl>| p.as_ref().map_or("none".to_string(), |p| format!("`{p}`"));
        let no = match self.no_proxy.trim() {
            "" => String::new(),
            n => format!(", not for `{n}`"),
        };
        format!(
            "https:// through {}, http:// through {}{no}",
            show(&self.https),
            show(&self.http)
        )
    }

    /// Explains a failed request to `url` as the proxy's doing, when it is: the
    /// connection to the proxy failed, it wants credentials (407), or it would not
    /// connect to the upstream (a refused `CONNECT`, or 403 for a plain-HTTP request).
    /// `error` is the reqwest error's text with its sources; `status` the HTTP status.
    pub fn diagnose(
        &self,
        url: &str,
        error: Option<&str>,
        status: Option<u16>,
    ) -> Option<ProxyRefusal> {
        let proxy = self.for_url(url)?;
        // Through a CONNECT tunnel (https://) every status is the upstream's; for a
        // forwarded http:// request, a 403 may be the proxy's ACL.
        let forwarded = url.starts_with("http://");
        let kind = match (error, status) {
            (_, Some(407)) => ProxyFailure::AuthRequired,
            (_, Some(403)) if forwarded => ProxyFailure::Forbidden,
            (Some(e), _) if e.contains("proxy authorization required") => {
                ProxyFailure::AuthRequired
            }
            (Some(e), _) if e.contains("unsuccessful") && e.contains("tunnel") => {
                ProxyFailure::Forbidden
            }
            // Through a proxy, the only TCP connection this side opens is to the proxy.
            (Some(e), _) if e.contains("tcp connect error") || e.contains("dns error") => {
                ProxyFailure::Unreachable
            }
            _ => return None,
        };
        Some(ProxyRefusal {
            proxy: proxy.redacted(),
            upstream: self.redact(url),
            kind,
            detail: error.map(|e| self.redact(e)),
        })
    }
}

/// How a proxy failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFailure {
    /// Nothing answered at the proxy's address.
    Unreachable,
    /// `407 Proxy Authentication Required`.
    AuthRequired,
    /// The proxy would not connect to the upstream (its ACL, or the upstream is down
    /// from where the proxy stands), or answered 403.
    Forbidden,
}

/// A request the proxy refused, with the proxy (redacted) and the upstream named.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct ProxyRefusal {
    /// The proxy, credentials redacted.
    pub proxy: String,
    /// The URL requested through it.
    pub upstream: String,
    /// What went wrong.
    pub kind: ProxyFailure,
    /// The client's error text, redacted.
    pub detail: Option<String>,
}

impl ProxyRefusal {
    fn message(&self) -> String {
        let (proxy, up) = (&self.proxy, &self.upstream);
        let what = match self.kind {
            ProxyFailure::Unreachable => format!("cannot connect to proxy `{proxy}` (for {up})"),
            ProxyFailure::AuthRequired => format!("proxy `{proxy}` requires authentication (407) for {up}"),
            ProxyFailure::Forbidden => format!(
                "proxy `{proxy}` refused to connect to {up} (a refused CONNECT, or 403 from the proxy or the server behind it)"
            ),
        };
        match &self.detail {
            Some(d) => format!("{what}: {d}"),
            None => what,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        let host = reqwest::Url::parse(&self.upstream)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| self.upstream.clone());
        match self.kind {
            ProxyFailure::Unreachable => format!(
                "check `HTTPS_PROXY`/`HTTP_PROXY` (is the proxy running at that address?), or add `{host}` to `NO_PROXY` if this machine reaches it directly"
            ),
            ProxyFailure::AuthRequired => "put the proxy's credentials in its URL: `HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT` (they are never shown or logged)".into(),
            ProxyFailure::Forbidden => format!(
                "ask the proxy's administrator to allow `{host}` (its ACL), or add `{host}` to `NO_PROXY` if this machine reaches it directly"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> ProxySettings {
        let list: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxySettings::from_vars(|n| list.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn upper_case_wins_and_all_proxy_fills_in() {
        let s = vars(&[
            ("https_proxy", "http://lower:3128"),
            ("HTTPS_PROXY", "http://upper:3128"),
            ("all_proxy", "http://all:3128"),
        ]);
        assert_eq!(s.https.unwrap().expose(), "http://upper:3128");
        assert_eq!(s.http.unwrap().expose(), "http://all:3128");
    }

    #[test]
    fn cgi_ignores_proxy_variables() {
        let s = vars(&[("HTTPS_PROXY", "http://p:3128"), ("REQUEST_METHOD", "GET")]);
        assert!(!s.is_set());
    }

    #[test]
    fn credentials_never_show() {
        let s = vars(&[("HTTPS_PROXY", "http://alice:s3cret@proxy.corp:3128")]);
        let p = s.https.clone().unwrap();
        assert_eq!(p.to_string(), "http://****@proxy.corp:3128");
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(!s.describe().contains("s3cret"));
        let text = s.redact("error for http://alice:s3cret@proxy.corp:3128/ and alice:s3cret");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn no_proxy_bypasses_listed_hosts() {
        let s = vars(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("HTTP_PROXY", "http://q:3128"),
            ("NO_PROXY", "internal.corp,10.0.0.0/8"),
        ]);
        assert_eq!(
            s.for_url("https://cdn.redhat.com/x").unwrap().expose(),
            "http://p:3128"
        );
        assert_eq!(
            s.for_url("http://mirror.org/x").unwrap().expose(),
            "http://q:3128"
        );
        assert!(s.for_url("https://repo.internal.corp/x").is_none());
        assert!(s.for_url("http://10.1.2.3:8080/x").is_none());
    }

    #[test]
    fn a_refused_tunnel_is_the_proxys_doing_only_through_a_proxy() {
        let s = vars(&[
            ("HTTPS_PROXY", "http://u:pw@p:3128"),
            ("NO_PROXY", "direct.corp"),
        ]);
        let r = s
            .diagnose(
                "https://cdn.example/x",
                Some("client error (Connect): unsuccessful tunnel"),
                None,
            )
            .unwrap();
        assert_eq!(r.kind, ProxyFailure::Forbidden);
        assert!(r.to_string().contains("`http://****@p:3128`"), "{r}");
        assert!(r.hint().contains("`cdn.example`"));
        assert!(s
            .diagnose("https://direct.corp/x", Some("tcp connect error"), None)
            .is_none());
        assert!(s
            .diagnose("https://cdn.example/x", None, Some(404))
            .is_none());
        assert!(
            s.diagnose("https://cdn.example/x", None, Some(403))
                .is_none(),
            "a 403 inside a tunnel is the server's"
        );
        assert_eq!(
            s.diagnose("https://cdn.example/x", None, Some(407))
                .unwrap()
                .kind,
            ProxyFailure::AuthRequired
        );
    }
}
