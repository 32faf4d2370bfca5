//! Splitting a worker's reply stream into lines of bounded length.

use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// A line buffer larger than this is given back once its line has been handled, so
/// one big reply does not pin its peak for the rest of the worker's life.
pub(super) const RETAINED_CAPACITY: usize = 1 << 20;

/// Why a line could not be read.
#[derive(Debug)]
pub(super) enum LineError {
    /// A line longer than the limit arrived, and was skipped through its newline
    /// without being kept: the stream is still in step.
    TooLong,
    /// Reading failed.
    Io(io::Error),
}

/// Splits a byte stream into lines of at most `max` bytes.
///
/// Cancel-safe: a partly read line stays in `line` (and unread bytes in the reader's
/// buffer), so a read abandoned by a `select!` resumes where it stopped.
pub(super) struct LineReader<R> {
    reader: R,
    line: Vec<u8>,
    /// The last call returned `line`, which is cleared at the next call.
    complete: bool,
    /// The line being read is too long: its bytes are dropped up to its newline.
    skipping: bool,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(super) fn new(reader: R, max: usize) -> Self {
        LineReader {
            reader,
            line: Vec::new(),
            complete: false,
            skipping: false,
            max,
        }
    }

    /// The longest line this reader returns.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// The reader, when no line is partly read (nothing held here would be lost).
    pub(super) fn into_reader_if_clean(self) -> Result<R, Self> {
        if self.skipping || !(self.complete || self.line.is_empty()) {
            return Err(self);
        }
        Ok(self.reader)
    }

    /// How many bytes the line buffer holds on to now.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.line.capacity()
    }

    /// The next line without its newline; `None` at end of stream (a final
    /// unterminated fragment is dropped: a frame is only whole with its newline).
    pub(super) async fn next_line(&mut self) -> Result<Option<&[u8]>, LineError> {
        if self.complete {
            self.complete = false;
            if self.line.capacity() > RETAINED_CAPACITY {
                self.line = Vec::new();
            } else {
                self.line.clear();
            }
        }
        loop {
            let buf = self.reader.fill_buf().await.map_err(LineError::Io)?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (piece, used, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(end) => (&buf[..end], end + 1, true),
                None => (buf, buf.len(), false),
            };
            if !self.skipping {
                if self.line.len() + piece.len() > self.max {
                    // Never buffered whole: what came so far is given back too.
                    self.skipping = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(piece);
                }
            }
            self.reader.consume(used);
            if done {
                if self.skipping {
                    self.skipping = false;
                    return Err(LineError::TooLong);
                }
                self.complete = true;
                return Ok(Some(&self.line));
            }
        }
    }
}
