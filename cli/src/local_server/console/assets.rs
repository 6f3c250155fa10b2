//! The console's files, embedded in the binary at build time (no Node, no build step): one
//! HTML page, one style sheet and the page's JavaScript modules.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use wxpush_shared::ApiError;
use wxpush_shared::http::error_response;

/// (name, Content-Type, contents).
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("assets/index.html")),
    ("console.css", CSS, include_str!("assets/console.css")),
    ("main.js", JS, include_str!("assets/main.js")),
    ("api.js", JS, include_str!("assets/api.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("phones.js", JS, include_str!("assets/phones.js")),
    ("chat.js", JS, include_str!("assets/chat.js")),
    ("wxpush.js", JS, include_str!("assets/wxpush.js")),
    ("lists.js", JS, include_str!("assets/lists.js")),
    ("rows.js", JS, include_str!("assets/rows.js")),
    ("send.js", JS, include_str!("assets/send.js")),
    ("tools.js", JS, include_str!("assets/tools.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The file `name`, or 404 `not_found`.
pub(super) fn serve(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => {
            let mut resp = (*body).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            resp
        }
        None => {
            let err = ApiError::NotFound(format!(
                "/console/{}",
                name.chars().take(100).collect::<String>()
            ));
            error_response(&err).map(axum::body::Body::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_has_inline_script_or_html_injection() {
        for (name, _, body) in FILES {
            if name.ends_with(".html") {
                // Scripts only by src; no inline style, no `javascript:` URL.
                for bad in ["<script>", "<style", "style=", "javascript:"] {
                    assert!(!body.contains(bad), "{name} contains {bad:?}");
                }
                assert!(!has_event_attribute(body), "{name} has an on...= attribute");
            }
            if name.ends_with(".js") {
                for bad in [
                    "innerHTML",
                    "outerHTML",
                    "insertAdjacentHTML",
                    "document.write",
                    "eval(",
                    "new Function",
                ] {
                    assert!(!body.contains(bad), "{name} contains {bad}");
                }
            }
        }
    }

    /// An inline event handler: ` on` + letters + `=`.
    fn has_event_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            letters > 0 && rest[letters..].trim_start().starts_with('=')
        })
    }

    #[test]
    fn the_event_attribute_check_finds_one() {
        assert!(has_event_attribute("<img src=x onerror=alert(1)>"));
        assert!(has_event_attribute("<body onload = go()>"));
        assert!(!has_event_attribute("<p>one of them</p>"));
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        for (name, _, body) in FILES {
            for line in body
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let file = line
                    .rsplit_once("\"./")
                    .map(|(_, f)| f.trim_end_matches(['"', ';']));
                let file = file.expect("imports name ./file.js");
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == file),
                    "{name} imports {file}"
                );
            }
        }
    }
}
