//! A log sink for unit tests that check what is logged (`cli`, `http::trace`).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A log sink shared with the test (a std mutex: held only to append or read bytes).
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
