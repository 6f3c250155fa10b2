//! The `/v1` router: a method and a path to one of the API's routes, or the 404/405 of the
//! API (docs/api.md).
//!
//! Paths are matched exactly as the caller sent them (on AWS, API Gateway's `rawPath`): no
//! trailing `/` trimmed, no empty segment skipped, no `.`/`..` resolved, nothing
//! percent-decoded, letter case kept. API Gateway authorises a request against the ARN of
//! the path as sent and its `ANY /v1/{proxy+}` route forwards any path here, so a path that
//! IAM sees as another resource must never be served as the route a policy names
//! (`tests/tests/route_iam.rs`).

use http::Method;
use wxpush_shared::ApiError;
use wxpush_shared::batch::is_batch_id;
use wxpush_shared::identity::is_unionid;
use wxpush_shared::templates::is_template_id;
use wxpush_shared::user_state::is_openid;

/// One of the API's routes, with its path ids.
pub(crate) enum Route<'a> {
    Token { appid: &'a str },
    Send { appid: &'a str },
    MessageList { appid: &'a str },
    Message { appid: &'a str, id: &'a str },
    Login { appid: &'a str },
    User { unionid: &'a str },
    AppUser { appid: &'a str },
    UserView { appid: &'a str, openid: &'a str },
    SyncStart { appid: &'a str },
    SyncProgress { appid: &'a str },
    BatchCreate { appid: &'a str },
    BatchList { appid: &'a str },
    EventList { appid: &'a str },
    BatchStatus { appid: &'a str, id: &'a str },
    BatchCancel { appid: &'a str, id: &'a str },
    Quota { appid: &'a str },
    TemplateList { appid: &'a str },
    TemplateAdd { appid: &'a str },
    TemplateDelete { appid: &'a str, id: &'a str },
    TemplateBlocked { appid: &'a str, id: &'a str },
}

/// A message id as wxpush issues them: `msg_` and 32 lowercase hex digits.
fn is_message_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("msg_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Path ids of the wrong shape: 404 (`unknown_app`, `template_not_found`, or `not_found`)
/// before they reach a store key.
fn check_path_ids(segments: &[&str]) -> Result<(), ApiError> {
    let short = |id: &str| id.chars().take(40).collect::<String>();
    let not_a = |what: &str, id: &str, shape: &str| {
        Err(ApiError::NotFound(format!(
            "{what} {}: not {shape}",
            short(id)
        )))
    };
    match segments {
        ["v1", "apps", appid, ..] if !wxpush_shared::is_valid_appid(appid) => {
            Err(wxpush_shared::secrets::ConfigError::UnknownApp {
                appid: short(appid),
            }
            .into())
        }
        ["v1", "apps", _, "messages", id] if !is_message_id(id) => {
            not_a("message", id, "a wxpush message id")
        }
        ["v1", "apps", _, "batches", id] if !is_batch_id(id) => {
            not_a("batch", id, "a wxpush batch id")
        }
        ["v1", "apps", _, "templates", id, ..] if !is_template_id(id) => Err(ApiError::Missing {
            code: "template_not_found",
            message: format!("template {}: not a WeChat template id", short(id)),
        }),
        ["v1", "apps", _, "users", openid] if !is_openid(openid) => {
            not_a("user", openid, "an openid")
        }
        ["v1", "users", unionid] if !is_unionid(unionid) => not_a("user", unionid, "a unionid"),
        _ => Ok(()),
    }
}

/// Matches the path exactly; `Err` is a 404 or a 405 with the methods that are allowed. Path
/// ids of the wrong shape are 404 here, before they reach a store key.
pub(crate) fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let not_found = || ApiError::NotFound(path.chars().take(200).collect());
    // Exactly the segments sent: a trailing `/` or a `//` is an empty segment, no route.
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(not_found()),
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    check_path_ids(&segments)?;
    let (route, allowed) = matched(method, &segments).ok_or_else(not_found)?;
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        return Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allow: allowed,
        });
    }
    Ok(route)
}

/// The route of `segments` for `method`, and the methods its path allows (the `Allow`
/// header of a 405); `None` when no route has this path.
fn matched<'a>(method: &Method, segments: &[&'a str]) -> Option<(Route<'a>, &'static str)> {
    let post = method == Method::POST;
    Some(match *segments {
        ["v1", "apps", appid, "token"] => (Route::Token { appid }, "GET"),
        ["v1", "apps", appid, "messages"] if post => (Route::Send { appid }, "GET, POST"),
        ["v1", "apps", appid, "messages"] => (Route::MessageList { appid }, "GET, POST"),
        ["v1", "apps", appid, "messages", id] => (Route::Message { appid, id }, "GET"),
        ["v1", "apps", appid, "sessions"] => (Route::Login { appid }, "POST"),
        ["v1", "users", unionid] => (Route::User { unionid }, "GET"),
        ["v1", "apps", appid, "users"] => (Route::AppUser { appid }, "GET"),
        ["v1", "apps", appid, "users", openid] => (Route::UserView { appid, openid }, "GET"),
        ["v1", "apps", appid, "followers", "sync"] if post => {
            (Route::SyncStart { appid }, "GET, POST")
        }
        ["v1", "apps", appid, "followers", "sync"] => (Route::SyncProgress { appid }, "GET, POST"),
        ["v1", "apps", appid, "batches"] if post => (Route::BatchCreate { appid }, "GET, POST"),
        ["v1", "apps", appid, "batches"] => (Route::BatchList { appid }, "GET, POST"),
        ["v1", "apps", appid, "events"] => (Route::EventList { appid }, "GET"),
        ["v1", "apps", appid, "batches", id] if method == Method::DELETE => {
            (Route::BatchCancel { appid, id }, "GET, DELETE")
        }
        ["v1", "apps", appid, "batches", id] => (Route::BatchStatus { appid, id }, "GET, DELETE"),
        ["v1", "apps", appid, "quota"] => (Route::Quota { appid }, "GET"),
        ["v1", "apps", appid, "templates"] if post => (Route::TemplateAdd { appid }, "GET, POST"),
        ["v1", "apps", appid, "templates"] => (Route::TemplateList { appid }, "GET, POST"),
        ["v1", "apps", appid, "templates", id] => (Route::TemplateDelete { appid, id }, "DELETE"),
        ["v1", "apps", appid, "templates", id, "blocked"] => {
            (Route::TemplateBlocked { appid, id }, "GET")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert!(matches!(
            route(&Method::GET, "/v1/apps/wx0123456789abcdef/token"),
            Ok(Route::Token {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(&Method::POST, "/v1/apps/wx0123456789abcdef/token"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::POST, "/v1/apps/wx0123456789abcdef/followers/sync"),
            Ok(Route::SyncStart {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/apps/wx0123456789abcdef/followers/sync"),
            Ok(Route::SyncProgress {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(
                &Method::DELETE,
                "/v1/apps/wx0123456789abcdef/followers/sync"
            ),
            Err(ApiError::MethodNotAllowed {
                allow: "GET, POST",
                ..
            })
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/apps/wx0123456789abcdef"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/v2/apps/wx0123456789abcdef/token"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn path_ids_of_the_wrong_shape_never_reach_a_store_key() {
        let long = format!("/v1/apps/{}/token", "a".repeat(5000));
        assert!(matches!(
            route(&Method::GET, &long),
            Err(ApiError::UnknownApp { .. })
        ));
        let app = "/v1/apps/wx0123456789abcdef";
        assert!(matches!(
            route(
                &Method::GET,
                &format!("{app}/messages/{}", "x".repeat(3000))
            ),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(
                &Method::GET,
                &format!("{app}/messages/msg_{}", "0a".repeat(16))
            ),
            Ok(Route::Message { .. })
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/users/o6_bmasdasdsad6_2sgVt7hMZOPfL"),
            Ok(Route::User { .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("/v1/users/{}", "u".repeat(65))),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn messages_are_sent_with_post_and_listed_with_get() {
        let messages = "/v1/apps/wx0123456789abcdef/messages";
        assert!(matches!(
            route(&Method::POST, messages),
            Ok(Route::Send { .. })
        ));
        assert!(matches!(
            route(&Method::GET, messages),
            Ok(Route::MessageList {
                appid: "wx0123456789abcdef"
            })
        ));
        assert!(matches!(
            route(&Method::DELETE, messages),
            Err(ApiError::MethodNotAllowed {
                allow: "GET, POST",
                ..
            })
        ));
    }

    #[test]
    fn batches_and_events_are_listed_with_get() {
        let app = "/v1/apps/wx0123456789abcdef";
        assert!(matches!(
            route(&Method::GET, &format!("{app}/batches")),
            Ok(Route::BatchList { .. })
        ));
        assert!(matches!(
            route(&Method::POST, &format!("{app}/batches")),
            Ok(Route::BatchCreate { .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/events")),
            Ok(Route::EventList { .. })
        ));
        assert!(matches!(
            route(&Method::POST, &format!("{app}/events")),
            Err(ApiError::MethodNotAllowed { allow: "GET", .. })
        ));
    }

    #[test]
    fn quota_and_template_routes() {
        let app = "/v1/apps/wx0123456789abcdef";
        assert!(matches!(
            route(&Method::GET, &format!("{app}/quota")),
            Ok(Route::Quota { .. })
        ));
        assert!(matches!(
            route(&Method::POST, &format!("{app}/templates")),
            Ok(Route::TemplateAdd { .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/templates")),
            Ok(Route::TemplateList { .. })
        ));
        assert!(matches!(
            route(&Method::DELETE, &format!("{app}/templates/Ab-c_1")),
            Ok(Route::TemplateDelete { id: "Ab-c_1", .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/templates/Ab-c_1")),
            Err(ApiError::MethodNotAllowed {
                allow: "DELETE",
                ..
            })
        ));
        assert!(matches!(
            route(&Method::DELETE, &format!("{app}/templates/bad%20id")),
            Err(ApiError::Missing { .. })
        ));
    }

    #[test]
    fn user_view_and_blocked_routes() {
        let app = "/v1/apps/wx0123456789abcdef";
        assert!(matches!(
            route(
                &Method::GET,
                &format!("{app}/users/o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
            ),
            Ok(Route::UserView {
                openid: "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
                ..
            })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/users/{}", "o".repeat(129))),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(&Method::DELETE, &format!("{app}/users/fan")),
            Err(ApiError::MethodNotAllowed { allow: "GET", .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/templates/Ab-c_1/blocked")),
            Ok(Route::TemplateBlocked { id: "Ab-c_1", .. })
        ));
        assert!(matches!(
            route(&Method::GET, &format!("{app}/templates/bad%20id/blocked")),
            Err(ApiError::Missing { .. })
        ));
        assert!(matches!(
            route(&Method::POST, &format!("{app}/templates/Ab-c_1/blocked")),
            Err(ApiError::MethodNotAllowed { allow: "GET", .. })
        ));
    }

    #[test]
    fn paths_match_exactly() {
        let token = "/v1/apps/wx0123456789abcdef/token";
        assert!(matches!(
            route(&Method::GET, token),
            Ok(Route::Token { .. })
        ));
        for path in [
            format!("{token}/"),
            format!("{token}//"),
            format!("/{token}"),
            "/v1/apps//token".to_string(),
            "/v1//apps/wx0123456789abcdef/token".to_string(),
            "/v1/apps/wx0123456789abcdef/./token".to_string(),
            "/v1/apps/wx0123456789abcdef/messages/../token".to_string(),
            "/v1/apps/wx0123456789abcdef%2Ftoken".to_string(),
            "/v1/apps/wx0123456789abcdef/t%6Fken".to_string(),
            "/v1/apps/wx0123456789abcdef/TOKEN".to_string(),
            "/V1/apps/wx0123456789abcdef/token".to_string(),
            "/v1/apps/wx0123456789abcdef\\token".to_string(),
            "v1/apps/wx0123456789abcdef/token".to_string(),
            String::new(),
        ] {
            // 404: no such route, or (a segment where the appid goes) no such app.
            match route(&Method::GET, &path) {
                Err(ApiError::NotFound(_) | ApiError::UnknownApp { .. }) => {}
                other => panic!("{path}: {}", other.is_ok()),
            }
        }
    }
}
