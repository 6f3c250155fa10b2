//! The guarantees under faults, one path each (moto DynamoDB/SSM + the emulator, with the
//! fault-injecting store where contention or a failed write is needed): no send twice after
//! a possibly delivered attempt, an Idempotency-Key that survives a killed invocation and
//! cannot be claimed twice, the truth answered when the record cannot be written, no
//! callback waiting for WeChat, no event deduped away that WeChat sent twice, and a token
//! lease that belongs to one refresh.

mod callbacks;
mod lost_answers;
mod takeovers;
mod token_lease;
mod world;
