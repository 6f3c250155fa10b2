//! The worker: every job the others queued (follower look-up, sync, batch fan-out and
//! chunks, event forwarding) and the scheduled outbox sweep, read from the real queue.

use crate::Stack;
use crate::policy::{check, check_resources, policy};
use crate::recorder::recorder;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wxpush_shared::jobs::JobRunner;
use wxpush_shared::queue::Job;
use wxpush_shared::runtime::AwsDeps;

/// Runs the sweep, then every job on the queue (and the jobs those queue) until it is empty;
/// returns how many of each kind ran.
async fn run_queued_jobs(s: &Stack, runner: &JobRunner) -> BTreeMap<String, usize> {
    let (sqs, queue_url) = (&s.sqs, &s.queue_url);
    let mut kinds = BTreeMap::new();
    let mut jobs: Vec<Job> = vec![Job::SweepOutbox];
    for _ in 0..60 {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            jobs.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if jobs.is_empty() && got.messages().is_empty() {
            break;
        }
        for job in std::mem::take(&mut jobs) {
            let kind = serde_json::to_value(&job).unwrap()["job"]
                .as_str()
                .unwrap()
                .to_string();
            // Delayed follow-ups may be early here; a failure is retried by the next turn.
            let _ = runner
                .run(&job, Instant::now() + Duration::from_secs(30))
                .await;
            *kinds.entry(kind).or_insert(0) += 1;
        }
    }
    kinds
}

pub async fn calls_what_its_policy_allows(s: &Stack) {
    let rec = recorder().await;
    let runner = wxpush_batch_worker::runner(
        AwsDeps::build(&rec.sdk().await, &s.env),
        wxpush_shared::batch::BatchConfig::default(),
    );
    let kinds = run_queued_jobs(s, &runner).await;
    for kind in [
        "complete_follower",
        "follower_sync",
        "batch_fanout",
        "batch_chunk",
        "forward_event",
        "sweep_outbox",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} job ran: {kinds:?}");
    }
    check_resources(
        "worker",
        &rec.resources(),
        &s.world.prefix,
        None,
        &s.queue_url,
        Some(&s.bus),
        None,
    );
    check(
        "BatchWorkerFunction",
        &policy("BatchWorkerFunction", "\nOutputs:"),
        &rec.uses(),
        // kms: moto's SSM decrypts without KMS; the SQS event source (not the code) receives
        // and deletes the messages and reads the queue's attributes.
        &[
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            // A give-up's failure row deleted when another run's real send replaced it: two
            // runs of one chunk racing (batch_guarantees.rs runs it on the embedded store).
            r#"["dynamodb:DeleteItem"] on bfail#*"#,
        ],
    );
}
