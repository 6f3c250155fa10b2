//! The admin commands: they talk to a running wxpush (`wxpush serve`, or the deployed API
//! with SigV4) over the same `/v1` API as every other client.

use crate::auth::Auth;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A `/v1` client: the bearer key (local server) or SigV4 (the deployed API).
pub struct ApiClient {
    base: String,
    auth: Auth,
    http: reqwest::Client,
}

/// An answer that is not 2xx: the status and wxpush's error body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Recipients a batch refusal lists: (index, why).
    pub recipients: Vec<(u64, String)>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl ApiClient {
    /// A client of the local server, with its bearer key.
    pub fn new(base: &str, key: &str) -> Result<ApiClient, String> {
        ApiClient::with_auth(base, Auth::Bearer(key.trim().to_string()))
    }

    pub fn with_auth(base: &str, auth: Auth) -> Result<ApiClient, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            auth,
            http,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Result<Value, ApiFailure>, String> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Result<Value, ApiFailure>, String> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// A POST with an `Idempotency-Key` when one is given.
    pub async fn post_keyed(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Result<Value, ApiFailure>, String> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    pub async fn delete(&self, path: &str) -> Result<Result<Value, ApiFailure>, String> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// `Err`: wxpush could not be reached; `Ok(Err)`: it answered with an error.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Result<Value, ApiFailure>, String> {
        let mut req = req
            .build()
            .map_err(|e| format!("bad request: {}", e.without_url()))?;
        match &self.auth {
            Auth::Bearer(key) => {
                let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "the API key is not a valid header value".to_string())?;
                req.headers_mut()
                    .insert(reqwest::header::AUTHORIZATION, value);
            }
            Auth::SigV4(signer) => signer.sign(&mut req).await?,
        }
        let resp =
            self.http.execute(req).await.map_err(|e| {
                format!("cannot reach wxpush at {}: {}", self.base, e.without_url())
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(Ok(value));
        }
        let field = |k: &str| {
            value["error"][k]
                .as_str()
                .map(str::to_string)
                .unwrap_or_default()
        };
        let recipients = value["error"]["recipients"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|r| {
                        (
                            r["index"].as_u64().unwrap_or(0),
                            r["error"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Err(ApiFailure {
            status: status.as_u16(),
            code: field("code"),
            message: field("message"),
            recipients,
        }))
    }
}

/// `wxpush sync-followers`.
pub struct SyncFollowers {
    pub appid: String,
    /// Start over instead of resuming a failed run.
    pub restart: bool,
    pub poll_every: Duration,
    /// Give up following (the sync goes on) after this long.
    pub give_up_after: Duration,
    pub show_progress: bool,
}

/// Starts (or joins) the app's follower sync and follows it to the end with a progress bar.
/// `Ok` with the last progress when it is done; `Err` when it failed or could not start.
pub async fn sync_followers(api: &ApiClient, args: &SyncFollowers) -> Result<Value, String> {
    let path = format!("/v1/apps/{}/followers/sync", args.appid);
    let bar = if args.show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} followers  {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    match api.post(&path, &json!({"restart": args.restart})).await? {
        Ok(started) => {
            let how = if started["resumed"] == true {
                "resumed"
            } else {
                "started"
            };
            bar.println(format!(
                "follower sync {how}: run {}",
                started["run_id"].as_str().unwrap_or("?")
            ));
        }
        Err(f) if f.code == "sync_in_progress" => {
            bar.println("a follower sync is already running; following it");
        }
        Err(f) => return Err(format!("could not start the follower sync: {f}")),
    }
    let until = Instant::now() + args.give_up_after;
    let poll = args.poll_every.max(Duration::from_millis(10));
    let max_polls = (args.give_up_after.as_millis() / poll.as_millis()).max(1) + 1;
    for _ in 0..max_polls {
        let progress = match api.get(&path).await? {
            Ok(p) => p,
            Err(f) => return Err(format!("could not read the sync's progress: {f}")),
        };
        let n = |k: &str| progress[k].as_u64().unwrap_or(0);
        bar.set_length(n("total").max(n("followers")));
        bar.set_position(n("followers"));
        bar.set_message(format!(
            "{}: mapped {}, without unionid {}, unsubscribed {}, errors {}",
            progress["phase"].as_str().unwrap_or("?"),
            n("mapped"),
            n("without_unionid"),
            n("unsubscribed"),
            n("errors")
        ));
        match progress["state"].as_str() {
            Some("done") => {
                bar.finish();
                return Ok(progress);
            }
            Some("failed") => {
                bar.abandon();
                return Err(format!(
                    "the follower sync failed: {}; run the command again to resume it",
                    progress["last_error"].as_str().unwrap_or("unknown error")
                ));
            }
            _ => {}
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    bar.abandon();
    Err(format!(
        "stopped following after {:?}; the sync goes on (GET {path} shows it)",
        args.give_up_after
    ))
}

/// Recipients from a file: a JSON array of `{"openid": ...}` / `{"unionid": ...}`, or one a
/// line — `OPENID`, `openid:OPENID` or `unionid:UNIONID` (blank lines and `#` comments
/// skipped). The server checks each one; this only reads the file's shape.
pub fn read_recipients(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("the recipients file is not a JSON array: {e}"))?;
        return Ok(list);
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = match line.split_once(':') {
            Some(("unionid", u)) => json!({"unionid": u.trim()}),
            Some(("openid", o)) => json!({"openid": o.trim()}),
            // A mini program user of a uniform batch, posted to the official account.
            Some((appid, o)) if wxpush_shared::is_valid_appid(appid) => {
                json!({"openid": o.trim(), "appid": appid})
            }
            Some((other, _)) => {
                return Err(format!(
                    "line {}: `{other}:` is not openid:, unionid: or a mini program's APPID:",
                    n + 1
                ));
            }
            None => json!({"openid": line}),
        };
        out.push(r);
    }
    if out.is_empty() {
        return Err("the recipients file lists no one".into());
    }
    Ok(out)
}

/// Who a `wxpush batch send` goes to.
pub enum Audience {
    Recipients(Vec<Value>),
    Followers,
}

/// `wxpush batch send`.
pub struct BatchSend {
    pub appid: String,
    /// The message, without `to`.
    pub message: Value,
    pub audience: Audience,
    pub idempotency_key: Option<String>,
    /// Follow the batch to the end with a progress bar.
    pub watch: Option<Watch>,
}

/// How `--watch` follows a batch.
pub struct Watch {
    pub poll_every: Duration,
    pub give_up_after: Duration,
    pub show_progress: bool,
}

/// Creates the batch; with `watch`, follows it until it is done. Answers the creation (or
/// the last status).
pub async fn batch_send(api: &ApiClient, args: &BatchSend) -> Result<Value, String> {
    let mut body = json!({"message": args.message});
    match &args.audience {
        Audience::Recipients(list) => body["recipients"] = json!(list),
        Audience::Followers => body["audience"] = json!("followers"),
    }
    let path = format!("/v1/apps/{}/batches", args.appid);
    let created = match api
        .post_keyed(&path, &body, args.idempotency_key.as_deref())
        .await?
    {
        Ok(c) => c,
        Err(f) => return Err(format!("the batch was not created: {f}{}", listed(&f))),
    };
    let id = created["id"].as_str().unwrap_or_default().to_string();
    match &args.watch {
        None => Ok(created),
        Some(w) => batch_status(api, &args.appid, &id, Some(w)).await,
    }
}

/// The bad recipients a refusal lists, one a line.
fn listed(f: &ApiFailure) -> String {
    f.recipients
        .iter()
        .map(|(i, why)| format!("\n  recipient #{i}: {why}"))
        .collect()
}

/// The batch's status; with `watch`, polled with a progress bar until it is done.
pub async fn batch_status(
    api: &ApiClient,
    appid: &str,
    id: &str,
    watch: Option<&Watch>,
) -> Result<Value, String> {
    let path = format!("/v1/apps/{appid}/batches/{id}");
    let read = || async {
        match api.get(&path).await? {
            Ok(s) => Ok::<Value, String>(s),
            Err(f) => Err(format!("could not read batch {id}: {f}")),
        }
    };
    let Some(w) = watch else {
        return read().await;
    };
    let bar = if w.show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len}  {msg}")
            .map_err(|e| e.to_string())?,
    );
    let until = Instant::now() + w.give_up_after;
    let poll = w.poll_every.max(Duration::from_millis(10));
    let max_polls = (w.give_up_after.as_millis() / poll.as_millis()).max(1) + 1;
    for _ in 0..max_polls {
        let s = read().await?;
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        bar.set_length(n("total"));
        bar.set_position(n("sent") + n("failed") + n("unknown") + n("cancelled"));
        let mut msg = format!(
            "{}: sent {}, failed {}, unknown {}, cancelled {}",
            s["state"].as_str().unwrap_or("?"),
            n("sent"),
            n("failed"),
            n("unknown"),
            n("cancelled")
        );
        if let Some(reason) = s["pause_reason"].as_str() {
            msg.push_str(&format!(" (paused: {reason})"));
        }
        bar.set_message(msg);
        if s["done"] == true {
            bar.finish();
            return Ok(s);
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    bar.abandon();
    Err(format!(
        "stopped following after {:?}; the batch goes on (`wxpush batch status {appid} {id}` shows it)",
        w.give_up_after
    ))
}

/// `wxpush batch cancel`.
pub async fn batch_cancel(api: &ApiClient, appid: &str, id: &str) -> Result<Value, String> {
    match api
        .delete(&format!("/v1/apps/{appid}/batches/{id}"))
        .await?
    {
        Ok(s) => Ok(s),
        Err(f) => Err(format!("could not cancel batch {id}: {f}")),
    }
}

/// One line for a person: a batch's counts.
pub fn batch_summary(s: &Value) -> String {
    let n = |k: &str| s[k].as_i64().unwrap_or(0);
    format!(
        "batch {} ({}): total {}, sent {}, failed {}, unknown {}, cancelled {}, queued {}{}",
        s["id"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        n("total"),
        n("sent"),
        n("failed"),
        n("unknown"),
        n("cancelled"),
        n("queued"),
        if s["done"] == true { ", done" } else { "" }
    )
}
