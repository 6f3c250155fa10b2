//! The follower sync on moto (DynamoDB, SSM, SQS) + the WeChat emulator: started through the
//! `/v1` handler with API Gateway events, continued by the batch-worker handler with real SQS
//! events, interrupted by faults and by a worker that dies, run twice at once.

mod contention;
mod mapped;
mod refusals;
mod runs;
mod world;
