//! template.yaml: valid for CloudFormation (cfn-lint) and shaped as docs/api.md and docs/security.md say.

mod emitted_metrics;
#[path = "../common/template_yaml.rs"]
mod template_yaml;

use emitted_metrics::emitted_metrics;
use std::process::Command;
use template_yaml::{TEMPLATE_PATH, section, statements, template};

#[test]
fn cfn_lint_passes() {
    let lint = std::env::var("WXPUSH_CFN_LINT")
        .expect("WXPUSH_CFN_LINT is not set: run the suite with `bash scripts/test`");
    let out = Command::new(&lint)
        .arg(TEMPLATE_PATH)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {lint}: {e}"));
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn private_routes_use_iam_and_callbacks_are_public() {
    let t = template();
    assert!(t.contains("DefaultAuthorizer: AWS_IAM"));
    let send = section(&t, "SendFunction:", "TokenRefreshFunction:");
    // One event per route, so IAM policies on route ARNs can grant some apps only; the
    // catch-all answers unknown paths and wrong methods with the 404/405 of docs/api.md.
    let events: Vec<&str> = send.split("Type: HttpApi").skip(1).collect();
    for (method, path) in [
        ("GET", "/v1/apps/{appid}/token"),
        ("POST", "/v1/apps/{appid}/messages"),
        ("GET", "/v1/apps/{appid}/messages"),
        ("GET", "/v1/apps/{appid}/messages/{id}"),
        ("POST", "/v1/apps/{appid}/sessions"),
        ("POST", "/v1/apps/{appid}/followers/sync"),
        ("GET", "/v1/apps/{appid}/followers/sync"),
        ("GET", "/v1/users/{unionid}"),
        ("GET", "/v1/apps/{appid}/users"),
        ("GET", "/v1/apps/{appid}/users/{openid}"),
        ("POST", "/v1/apps/{appid}/batches"),
        ("GET", "/v1/apps/{appid}/batches"),
        ("GET", "/v1/apps/{appid}/events"),
        ("GET", "/v1/apps/{appid}/batches/{id}"),
        ("DELETE", "/v1/apps/{appid}/batches/{id}"),
        ("GET", "/v1/apps/{appid}/quota"),
        ("GET", "/v1/apps/{appid}/templates"),
        ("POST", "/v1/apps/{appid}/templates"),
        ("DELETE", "/v1/apps/{appid}/templates/{id}"),
        ("GET", "/v1/apps/{appid}/templates/{id}/blocked"),
        ("ANY", "/v1/{proxy+}"),
    ] {
        let event = events
            .iter()
            .find(|e| {
                e.contains(&format!("Method: {method}\n")) && e.contains(&format!("Path: {path}\n"))
            })
            .unwrap_or_else(|| panic!("no route {method} {path}"));
        assert!(event.contains("Authorizer: AWS_IAM"), "{method} {path}");
    }
    assert_eq!(events.len(), 21);
    assert_eq!(send.matches("Authorizer: AWS_IAM").count(), 21);
    assert!(!send.contains("Authorizer: NONE"));
    let callback = section(&t, "CallbackFunction:", "SendFunction:");
    assert_eq!(callback.matches("Authorizer: NONE").count(), 2);
    assert!(callback.contains("Path: /wechat/{appid}"));
    assert_eq!(t.matches("Authorizer: NONE").count(), 2);
    for f in [
        "Binary: callback",
        "Binary: send",
        "Binary: token-refresh",
        "Binary: batch-worker",
    ] {
        assert!(t.contains(f), "{f}");
    }
    assert_eq!(t.matches("BuildMethod: rust-cargolambda").count(), 4);
    assert!(t.contains("Runtime: provided.al2023") && t.contains("Architectures: [arm64]"));
    assert!(t.contains("AttributeName: ttl") && t.contains("Enabled: true"));
    // SSM reads are scoped to the prefix, never the whole account.
    assert!(!t.contains("parameter/*") && !t.contains("ssm:*") && !t.contains("dynamodb:*"));
}

#[test]
fn the_jobs_queue_feeds_the_worker_and_only_the_senders_may_write_to_it() {
    let t = template();
    let worker = section(&t, "BatchWorkerFunction:", "Outputs:");
    assert!(worker.contains("Type: SQS") && worker.contains("Queue: !GetAtt JobsQueue.Arn"));
    assert!(worker.contains("ReportBatchItemFailures"));
    assert!(worker.contains("WXPUSH_QUEUE_URL: !Ref JobsQueue"));
    // A step ends 90 s before the timeout; SQS hides a message 6x the timeout.
    assert!(worker.contains("Timeout: 300") && t.contains("VisibilityTimeout: 1800"));
    // The worker knows the queue's last delivery (a batch chunk then fails what it could
    // not send, so the batch shows it before SQS moves the job to the dead-letter queue).
    assert!(t.contains("maxReceiveCount: 5") && worker.contains("WXPUSH_JOB_MAX_RECEIVES: \"5\""));
    // Batches are paced and bounded: a rate per app, requests in flight, worker concurrency.
    assert!(worker.contains("WXPUSH_BATCH_RATE: !Ref BatchRate"));
    assert!(worker.contains("WXPUSH_BATCH_CONCURRENCY: !Ref BatchSendsInFlight"));
    assert!(worker.contains("MaximumConcurrency: !Ref BatchWorkerMaxConcurrency"));
    assert!(t.contains("deadLetterTargetArn: !GetAtt JobsDeadLetterQueue.Arn"));
    // sqs:SendMessage only, to the one queue, from the callback, the send API and the worker,
    // and from the outbox sweep's schedule (by its rule's ARN only).
    assert_eq!(t.matches("Action: sqs:SendMessage").count(), 4);
    // ... plus the worker's role receiving from it (the event source polls with that role).
    assert_eq!(t.matches("Resource: !GetAtt JobsQueue.Arn").count(), 5);
    assert!(
        worker.contains("Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes]")
    );
    let sweep = section(&t, "Sid: AllowOutboxSweepSchedule", "- Sid:");
    assert!(sweep.contains("Service: events.amazonaws.com"), "{sweep}");
    assert!(sweep.contains("aws:SourceArn: !GetAtt OutboxSweepSchedule.Arn"));
    let schedule = section(&t, "OutboxSweepSchedule:\n    Type", "\n\n");
    assert!(schedule.contains("Arn: !GetAtt JobsQueue.Arn"));
    assert!(schedule.contains(r#"Input: '{"job":"sweep_outbox"}'"#));
    for s in statements(&t)
        .iter()
        .filter(|s| s.contains("sqs:SendMessage"))
    {
        assert!(s.contains("Resource: !GetAtt JobsQueue.Arn\n"), "{s}");
        assert!(!s.contains("JobsDeadLetterQueue"), "{s}");
    }
    for f in [
        section(&t, "CallbackFunction:", "SendFunction:"),
        section(&t, "SendFunction:", "TokenRefreshFunction:"),
        worker,
    ] {
        assert!(f.contains("Action: sqs:SendMessage"));
        assert!(f.contains("WXPUSH_QUEUE_URL: !Ref JobsQueue"));
    }
    let refresh = section(&t, "TokenRefreshFunction:", "BatchWorkerFunction:");
    assert!(!refresh.contains("sqs:"));
    // Events are forwarded by the worker only, to the stack's bus only; the only rows it
    // deletes are forwarded events' outbox rows.
    assert_eq!(t.matches("events:PutEvents").count(), 1);
    let put_events = statements(worker)
        .into_iter()
        .find(|s| s.contains("events:PutEvents"))
        .unwrap();
    assert!(
        put_events.contains("Resource: !GetAtt EventBus.Arn"),
        "{put_events}"
    );
    let delete: Vec<&str> = statements(&t)
        .into_iter()
        .filter(|s| s.contains("dynamodb:DeleteItem"))
        .collect();
    assert_eq!(delete.len(), 1);
    assert!(worker.contains(delete[0]));
    assert!(
        delete[0].contains(r#"dynamodb:LeadingKeys: ["fwd#*", "fup#*", "bfail#*", "batches"]"#),
        "{}",
        delete[0]
    );
    for f in [section(&t, "CallbackFunction:", "SendFunction:"), worker] {
        assert!(f.contains("WXPUSH_EVENT_BUS: !Ref EventBus"));
    }
    // The only sqs:* is the queue policy's deny of plain-HTTP requests.
    assert_eq!(t.matches("sqs:*").count(), 1);
    let policy = section(
        &t,
        "Type: AWS::SQS::QueuePolicy",
        "Type: AWS::CloudWatch::Alarm",
    );
    assert!(policy.contains("Effect: Deny") && policy.contains("Action: sqs:*"));
    assert!(policy.contains("aws:SecureTransport: \"false\""));
    assert!(policy.contains("- !Ref JobsQueue") && policy.contains("- !Ref JobsDeadLetterQueue"));
    // A job in the dead-letter queue raises an alarm.
    let alarm = section(&t, "Type: AWS::CloudWatch::Alarm", "\n\n");
    assert!(alarm.contains("MetricName: ApproximateNumberOfMessagesVisible"));
    assert!(alarm.contains("Value: !GetAtt JobsDeadLetterQueue.QueueName"));
    assert!(alarm.contains("Threshold: 0") && alarm.contains("GreaterThanThreshold"));
}

#[test]
fn the_callback_writes_only_its_own_items_and_never_tokens() {
    let t = template();
    let callback = section(&t, "CallbackFunction:", "SendFunction:");
    let dynamo: Vec<&str> = statements(callback)
        .into_iter()
        .filter(|s| s.contains("dynamodb:"))
        .collect();
    assert_eq!(dynamo.len(), 1);
    let dynamo = dynamo[0];
    // TransactWriteItems is authorised per item: Put/Update, plus the reads.
    assert!(dynamo.contains("[dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem]"));
    assert!(dynamo.contains("ForAllValues:StringLike:"));
    assert!(dynamo.contains("dynamodb:LeadingKeys:"));
    for prefix in [
        "evt#*", "acct#*", "union#*", "wxmsg#*", "grant#*", "nonce#*", "fwd#*",
    ] {
        assert!(dynamo.contains(&format!("\"{prefix}\"")), "{prefix}");
    }
    for prefix in ["app#", "idem#", "\"msg#", "sync#", "\"*\""] {
        assert!(!dynamo.contains(prefix), "{prefix}");
    }
    // It never calls WeChat itself, so it needs no DynamoDB access beyond that statement.
    assert!(!callback.contains("dynamodb:Query") && !callback.contains("dynamodb:DeleteItem"));
    // SSM: its own parameters by name, the appid listing by name only; no AppSecret, and no
    // path read (which, with decryption, would return the AppSecrets too).
    assert!(!callback.contains("GetParametersByPath") && !callback.contains("app_secret"));
    assert!(callback.contains("Action: ssm:DescribeParameters"));
    for name in [
        "kind",
        "callback_token",
        "encoding_aes_key",
        "callback_mode",
    ] {
        assert!(
            callback.contains(&format!("parameter${{SsmPrefix}}/apps/*/{name}\"")),
            "{name}"
        );
    }
}

#[test]
fn kms_is_scoped_and_the_key_is_optional() {
    let t = template();
    // kms:Decrypt on any key only through SSM; with a customer key, only that key.
    let decrypts: Vec<&str> = statements(&t)
        .into_iter()
        .filter(|s| s.contains("kms:Decrypt"))
        .collect();
    assert!(decrypts.len() >= 4);
    for s in &decrypts {
        if s.contains("\"*\"") {
            assert!(s.contains("kms:ViaService:"), "{s}");
            assert!(
                s.contains("Resource: !If [HasKmsKey, !Ref KmsKeyArn, \"*\"]"),
                "{s}"
            );
        } else {
            assert!(s.contains("Resource: !Ref KmsKeyArn"), "{s}");
        }
    }
    // The one unscoped resource: DescribeParameters (names only), which IAM cannot scope.
    for s in statements(&t) {
        if s.contains("Resource: \"*\"") {
            assert!(s.contains("Action: ssm:DescribeParameters"), "{s}");
        }
    }
    assert!(!t.contains("kms:*"));
    assert_eq!(t.matches("kms:ViaService: !Sub \"ssm.").count(), 4);
    // Data keys of the customer key (queue and table), through SQS/DynamoDB, only when set.
    assert_eq!(
        t.matches("Action: [kms:GenerateDataKey, kms:Decrypt]")
            .count(),
        4
    );
    assert!(t.contains("HasKmsKey: !Not [!Equals [!Ref KmsKeyArn, \"\"]]"));
    assert!(t.contains("SSEType: KMS") && t.contains("KMSMasterKeyId: !Ref KmsKeyArn"));
    assert_eq!(
        t.matches("KmsMasterKeyId: !If [HasKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]")
            .count(),
        2
    );
    assert_eq!(
        t.matches("SqsManagedSseEnabled: !If [HasKmsKey, !Ref AWS::NoValue, true]")
            .count(),
        2
    );
}

#[test]
fn the_deployment_is_hardened() {
    let t = template();
    let table = section(&t, "Type: AWS::DynamoDB::Table", "\n\n");
    assert!(table.contains("DeletionProtectionEnabled: true"));
    assert!(table.contains("DeletionPolicy: Retain"));
    assert!(t.contains("aws:SecureTransport"));
    // Access log with the caller's principal on every request.
    let access = section(&t, "AccessLogSettings:", "DefaultRouteSettings:");
    assert!(access.contains("DestinationArn:"));
    for v in [
        "$context.requestId",
        "$context.identity.userArn",
        "$context.identity.caller",
        "$context.routeKey",
        "$context.status",
        "$context.path",
        "$context.requestTime",
        "$context.integrationErrorMessage",
        "$context.identity.sourceIp",
    ] {
        assert!(access.contains(&format!("\"{v}\"")), "{v}");
    }
    // Throttling: the whole API, and the public callback routes tighter.
    let http_api = section(&t, "Type: AWS::Serverless::HttpApi", "\n\n");
    assert!(http_api.contains("ThrottlingRateLimit: !Ref ApiThrottleRate"));
    assert!(http_api.contains("ThrottlingBurstLimit: !Ref ApiThrottleBurst"));
    for route in ["\"POST /wechat/{appid}\":", "\"GET /wechat/{appid}\":"] {
        let settings: Vec<&str> = section(http_api, route, "\"").lines().collect();
        assert!(
            settings.contains(
                &"          ThrottlingBurstLimit: !If [HttpApiCallbackClosed, 0, !Ref CallbackThrottleBurst]"
            ),
            "{route}"
        );
        assert!(
            settings.contains(
                &"          ThrottlingRateLimit: !If [HttpApiCallbackClosed, 0, !Ref CallbackThrottleRate]"
            ),
            "{route}"
        );
    }
    // Log retention: the access log and the four functions' log groups.
    assert_eq!(
        t.matches("RetentionInDays: !Ref LogRetentionDays").count(),
        5
    );
    assert_eq!(t.matches("Type: AWS::Logs::LogGroup").count(), 5);
    for (function, group) in [
        ("CallbackFunction:", "CallbackLogGroup"),
        ("SendFunction:", "SendLogGroup"),
        ("TokenRefreshFunction:", "TokenRefreshLogGroup"),
        ("BatchWorkerFunction:", "BatchWorkerLogGroup"),
    ] {
        let f = section(&t, function, "Events:");
        assert!(
            f.contains(&format!("LogGroup: !Ref {group}\n")),
            "{function}"
        );
    }
    // No fixed reserved concurrency (fails at the minimum quota); the callback's is optional.
    assert!(!t.contains("ReservedConcurrentExecutions: 1"));
    let callback = section(&t, "CallbackFunction:", "SendFunction:");
    assert!(callback.contains("- HasCallbackReservedConcurrency"));
    assert!(callback.contains("- !Ref CallbackReservedConcurrency"));
    // WeChat is reached over https only.
    let base = section(&t, "  WeChatApiBase:\n", "  PrivateSubnetIds:");
    assert!(base.contains("AllowedPattern: \"^https://"), "{base}");
    assert!(base.contains("ConstraintDescription:"));
    // The outputs an operator needs.
    let outputs = t.split("\nOutputs:").nth(1).unwrap();
    for o in [
        "ApiUrl:",
        "StateTableName:",
        "JobsDeadLetterQueueUrl:",
        "CallbackUrlPattern:",
    ] {
        assert!(outputs.contains(o), "{o}");
    }
    assert!(outputs.contains("/wechat/{appid}\""));
}

#[test]
fn egress_is_none_subnets_or_a_created_nat_with_its_ip_as_an_output() {
    let t = template();
    assert!(t.contains("AllowedValues: [none, subnets, nat]"));
    // The operator's subnets need security groups: checked before anything is created.
    let rules = section(&t, "\nRules:", "\nConditions:");
    assert!(rules.contains("RuleCondition: !Equals [!Ref EgressMode, subnets]"));
    assert!(rules.contains("!Not [!Contains [!Ref PrivateSubnetIds, \"\"]]"));
    assert!(rules.contains("!Not [!Contains [!Ref SecurityGroupIds, \"\"]]"));
    // Only the functions Rules allow (Fn::Join is not one of them).
    assert!(!rules.contains("Fn::Join") && !rules.contains("!Join"));
    // Subnets given without EgressMode subnets are refused, not silently dropped.
    assert!(rules.contains("SubnetsNeedEgressModeSubnets:"));
    // Only the functions that call WeChat are in the VPC, never the public callback.
    let callback = section(&t, "CallbackFunction:", "SendFunction:");
    assert!(!callback.contains("VpcConfig"));
    assert!(!section(&t, "Globals:", "Resources:").contains("VpcConfig"));
    for f in [
        "SendFunction:",
        "TokenRefreshFunction:",
        "BatchWorkerFunction:",
    ] {
        let function = section(&t, f, "Events:");
        assert!(function.contains("VpcConfig: !If\n        - UseVpc"), "{f}");
        assert!(function.contains("!If [CreateNat, [!Ref NatPrivateSubnetA, !Ref NatPrivateSubnetB], !Ref PrivateSubnetIds]"), "{f}");
        // Its own role: the VPC-access policy only when in a VPC.
        let name = f.trim_end_matches(':');
        assert!(
            function.contains(&format!("Role: !GetAtt {name}Role.Arn")),
            "{f}"
        );
        let role = section(&t, &format!("{name}Role:\n"), "\n\n");
        assert!(role.contains("!If [UseVpc, !Sub \"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\", !Ref AWS::NoValue]"), "{f}");
        assert!(role.contains(
            "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        ));
    }
    // The created NAT: every resource conditional, the IP an output, partition-neutral.
    for r in [
        "NatVpc:",
        "NatInternetGateway:",
        "NatPublicSubnet:",
        "NatPrivateSubnetA:",
        "NatPrivateSubnetB:",
        "NatElasticIp:",
        "NatGateway:",
        "NatPrivateRoute:",
        "NatLambdaSecurityGroup:",
    ] {
        let resource = section(&t, &format!("\n  {r}\n"), "\n\n");
        assert!(resource.contains("Condition: CreateNat"), "{r}");
    }
    let sg = section(&t, "\n  NatLambdaSecurityGroup:\n", "\n\n");
    assert!(sg.contains("FromPort: 443") && sg.contains("ToPort: 443"));
    let output = section(&t, "\n  EgressIp:\n", "\n  EventBusName:");
    assert!(output.contains("Condition: CreateNat") && output.contains("Value: !Ref NatElasticIp"));
    // Every ARN is built with the partition (aws, aws-cn), never a literal `arn:aws:`, and
    // every regional endpoint with the URL suffix (amazonaws.com.cn in China).
    assert!(!t.contains("\"arn:aws:"), "a literal aws partition");
    assert!(
        !t.contains("${AWS::Region}.amazonaws.com"),
        "a literal endpoint suffix"
    );
}

/// Every `wxpush` metric an alarm or the dashboard reads is one the code emits (EMF), with the
/// same dimensions' names.
#[test]
fn alarms_and_the_dashboard_read_metrics_the_code_emits() {
    let t = template();
    let emitted = emitted_metrics();
    for metric in [
        "Sends",
        "SendWeChatErrors",
        "ApiResponses",
        "Callbacks",
        "TokenRefreshes",
        "WeChatTokenCalls",
        "EventsForwarded",
        "CallbackIpLists",
    ] {
        assert!(
            emitted.contains_key(metric),
            "the code emits no {metric}: {emitted:?}"
        );
    }
    // Alarms: each reads an emitted metric with dimensions the code sets.
    for alarm in [
        "TokenRefreshFailureAlarm:",
        "CallbackServerErrorAlarm:",
        "SendServerErrorRateAlarm:",
        "CallbackIpListAlarm:",
    ] {
        let a = section(&t, &format!("\n  {alarm}\n"), "\n\n");
        assert!(a.contains("Namespace: wxpush"), "{alarm}");
        assert!(a.contains("AlarmActions: !If [HasAlarmTopic"), "{alarm}");
        for line in a.lines() {
            if let Some(name) = line.trim().strip_prefix("MetricName: ") {
                assert!(emitted.contains_key(name), "{alarm}: {name} is not emitted");
            }
            for dim in line.split("Name: ").skip(1) {
                let dim = dim.split([',', '}']).next().unwrap().trim();
                if dim.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && !line.contains("MetricName")
                {
                    assert!(
                        emitted.values().any(|d| d.contains(dim)),
                        "{alarm}: dimension {dim} is never set"
                    );
                }
            }
        }
    }
    let dashboard = section(&t, "\n  Dashboard:\n", "\n\n");
    for quoted in dashboard.split("[\"wxpush\", \"").skip(1) {
        let name = quoted.split('"').next().unwrap();
        assert!(
            emitted.contains_key(name),
            "the dashboard reads {name}, never emitted"
        );
    }
    assert!(dashboard.contains("MetricName=\\\"SendWeChatErrors\\\""));
    assert!(dashboard.contains("MetricName=\\\"Callbacks\\\""));
}
