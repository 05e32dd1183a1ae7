//! Capped capture of a plugin's stdout and stderr: the first bytes go to the log, the rest
//! is counted and dropped, and the plugin never sees a write fail.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: usize,
}

/// A sink that keeps at most `cap` bytes.
#[derive(Clone, Debug)]
pub struct CappedOutput {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        CappedOutput { cap, buffer: Arc::default() }
    }

    fn push(&self, bytes: &[u8]) {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(b.kept.len());
        let keep = room.min(bytes.len());
        b.kept.extend_from_slice(&bytes[..keep]);
        b.dropped += bytes.len() - keep;
    }

    /// The kept bytes and the number of bytes dropped.
    pub fn take_bytes(&self) -> (Vec<u8>, usize) {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut b.kept), std::mem::take(&mut b.dropped))
    }

    /// The kept text and the number of bytes dropped.
    pub fn take(&self) -> (String, usize) {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let kept = std::mem::take(&mut b.kept);
        (String::from_utf8_lossy(&kept).into_owned(), std::mem::take(&mut b.dropped))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
