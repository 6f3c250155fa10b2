//! Injected faults: what the next call on a WeChat path does instead of (or besides)
//! answering (`POST /sandbox/faults`).

use super::World;

#[derive(Clone, Debug)]
pub enum FaultKind {
    ErrCode(i64),
    HttpStatus(u16),
    Delay(u64),
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub path: String,
    pub kind: FaultKind,
    /// Act first, then answer with the fault (`http_status`, `delay_ms`).
    pub after_delivery: bool,
    pub remaining: u32,
}

impl World {
    /// The next injected fault for `path` (faults on one path are used in the order they
    /// were added), used up by one, and whether it comes after delivery.
    pub fn take_fault(&mut self, path: &str) -> Option<(FaultKind, bool)> {
        let idx = self
            .faults
            .iter()
            .position(|f| f.path == path && f.remaining > 0)?;
        let fault = &mut self.faults[idx];
        fault.remaining -= 1;
        let taken = (fault.kind.clone(), fault.after_delivery);
        if fault.remaining == 0 {
            self.faults.remove(idx);
        }
        Some(taken)
    }
}
