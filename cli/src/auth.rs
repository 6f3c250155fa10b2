//! How the operator's commands authenticate to wxpush's `/v1` API: the local server's bearer
//! key, or SigV4 for the deployed API (API Gateway's IAM authorisation, service
//! `execute-api`), with the standard AWS credential chain and region.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// `--auth`: which scheme, when the default (by the server URL) is not wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthKind {
    Bearer,
    Sigv4,
}

impl AuthKind {
    /// Bearer for a loopback URL (the local server), SigV4 for anything else.
    pub fn default_for(server: &str) -> AuthKind {
        let host = reqwest::Url::parse(server)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let host = host.trim_matches(|c| c == '[' || c == ']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            AuthKind::Bearer
        } else {
            AuthKind::Sigv4
        }
    }
}

/// Refuses to put a bearer key on the network in clear: `--auth bearer` to a plain `http://`
/// server that is not this machine (loopback: 127.0.0.0/8, ::1, `localhost`), unless the
/// operator passed `--insecure-http`. The key would be readable, and reusable, by anyone on
/// the path, and so would every answer (access tokens among them). SigV4 never sends its
/// secret; https:// and loopback are fine.
pub fn check_transport(server: &str, kind: AuthKind, insecure_http: bool) -> Result<(), String> {
    let Ok(url) = reqwest::Url::parse(server) else {
        return Ok(()); // the client reports a URL it cannot use
    };
    let host = url.host_str().unwrap_or("");
    if kind != AuthKind::Bearer
        || url.scheme() != "http"
        || insecure_http
        || wxpush_shared::http::is_loopback_host(host)
    {
        return Ok(());
    }
    let shown = match url.port() {
        Some(p) => format!("http://{host}:{p}"),
        None => format!("http://{host}"),
    };
    Err(format!(
        "refusing to send the bearer key in clear: {shown} is plain http:// and not this machine, so the key (and every answer, access tokens included) would cross the network unencrypted, readable and reusable by anyone on the path. Use the server's https:// URL (or --auth sigv4), or pass --insecure-http if you accept that risk"
    ))
}

/// The credentials an operator's request is signed with.
pub enum Auth {
    Bearer(String),
    SigV4(SigV4Signer),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::SigV4(s) => write!(f, "SigV4({})", s.region),
        }
    }
}

/// Signs requests for `execute-api` in one region.
pub struct SigV4Signer {
    credentials: SharedCredentialsProvider,
    region: String,
}

impl SigV4Signer {
    pub fn new(credentials: SharedCredentialsProvider, region: impl Into<String>) -> SigV4Signer {
        SigV4Signer {
            credentials,
            region: region.into(),
        }
    }

    /// The standard chain (environment, profile, SSO, container, instance) and region
    /// (`AWS_REGION`, the profile), or the API URL's region (`...execute-api.{region}.amazonaws.com[.cn]`).
    pub async fn from_environment(server: &str) -> Result<SigV4Signer, String> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let region = region_of_api_url(server)
            .or_else(|| config.region().map(|r| r.to_string()))
            .ok_or("SigV4 needs a region: set AWS_REGION (or use the API's execute-api URL)")?;
        let credentials = config
            .credentials_provider()
            .ok_or("SigV4 needs AWS credentials: none found in the standard chain")?;
        Ok(SigV4Signer::new(credentials, region))
    }

    /// Adds `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token`) to `req`, over its
    /// method, URL, headers and body.
    pub async fn sign(&self, req: &mut reqwest::Request) -> Result<(), String> {
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("cannot load AWS credentials: {e}"))?;
        let identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let body = req
            .body()
            .map(|b| b.as_bytes().ok_or("cannot sign a streamed body"))
            .transpose()?
            .unwrap_or(&[]);
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let url = req.url().to_string();
        let signable = SignableRequest::new(
            req.method().as_str(),
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("cannot sign: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("cannot sign: {e}"))?
            .into_parts();
        let (new_headers, _) = instructions.into_parts();
        for h in new_headers {
            let value = reqwest::header::HeaderValue::from_str(h.value())
                .map_err(|e| format!("cannot sign: {e}"))?;
            req.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(h.name().as_bytes())
                    .map_err(|e| format!("cannot sign: {e}"))?,
                value,
            );
        }
        Ok(())
    }
}

/// `eu-west-1` of `https://abc.execute-api.eu-west-1.amazonaws.com`, `cn-north-1` of
/// `...execute-api.cn-north-1.amazonaws.com.cn`.
pub fn region_of_api_url(server: &str) -> Option<String> {
    let url = reqwest::Url::parse(server).ok()?;
    let host = url.host_str()?;
    let mut labels = host.split('.');
    labels.find(|l| *l == "execute-api")?;
    labels.next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_regions() {
        assert_eq!(
            AuthKind::default_for("http://127.0.0.1:3000"),
            AuthKind::Bearer
        );
        assert_eq!(
            AuthKind::default_for("http://localhost:3000"),
            AuthKind::Bearer
        );
        assert_eq!(AuthKind::default_for("http://[::1]:3000"), AuthKind::Bearer);
        assert_eq!(
            AuthKind::default_for("https://abc.execute-api.eu-west-1.amazonaws.com"),
            AuthKind::Sigv4
        );
        assert_eq!(
            region_of_api_url("https://abc.execute-api.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of_api_url("https://api.example.com"), None);
    }

    #[test]
    fn a_bearer_key_goes_in_clear_only_on_loopback_or_when_told() {
        let bearer = AuthKind::Bearer;
        for ok in [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://[::1]:3000",
            "https://wxpush.example.com",
        ] {
            assert!(check_transport(ok, bearer, false).is_ok(), "{ok}");
        }
        let remote = "http://user:pw@wxpush.example.com:8080/x";
        let err = check_transport(remote, bearer, false).unwrap_err();
        assert!(err.contains("http://wxpush.example.com:8080") && !err.contains("pw"));
        assert!(check_transport(remote, bearer, true).is_ok());
        assert!(check_transport(remote, AuthKind::Sigv4, false).is_ok());
    }
}
