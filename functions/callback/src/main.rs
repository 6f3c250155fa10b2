//! Lambda entry point of the public WeChat callback (`/wechat/{appid}`).
//!
//! Signature verification, safe-mode decryption and event handling are the callback issue's
//! work and not built yet: until then every request is refused with 503 `not_implemented`,
//! so WeChat retries instead of believing an event was recorded.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Response::builder()
            .status(503)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"error":{"code":"not_implemented","message":"the WeChat callback is not built yet"}}"#,
            ))
            .map_err(Error::from)
    }))
    .await
}
