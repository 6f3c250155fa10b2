//! One WeChat call, as every path answers it: counted, subject to injected faults, acted on
//! the world, and answered as WeChat would.

use crate::sandbox::Emulator;
use crate::sandbox::world::{FaultKind, World, WxErr, wx_err};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;

impl Emulator {
    /// One WeChat call: counted, subject to injected faults, answered as WeChat would.
    ///
    /// Faults: an `errcode` answers that error without acting; an `http_status` answers that
    /// status with an HTML body without acting, or after acting with `after_delivery` (a proxy
    /// that failed after WeChat did its work; `200` then is an unreadable success); a
    /// `delay_ms` is a slow WeChat that acts after the delay whether or not the caller still
    /// waits, or with `after_delivery` acts at once and answers late.
    pub(in crate::sandbox) async fn call(
        &self,
        path: &'static str,
        op: impl FnOnce(&mut World, i64) -> Result<Value, WxErr> + Send + 'static,
    ) -> Response {
        let fault = {
            let mut world = self.world();
            world.record_call(path);
            world.take_fault(path)
        };
        let html = |status: u16| {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, "<html><body>injected fault</body></html>").into_response()
        };
        let result = match fault {
            None => self.act(op),
            Some((FaultKind::ErrCode(code), _)) => Err(wx_err(code, "injected fault")),
            Some((FaultKind::HttpStatus(status), false)) => return html(status),
            Some((FaultKind::HttpStatus(status), true)) => {
                let _ = self.act(op);
                return html(status);
            }
            Some((FaultKind::Delay(ms), true)) => {
                let result = self.act(op);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                result
            }
            Some((FaultKind::Delay(ms), false)) => {
                let emu = self.clone();
                let late = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    emu.act(op)
                });
                late.await
                    .unwrap_or_else(|_| Err(wx_err(-1, "system error")))
            }
        };
        match result {
            Ok(v) => Json(v).into_response(),
            Err((errcode, errmsg)) => {
                let rid: String = format!(
                    "{:08x}-{:08x}",
                    rand::random::<u32>(),
                    rand::random::<u32>()
                );
                Json(json!({"errcode": errcode, "errmsg": format!("{errmsg} rid: {rid}")}))
                    .into_response()
            }
        }
    }

    fn act(
        &self,
        op: impl FnOnce(&mut World, i64) -> Result<Value, WxErr>,
    ) -> Result<Value, WxErr> {
        let now = self.now();
        let result = op(&mut self.world(), now);
        self.dispatch_pushes();
        result
    }
}
