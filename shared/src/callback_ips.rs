//! The addresses WeChat pushes callbacks from (`GET /cgi-bin/getcallbackip`), for the
//! callback's allow-lists: the WAF IP set the token refresh keeps current on AWS, and
//! `wxpush serve --callback-allow-wechat` locally.
//!
//! WeChat lists single IPv4 addresses and CIDRs (`"101.226.103.0/25"`, `"1.2.3.4"`) and
//! advises fetching the list again every day rather than keeping an old copy; any app's
//! access_token can ask for it.

use crate::token::TokenManager;
use crate::token_retry::{WeChatOrApi, with_token};
use ipnet::IpNet;
use std::net::IpAddr;
use tracing::warn;

/// WeChat's entries as networks: a single address becomes a /32 (/128), a CIDR keeps its
/// prefix with its host bits cleared. Entries that are neither are returned apart.
pub fn parse_list(entries: &[String]) -> (Vec<IpNet>, Vec<String>) {
    let mut nets = Vec::with_capacity(entries.len());
    let mut rejected = Vec::new();
    for entry in entries {
        match parse_entry(entry) {
            Some(net) => nets.push(net),
            None => rejected.push(entry.clone()),
        }
    }
    nets.sort();
    nets.dedup();
    (nets, rejected)
}

/// One address or CIDR (`1.2.3.4`, `101.226.103.0/25`), host bits cleared.
pub fn parse_entry(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Some(net.trunc());
    }
    entry.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Whether `ip` is inside one of `nets` (an IPv4 address seen as IPv6, `::ffff:a.b.c.d`,
/// counts as the IPv4 address).
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// WeChat's current list, asked with the first configured app whose token works (in appid
/// order; a refused token is refreshed once, as for every call). An empty list is an error:
/// an allow-list built from it would refuse WeChat itself.
pub async fn fetch(tokens: &TokenManager) -> Result<Vec<IpNet>, String> {
    let mut appids = tokens
        .secrets()
        .list_apps()
        .await
        .map_err(|e| format!("could not list apps: {e}"))?;
    appids.sort();
    let mut failures = Vec::new();
    for appid in &appids {
        let answer = with_token(tokens, appid, |wechat, token| async move {
            wechat.callback_ips(&token).await
        })
        .await;
        let entries = match answer {
            Ok(entries) => entries,
            Err(WeChatOrApi::WeChat(e)) => {
                failures.push(format!("{appid}: {e}"));
                continue;
            }
            Err(WeChatOrApi::Api(e)) => {
                failures.push(format!("{appid}: {e}"));
                continue;
            }
        };
        let (nets, rejected) = parse_list(&entries);
        if !rejected.is_empty() {
            warn!(
                appid,
                ?rejected,
                "getcallbackip listed entries that are not addresses"
            );
        }
        if nets.is_empty() {
            failures.push(format!("{appid}: getcallbackip listed no address"));
            continue;
        }
        return Ok(nets);
    }
    if appids.is_empty() {
        return Err("no app is configured to ask getcallbackip with".into());
    }
    Err(format!(
        "getcallbackip failed for every app: {}",
        failures.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_networks() {
        let (nets, rejected) = parse_list(&[
            "101.226.103.0/25".into(),
            "1.2.3.4".into(),
            " 10.1.2.3/24 ".into(),
            "1.2.3.4".into(),
            "not-an-ip".into(),
            "1.2.3.4/33".into(),
        ]);
        let shown: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["1.2.3.4/32", "10.1.2.0/24", "101.226.103.0/25"]);
        assert_eq!(rejected, ["not-an-ip", "1.2.3.4/33"]);
        assert!(contains(&nets, "101.226.103.127".parse().unwrap()));
        assert!(!contains(&nets, "101.226.103.128".parse().unwrap()));
        assert!(contains(&nets, "::ffff:1.2.3.4".parse().unwrap()));
        assert!(!contains(&nets, "1.2.3.5".parse().unwrap()));
    }
}
