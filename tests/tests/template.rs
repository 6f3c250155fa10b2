//! template.yaml: valid for CloudFormation (cfn-lint) and shaped as the contract says.

use std::process::Command;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap()
}

#[test]
fn cfn_lint_passes() {
    let lint = std::env::var("WXPUSH_CFN_LINT")
        .expect("WXPUSH_CFN_LINT is not set: run the suite with `bash scripts/test`");
    let out = Command::new(&lint)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
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
    let send = t
        .split("SendFunction:")
        .nth(1)
        .unwrap()
        .split("TokenRefreshFunction:")
        .next()
        .unwrap();
    assert!(send.contains("Path: /v1/{proxy+}") && send.contains("Authorizer: AWS_IAM"));
    let callback = t
        .split("CallbackFunction:")
        .nth(1)
        .unwrap()
        .split("SendFunction:")
        .next()
        .unwrap();
    assert_eq!(callback.matches("Authorizer: NONE").count(), 2);
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
    let worker = t
        .split("BatchWorkerFunction:")
        .nth(1)
        .unwrap()
        .split("Outputs:")
        .next()
        .unwrap();
    assert!(worker.contains("Type: SQS") && worker.contains("Queue: !GetAtt JobsQueue.Arn"));
    assert!(worker.contains("ReportBatchItemFailures"));
    assert!(worker.contains("WXPUSH_QUEUE_URL: !Ref JobsQueue"));
    // A step ends 90 s before the timeout; SQS hides a message 6x the timeout.
    assert!(worker.contains("Timeout: 300") && t.contains("VisibilityTimeout: 1800"));
    assert!(t.contains("deadLetterTargetArn: !GetAtt JobsDeadLetterQueue.Arn"));
    // sqs:SendMessage only, to the one queue, from the send API and the worker.
    assert_eq!(t.matches("Action: sqs:SendMessage").count(), 2);
    assert_eq!(t.matches("Resource: !GetAtt JobsQueue.Arn").count(), 2);
    assert!(!t.contains("sqs:*"));
}
