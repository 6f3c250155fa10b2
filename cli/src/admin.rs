//! The admin commands: they talk to a running wxpush (`wxpush serve`, or the deployed API
//! through a signing proxy) over the same `/v1` API as every other client.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A `/v1` client with the bearer key.
pub struct ApiClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// An answer that is not 2xx: the status and wxpush's error body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl ApiClient {
    pub fn new(base: &str, key: &str) -> Result<ApiClient, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            key: key.trim().to_string(),
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

    /// `Err`: wxpush could not be reached; `Ok(Err)`: it answered with an error.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Result<Value, ApiFailure>, String> {
        let resp =
            req.bearer_auth(&self.key).send().await.map_err(|e| {
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
        Ok(Err(ApiFailure {
            status: status.as_u16(),
            code: field("code"),
            message: field("message"),
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
