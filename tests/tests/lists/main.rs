//! The list routes (`GET /v1/apps/{appid}/messages|batches|events`): newest first, paged by cursor,
//! through the real API on moto and the emulator, on the local server over HTTP, and fast
//! with 100 000 items in the embedded store.

mod batches;
mod events;
mod messages;
mod messages_at_scale;
mod queries;
