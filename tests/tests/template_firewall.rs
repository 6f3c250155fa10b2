//! template.yaml's callback firewall (`CallbackFirewall`): off by default; when on, the
//! callback's own regional REST API behind a WAF web ACL (one rule: a per-address rate limit
//! exempting WeChat's addresses, or WeChat's addresses only), WeChat's addresses in an IP set
//! only the token refresh may write. cfn-lint runs in template/main.rs.

#[path = "common/template_yaml.rs"]
mod template_yaml;

use template_yaml::{section, statements, template};

/// Off by default; when on, every resource conditional, and the callback on a regional REST
/// API: GET and POST /wechat/{appid}, public, straight to the callback function.
#[test]
fn the_callback_firewall_is_optional_and_puts_the_callback_on_its_own_rest_api() {
    let t = template();
    let param = section(&t, "\n  CallbackFirewall:\n", "\n  CallbackRateLimit:");
    assert!(
        param.contains("Default: none")
            && param.contains("AllowedValues: [none, rate-limit, wechat-only]")
    );
    let limit = section(&t, "\n  CallbackRateLimit:\n", "\n  HttpApiCallback:");
    assert!(limit.contains("MinValue: 10"), "WAF's lowest rate limit");
    let http = section(&t, "\n  HttpApiCallback:\n", "\n  KmsKeyArn:");
    assert!(http.contains("Default: open") && http.contains("AllowedValues: [open, closed]"));
    assert!(t.contains("HasCallbackFirewall: !Not [!Equals [!Ref CallbackFirewall, none]]"));
    assert!(t.contains("CallbackWeChatOnly: !Equals [!Ref CallbackFirewall, wechat-only]"));
    // Closing the HTTP API's callback needs the REST API's.
    let rule = section(&t, "ClosedHttpApiCallbackNeedsFirewall:", "\n  Subnets");
    assert!(rule.contains("RuleCondition: !Equals [!Ref HttpApiCallback, closed]"));
    assert!(rule.contains("!Not [!Equals [!Ref CallbackFirewall, none]]"));

    // Every resource of the firewall exists only when it is on.
    let block = section(&t, "\n  CallbackRestApi:\n", "\n  CallbackLogGroup:");
    let resources: Vec<&str> = block
        .split("\n\n  ")
        .filter(|r| r.contains("    Type: "))
        .collect();
    assert_eq!(resources.len(), 12, "{resources:#?}");
    for r in &resources {
        assert!(r.contains("    Condition: HasCallbackFirewall\n"), "{r}");
    }
    assert!(
        block.contains("Types: [REGIONAL]"),
        "regional: WAF's only kind in China"
    );
    assert!(
        !t.contains("AWS::CloudFront"),
        "no CloudFront: in China it needs an ICP licence"
    );
    // Exactly GET and POST /wechat/{appid}, public, straight to the callback function.
    let methods: Vec<&str> = block
        .split("Type: AWS::ApiGateway::Method")
        .skip(1)
        .collect();
    assert_eq!(methods.len(), 2);
    for (m, verb) in methods.iter().zip(["GET", "POST"]) {
        assert!(m.contains(&format!("HttpMethod: {verb}\n")), "{m}");
        assert!(m.contains("ResourceId: !Ref CallbackRestAppid"));
        assert!(m.contains("AuthorizationType: NONE") && m.contains("Type: AWS_PROXY"));
        assert!(m.contains("functions/${CallbackFunction.Arn}/invocations"));
    }
    assert!(block.contains("PathPart: wechat") && block.contains("PathPart: \"{appid}\""));
    let permission = section(&t, "\n  CallbackRestPermission:\n", "\n\n");
    assert!(permission.contains("Principal: apigateway.amazonaws.com"));
    assert!(permission.contains("${CallbackRestApi}/${CallbackRestStage}/*/wechat/*\""));
    let stage = section(&t, "\n  CallbackRestStage:\n", "\n\n");
    assert!(stage.contains("ThrottlingRateLimit: !Ref CallbackThrottleRate"));
}

/// One WAF rule either way, on the REST API's stage; WeChat's addresses in an IP set only the
/// token refresh may read and write; WeChat's URL is the REST API's when on.
#[test]
fn the_web_acl_limits_every_address_but_wechats_or_lets_only_wechat_through() {
    let t = template();
    // The web ACL: one rule, 429 past the limit for every address but WeChat's, or WeChat's
    // addresses only; associated with the REST API's stage.
    let acl = section(&t, "\n  CallbackWebAcl:\n", "\n\n");
    assert!(acl.contains("Scope: REGIONAL"));
    assert!(acl.contains("DefaultAction: !If [CallbackWeChatOnly, {Block: {}}, {Allow: {}}]"));
    assert_eq!(
        acl.matches("Priority: 0").count(),
        2,
        "one rule in either mode"
    );
    let rate = section(acl, "Name: RateLimitPerAddress", "VisibilityConfig");
    for line in [
        "ResponseCode: 429",
        "Limit: !Ref CallbackRateLimit",
        "AggregateKeyType: IP",
        "EvaluationWindowSec: 60",
        "NotStatement:",
        "Arn: !GetAtt CallbackIpSet.Arn",
    ] {
        assert!(rate.contains(line), "{line}");
    }
    let allow = section(acl, "Name: AllowWeChat", "VisibilityConfig");
    assert!(allow.contains("Allow: {}") && allow.contains("Arn: !GetAtt CallbackIpSet.Arn"));
    let assoc = section(&t, "\n  CallbackWebAclAssociation:\n", "\n\n");
    assert!(assoc.contains("arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${CallbackRestApi}/stages/${CallbackRestStage}"));
    assert!(assoc.contains("WebACLArn: !GetAtt CallbackWebAcl.Arn"));
    let ip_set = section(&t, "\n  CallbackIpSet:\n", "\n\n");
    assert!(ip_set.contains("IPAddressVersion: IPV4") && ip_set.contains("Addresses: []"));
    assert!(
        !ip_set.contains("Description"),
        "the refresh stamps the description"
    );

    // Only the token refresh writes the set, and only that set, through its two actions.
    let refresh = section(&t, "TokenRefreshFunction:", "BatchWorkerFunction:");
    assert!(refresh.contains(
        "WXPUSH_CALLBACK_IP_SET: !If [HasCallbackFirewall, !GetAtt CallbackIpSet.Arn, !Ref AWS::NoValue]"
    ));
    let waf: Vec<&str> = statements(&t)
        .into_iter()
        .filter(|s| s.contains("wafv2:"))
        .collect();
    assert_eq!(waf.len(), 1);
    assert!(refresh.contains(waf[0]));
    assert!(waf[0].contains("Action: [wafv2:GetIPSet, wafv2:UpdateIPSet]"));
    assert!(waf[0].contains("Resource: !GetAtt CallbackIpSet.Arn"));
    assert_eq!(t.matches("wafv2:").count(), 2);
    let alarm = section(&t, "\n  CallbackIpListAlarm:\n", "\n\n");
    assert!(alarm.contains("MetricName: CallbackIpLists") && alarm.contains("Value: failed"));

    // WeChat's URL: the REST API's stage when the firewall is on.
    let url = section(
        &t,
        "\n  CallbackUrlPattern:\n",
        "\n  HttpApiCallbackUrlPattern:",
    );
    assert!(url.contains("- HasCallbackFirewall"));
    assert!(url.contains(
        "${CallbackRestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/live/wechat/{appid}"
    ));
}
