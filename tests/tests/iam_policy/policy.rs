//! A function's policy in template.yaml, and the checks of what the code called against it.

use crate::recorder::Use;
use crate::template_yaml::template;
use std::collections::BTreeSet;

/// One Allow statement of a function's policy: its actions and `dynamodb:LeadingKeys`.
#[derive(Debug)]
pub struct Statement {
    actions: Vec<String>,
    leading_keys: Option<Vec<String>>,
}

pub fn policy(function: &str, next: &str) -> Vec<Statement> {
    let t = template();
    let section = t
        .split(&format!("\n  {function}:\n"))
        .nth(1)
        .unwrap()
        .split(next)
        .next()
        .unwrap();
    let list = |s: &str| -> Vec<String> {
        s.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|a| a.trim().trim_matches('"').to_string())
            .filter(|a| !a.is_empty())
            .collect()
    };
    section
        .split("Effect: Allow")
        .skip(1)
        .filter_map(|stmt| {
            let stmt = stmt.split("Effect:").next().unwrap();
            let action = stmt
                .lines()
                .find_map(|l| l.trim().strip_prefix("Action: "))?;
            let leading_keys = stmt
                .lines()
                .find_map(|l| l.trim().strip_prefix("dynamodb:LeadingKeys: "))
                .map(list);
            Some(Statement {
                actions: list(action),
                leading_keys,
            })
        })
        .filter(|s| s.actions != ["sts:AssumeRole"])
        .collect()
}

/// Every use allowed by `policy`; every action and key prefix of `policy` used, but for
/// `unexercised` (actions moto cannot show, each with the reason in the caller).
pub fn check(function: &str, policy: &[Statement], uses: &[Use], unexercised: &[&str]) {
    let allowed = |(action, pk): &Use| {
        policy.iter().any(|s| {
            s.actions.contains(action)
                && match (&s.leading_keys, pk) {
                    (None, _) => true,
                    (Some(prefixes), Some(pk)) => prefixes
                        .iter()
                        .any(|p| pk.starts_with(p.trim_end_matches('*'))),
                    (Some(_), None) => false,
                }
        })
    };
    let refused: BTreeSet<&Use> = uses.iter().filter(|u| !allowed(u)).collect();
    assert!(
        refused.is_empty(),
        "{function}: the code calls what its policy does not allow: {refused:?}"
    );
    let used: BTreeSet<&str> = uses.iter().map(|(a, _)| a.as_str()).collect();
    let mut unused = BTreeSet::new();
    for s in policy {
        for a in &s.actions {
            if !used.contains(a.as_str()) && !unexercised.contains(&a.as_str()) {
                unused.insert(a.clone());
            }
        }
        for prefix in s.leading_keys.iter().flatten() {
            let p = prefix.trim_end_matches('*');
            let hit = uses.iter().any(|(a, pk)| {
                s.actions.contains(a) && pk.as_deref().is_some_and(|k| k.starts_with(p))
            });
            let unused_key = format!("{:?} on {prefix}", s.actions);
            if !hit && !unexercised.contains(&unused_key.as_str()) {
                unused.insert(unused_key);
            }
        }
    }
    assert!(
        unused.is_empty(),
        "{function}: its policy allows what the code never calls: {unused:?}"
    );
}

/// Every resource a function's calls name is one its policy allows: parameters under the
/// prefix (with `names`, only those parameters, read by name; else the path), the jobs queue,
/// (with `bus`) the stack's bus and (with `ip_set`) the callback's WAF IP set, by its name.
pub fn check_resources(
    function: &str,
    resources: &[(String, String)],
    prefix: &str,
    names: Option<&[&str]>,
    queue_url: &str,
    bus: Option<&str>,
    ip_set: Option<&str>,
) {
    for (op, resource) in resources {
        match (op.as_str(), names) {
            ("GetParameters", Some(names)) => assert!(
                resource.starts_with(&format!("{prefix}/apps/"))
                    && names.iter().any(|n| resource.ends_with(&format!("/{n}"))),
                "{function} reads {resource}"
            ),
            ("GetParametersByPath", None) => assert!(
                resource.starts_with(&format!("{prefix}/apps")),
                "{function} reads {resource}"
            ),
            ("SendMessage" | "SendMessageBatch", _) => assert_eq!(resource, queue_url),
            ("PutEvents", _) if bus.is_some() => assert_eq!(
                Some(resource.as_str()),
                bus,
                "events go to the stack's bus only"
            ),
            ("GetIPSet" | "UpdateIPSet", _) if ip_set.is_some() => assert_eq!(
                Some(resource.as_str()),
                ip_set,
                "WeChat's addresses go to the callback's IP set only"
            ),
            (other, _) => panic!("{function}: unexpected {other} on {resource}"),
        }
    }
}
