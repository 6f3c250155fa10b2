//! Know before you send (docs/sending.md): the customer-service window opened by each kind of
//! interaction and closed by time and by count, the fallback sent once under faults and
//! retries, grants counted down and `require_grant` refused without a WeChat call, the daily
//! cap under concurrent sends, intercepted templates found and marked, the user view, and a
//! batch of 10 000 counting what it held back. Through the API, on moto (DynamoDB, SSM) and
//! the WeChat emulator, whose pushes reach the callback service; the batch on `wxpush serve
//! --sandbox`.

mod batch;
mod blocked;
mod caps;
mod emulator;
mod fallback;
mod grants;
mod window;
mod world;
