//! One page of a list route (`GET /v1/apps/{appid}/messages`, ...): the request with its
//! `?limit=` and `?cursor=`, printed, and the line that says how to see the next page.

use super::Operator;
use crate::args::ListArgs;
use crate::client::{ApiClient, answer};
use crate::error::CliError;
use serde_json::Value;

/// Prints one page of `GET /v1/apps/{appid}/{what}` for `args`: the JSON with `--json`, else
/// `summary` of it.
pub async fn run(
    operator: &Operator,
    args: &ListArgs,
    what: &str,
    summary: fn(&Value, &ListArgs) -> String,
) -> Result<(), CliError> {
    let api = operator.api().await?;
    let page = fetch(&api, &format!("/v1/apps/{}/{what}", args.appid), args).await?;
    operator.print(&page, |p| summary(p, args));
    Ok(())
}

/// `GET {path}?limit=&cursor=` for `args`; the API checks both (422 names the one at fault).
pub async fn fetch(api: &ApiClient, path: &str, args: &ListArgs) -> Result<Value, CliError> {
    let mut url =
        reqwest::Url::parse("http://list.invalid/").map_err(|e| CliError::Usage(e.to_string()))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("limit", &args.limit.to_string());
        if let Some(cursor) = &args.cursor {
            query.append_pair("cursor", cursor);
        }
    }
    let query = url.query().unwrap_or_default();
    answer(api.get(&format!("{path}?{query}"))).await
}

/// A page for a person: `line` of each item of `page[what]` (`no {what}` when there is
/// none), then the command (`wxpush {command} ...`) that shows the page after.
pub fn page_lines(
    page: &Value,
    what: &str,
    command: &str,
    args: &ListArgs,
    line: fn(&Value) -> String,
) -> String {
    let items = page[what].as_array().cloned().unwrap_or_default();
    let mut lines: Vec<String> = items.iter().map(line).collect();
    if lines.is_empty() {
        lines.push(format!("no {what}"));
    }
    lines.extend(next_page_hint(page, command, args));
    lines.join("\n")
}

/// The hint after a page: the command that shows the next one, or nothing on the last.
fn next_page_hint(page: &Value, command: &str, args: &ListArgs) -> Option<String> {
    page["next_cursor"].as_str().map(|cursor| {
        format!(
            "older: wxpush {command} {} --limit {} --cursor {cursor}",
            args.appid, args.limit
        )
    })
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC (`-` when missing).
pub fn utc(secs: Option<i64>) -> String {
    let Some(secs) = secs else {
        return "-".into();
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The calendar date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(utc(Some(1_700_000_000)), "2023-11-14 22:13:20");
        assert_eq!(utc(Some(951_782_400)), "2000-02-29 00:00:00");
        assert_eq!(utc(None), "-");
    }
}
