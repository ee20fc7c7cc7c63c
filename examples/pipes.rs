//! Reading a pipe with a protocol: asyncio's `connect_read_pipe`, with `connect_write_pipe`
//! as the writer on the other end of the same pipe.
//!
//! `cargo run --example pipes`
//!
//! The reader's protocol collects bytes and prints each complete line: a pipe delivers bytes,
//! not messages, so several writes may arrive as one chunk or one write in several chunks.
//! When the writer closes its end, the reader sees EOF (`eof_received`), then
//! `connection_lost(None)`, and the program ends.

use std::process::ExitCode;

use evloop::prelude::*;

/// Prints every line that comes through the pipe.
struct LinePrinter {
    /// Bytes of the line not yet complete.
    partial: Vec<u8>,
    /// Completed by `connection_lost`.
    done: LoopFuture<()>,
}

impl Protocol for LinePrinter {
    fn connection_made(&mut self, _transport: &Transport) {
        println!("reader: connected");
    }

    fn data_received(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            println!(
                "reader: received {:?}",
                String::from_utf8_lossy(&line[..end])
            );
        }
    }

    fn eof_received(&mut self) -> bool {
        println!("reader: end of file");
        false
    }

    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        match exc {
            None => println!("reader: pipe closed"),
            Some(e) => println!("reader: pipe failed: {e}"),
        }
        let _ = self.done.set_result(());
    }
}

/// The writer's protocol: nothing to react to but the end.
struct Writer;

impl Protocol for Writer {}

async fn run(lp: EventLoop) -> evloop::Result<()> {
    let (read_end, write_end) = rustix::pipe::pipe()?;
    let done = lp.create_future::<()>();
    let d = done.clone();
    let (_reader, _) = lp
        .connect_read_pipe(
            move || LinePrinter {
                partial: Vec::new(),
                done: d,
            },
            read_end,
        )
        .await?;
    let (writer, _) = lp.connect_write_pipe(|| Writer, write_end).await?;
    for line in ["hello", "from the other end", "of the pipe"] {
        println!("writer: sending {line:?}");
        writer.write(format!("{line}\n").as_bytes())?;
    }
    // Flush, then close the write end: the reader gets EOF.
    writer.close();
    done.await
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let result = EventLoop::new().and_then(|lp| lp.run_until_complete(run(lp.clone()))?);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipes: {e}");
            ExitCode::FAILURE
        }
    }
}
