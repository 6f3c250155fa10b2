//! What a send checks and takes before WeChat is called, from what wxpush knows of the user
//! (docs/sending.md, Know before you send): a customer-service message needs the user's
//! window open and takes one message of it (else its `fallback` goes instead, or it is
//! refused `outside_service_window`); a subscribe message takes one of the user's
//! acceptances (`require_grant`: refused `no_grant` without one); every message counts
//! against the app's daily cap (`recipient_capped` over it). What was taken is given back
//! when the message never reaches the user.

use super::route::Routed;
use super::service::Sender;
use super::validate::{MessageKind, SendRequest};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::templates::TemplateKind;
use crate::user_state::{
    CapLimits, CapOutcome, CapTake, GrantTake, Interaction, ServiceWindow, WindowTake,
};
use http::StatusCode;
use serde_json::json;
use tracing::warn;

/// What a send took before WeChat, to give back if the message never reaches the user.
#[derive(Clone, Debug, Default)]
pub(super) struct Taken {
    window: Option<Interaction>,
    /// The template whose acceptance was taken.
    grant: Option<String>,
    cap: Option<CapTake>,
}

/// Why a custom message's fallback goes instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FallbackReason {
    /// wxpush knew the window closed (or used up): the custom message was never sent.
    WindowClosed,
    /// WeChat refused the custom message: 45015 (out of the window) or 45047 (allowance used
    /// up).
    WeChat45015,
    WeChat45047,
}

impl FallbackReason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            FallbackReason::WindowClosed => "outside_service_window",
            FallbackReason::WeChat45015 => "wechat_45015",
            FallbackReason::WeChat45047 => "wechat_45047",
        }
    }

    pub(super) fn parse(s: &str) -> Option<FallbackReason> {
        [
            FallbackReason::WindowClosed,
            FallbackReason::WeChat45015,
            FallbackReason::WeChat45047,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What goes out: the message asked for, or its fallback and why.
pub(super) struct Plan<'a> {
    pub(super) message: &'a SendRequest,
    pub(super) fallback: Option<FallbackReason>,
    pub(super) taken: Taken,
}

impl<'a> Plan<'a> {
    /// What a takeover of an `attempting` claim sends again: what its holder chose, with
    /// nothing taken (the holder took it, and it may have been delivered).
    pub(super) fn resumed(req: &'a SendRequest, fallback: Option<FallbackReason>) -> Plan<'a> {
        let message = match (fallback, req.fallback.as_deref()) {
            (Some(_), Some(f)) => f,
            _ => req,
        };
        Plan {
            message,
            fallback: fallback.filter(|_| req.fallback.is_some()),
            taken: Taken::default(),
        }
    }

    /// What was taken, less the window's allowance: after WeChat's 45015 or 45047 that
    /// allowance is spent whatever wxpush counted.
    pub(super) fn taken_but_window(&self) -> Taken {
        Taken {
            window: None,
            ..self.taken.clone()
        }
    }

    /// Whether WeChat's refusal `errcode` of this plan's message sends the fallback instead.
    pub(super) fn falls_back_on(&self, req: &SendRequest, errcode: Option<i64>) -> bool {
        self.fallback.is_none() && req.fallback.is_some() && matches!(errcode, Some(45015 | 45047))
    }
}

fn withheld(
    code: &'static str,
    status: StatusCode,
    message: String,
    state: (&'static str, serde_json::Value),
) -> ApiError {
    ApiError::Withheld {
        code,
        status,
        message,
        state: vec![state],
    }
}

fn outside_window(routed: &Routed, window: &ServiceWindow, now: i64) -> ApiError {
    let why = if window.allowances.iter().any(|a| now < a.closes_at) {
        "its allowance is used up"
    } else {
        "no interaction opened it"
    };
    withheld(
        "outside_service_window",
        StatusCode::CONFLICT,
        format!(
            "app {}: the customer-service window of {} is closed ({why}); send a template or subscribe message, or give a \"fallback\"",
            routed.via.appid, routed.openid
        ),
        ("service_window", window.to_json(now)),
    )
}

impl Sender {
    /// Decides what goes out for `req` and takes what it uses. An error is a refusal before
    /// WeChat, with nothing taken.
    pub(super) async fn plan<'a>(
        &self,
        req: &'a SendRequest,
        routed: &Routed,
    ) -> Result<Plan<'a>, ApiError> {
        let now = now_unix();
        let mut plan = Plan {
            message: req,
            fallback: None,
            taken: Taken::default(),
        };
        if req.kind == MessageKind::Custom {
            let (via, openid) = (routed.via.appid.as_str(), routed.openid.as_str());
            match self.users.take_window(via, openid, now).await? {
                WindowTake::Unknown => {}
                WindowTake::Taken(kind) => plan.taken.window = Some(kind),
                WindowTake::Closed(window) => match req.fallback.as_deref() {
                    Some(f) => {
                        plan.message = f;
                        plan.fallback = Some(FallbackReason::WindowClosed);
                    }
                    None => return Err(outside_window(routed, &window, now)),
                },
            }
        }
        if let Err(e) = self
            .take_for(plan.message, req.cap, routed, &mut plan.taken, now)
            .await
        {
            self.give_back(routed, &plan.taken, None).await;
            return Err(e);
        }
        Ok(plan)
    }

    /// The fallback of `plan` after WeChat refused its message with `errcode` (45015,
    /// 45047): what the custom message took is given back (its window allowance stays used,
    /// as WeChat says it is), and the fallback takes its own.
    pub(super) async fn fall_back<'a>(
        &self,
        req: &'a SendRequest,
        routed: &Routed,
        plan: Plan<'a>,
        errcode: i64,
    ) -> Result<Plan<'a>, ApiError> {
        self.give_back(routed, &plan.taken_but_window(), None).await;
        let Some(f) = req.fallback.as_deref() else {
            return Err(ApiError::Internal("a fallback without a fallback".into()));
        };
        let mut next = Plan {
            message: f,
            fallback: Some(if errcode == 45015 {
                FallbackReason::WeChat45015
            } else {
                FallbackReason::WeChat45047
            }),
            taken: Taken::default(),
        };
        self.take_for(f, req.cap, routed, &mut next.taken, now_unix())
            .await?;
        Ok(next)
    }

    /// A subscribe message's acceptance, then the daily cap, taken for `message`; on an
    /// error what was taken so far is in `taken` (the caller gives it back).
    async fn take_for(
        &self,
        message: &SendRequest,
        counted: bool,
        routed: &Routed,
        taken: &mut Taken,
        now: i64,
    ) -> Result<(), ApiError> {
        let (via, openid) = (routed.via.appid.as_str(), routed.openid.as_str());
        if let (MessageKind::Subscribe | MessageKind::OaSubscribe, Some(t)) =
            (message.kind, message.template_id())
        {
            let long_term = self
                .templates
                .known(via, t)
                .await
                .is_some_and(|info| info.kind == TemplateKind::SubscribeLongTerm);
            match self
                .users
                .take_grant(via, openid, t, long_term, now)
                .await?
            {
                GrantTake::Taken => taken.grant = Some(t.to_string()),
                GrantTake::On => {}
                GrantTake::None(grant) if message.require_grant => {
                    let subscription = match grant {
                        Some(g) => g.to_json(long_term),
                        None => {
                            json!({"template_id": t, "kind": if long_term { "long_term" } else { "once" }})
                        }
                    };
                    return Err(withheld(
                        "no_grant",
                        StatusCode::CONFLICT,
                        format!(
                            "app {via}: {openid} has no known acceptance of template {t} (\"require_grant\": true); nothing was sent"
                        ),
                        ("subscription", subscription),
                    ));
                }
                GrantTake::None(_) => {}
            }
        }
        let limits = CapLimits::of(&routed.via.daily_caps, message.template_id());
        match self
            .users
            .take_cap(via, openid, message.template_id(), limits, !counted, now)
            .await?
        {
            CapOutcome::Taken(t) => taken.cap = Some(t),
            CapOutcome::Capped(cap) => {
                return Err(withheld(
                    "recipient_capped",
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "app {via}: {openid} reached the daily cap of messages; nothing was sent (\"cap\": false exempts one message)"
                    ),
                    ("cap", cap),
                ));
            }
        }
        Ok(())
    }

    /// Gives back what a send took for a message that never reached the user. `none_left`:
    /// WeChat answered 43101 for this template, so its grant is cleared (taken or not). A
    /// failure is only logged: the count is then one higher than what went out, never lower.
    pub(super) async fn give_back(&self, routed: &Routed, taken: &Taken, none_left: Option<&str>) {
        let (via, openid) = (routed.via.appid.as_str(), routed.openid.as_str());
        let now = now_unix();
        let mut results = Vec::new();
        if let Some(kind) = taken.window {
            results.push(self.users.give_back_window(via, openid, kind, now).await);
        }
        if let Some(t) = taken.grant.as_deref().or(none_left) {
            let took = taken.grant.is_some();
            let cleared = none_left.is_some();
            results.push(
                self.users
                    .give_back_grant(via, openid, t, took, cleared, now)
                    .await,
            );
        }
        if let Some(cap) = &taken.cap {
            results.push(self.users.give_back_cap(via, openid, cap, now).await);
        }
        for e in results.into_iter().filter_map(Result::err) {
            warn!(appid = via, error = %e, "could not give back what an unsent message took");
        }
    }
}
