//! Bounded capture of a process's output: one buffer for stdout and stderr, in arrival order.
//!
//! [`OutputTail`] keeps the last `cap` bytes of the interleaved output, each chunk tagged with its
//! stream, so the combined text and the two demultiplexed ones all come from one copy. Earlier
//! bytes are dropped; renderings then start with [`dropped_marker`]. Offsets are absolute (bytes
//! since the start of the command), so a follower that fell behind learns how much it missed.
//!
//! Bounds: [`TAIL_BYTES`] per command for `process/execute`, `process/code-run`, session commands
//! and the entrypoint; in memory the buffer holds at most `cap + CHUNK_BYTES` bytes.

use std::collections::VecDeque;

/// Bytes of output kept per command (its tail); earlier output is dropped.
pub const TAIL_BYTES: usize = 4 << 20;
/// Largest chunk: consecutive small writes to one stream are merged up to this size.
const CHUNK_BYTES: usize = 64 * 1024;

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
struct Chunk {
    stream: Stream,
    /// Absolute offset of `data[0]`.
    offset: u64,
    data: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// What a follower gets from [`OutputTail::since`].
#[derive(Debug, Default)]
pub struct Since {
    /// Bytes between the requested offset and the first byte still kept (0 when none were lost).
    pub missed: u64,
    pub chunks: Vec<(Stream, Vec<u8>)>,
    /// The offset to ask for next.
    pub next: u64,
}

/// The three texts of a captured output, each with a marker when its head was dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub combined: String,
    pub stdout: String,
    pub stderr: String,
}

/// The last `cap` bytes of a command's interleaved stdout and stderr.
#[derive(Debug)]
pub struct OutputTail {
    cap: usize,
    chunks: VecDeque<Chunk>,
    /// Absolute offset of the first byte kept (everything before it was dropped).
    start: u64,
    /// Total bytes ever pushed.
    end: u64,
    /// Total bytes ever pushed per stream.
    totals: [u64; 2],
}

impl Default for OutputTail {
    fn default() -> Self {
        Self::new(TAIL_BYTES)
    }
}

/// The line that starts an output whose first `n` bytes were dropped.
pub fn dropped_marker(n: u64) -> String {
    format!("[cove-toolbox: {n} earlier bytes of output dropped, the last part follows]\n")
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl OutputTail {
    /// Keeps the last `cap` bytes (`usize::MAX`: keep everything).
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            chunks: VecDeque::new(),
            start: 0,
            end: 0,
            totals: [0; 2],
        }
    }

    /// Total bytes written so far (kept or not).
    pub fn total(&self) -> u64 {
        self.end
    }

    /// Bytes dropped from the head.
    pub fn dropped(&self) -> u64 {
        self.start
    }

    pub fn push(&mut self, stream: Stream, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            Some(last) if last.stream == stream && last.data.len() + data.len() <= CHUNK_BYTES => {
                last.data.extend_from_slice(data);
            }
            _ => self.chunks.push_back(Chunk {
                stream,
                offset: self.end,
                data: data.to_vec(),
            }),
        }
        self.end += data.len() as u64;
        self.totals[slot(stream)] += data.len() as u64;
        self.trim();
    }

    fn trim(&mut self) {
        let Some(keep_from) = self.end.checked_sub(self.cap as u64) else {
            return;
        };
        self.start = self.start.max(keep_from);
        while self.chunks.front().is_some_and(|c| c.end() <= self.start) {
            self.chunks.pop_front();
        }
    }

    /// The kept bytes of `chunk` (its part at or after `from`).
    fn visible(chunk: &Chunk, from: u64) -> &[u8] {
        let skip = from
            .saturating_sub(chunk.offset)
            .min(chunk.data.len() as u64) as usize;
        &chunk.data[skip..]
    }

    /// Everything kept from absolute offset `from` on.
    pub fn since(&self, from: u64) -> Since {
        let from = from.min(self.end);
        let begin = from.max(self.start);
        let first = self.chunks.partition_point(|c| c.end() <= begin);
        let chunks = self
            .chunks
            .range(first..)
            .map(|c| (c.stream, Self::visible(c, begin).to_vec()))
            .filter(|(_, d)| !d.is_empty())
            .collect();
        Since {
            missed: begin - from,
            chunks,
            next: self.end,
        }
    }

    /// The kept bytes of `stream` (`None`: both, interleaved).
    pub fn bytes(&self, stream: Option<Stream>) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.chunks {
            if stream.is_none_or(|s| s == c.stream) {
                out.extend_from_slice(Self::visible(c, self.start));
            }
        }
        out
    }

    /// Bytes of `stream` (`None`: both) dropped from the head.
    fn dropped_of(&self, stream: Option<Stream>, kept: usize) -> u64 {
        let total = match stream {
            None => self.end,
            Some(s) => self.totals[slot(s)],
        };
        total - kept as u64
    }

    /// One text: the marker (if its head was dropped) then the kept bytes, lossily decoded.
    pub fn text(&self, stream: Option<Stream>) -> String {
        let bytes = self.bytes(stream);
        let dropped = self.dropped_of(stream, bytes.len());
        if dropped == 0 {
            return String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        }
        // The cut may fall inside a UTF-8 sequence: start at the next character.
        let skip = bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        let mut text = dropped_marker(dropped + skip as u64);
        text.push_str(&String::from_utf8_lossy(&bytes[skip..]));
        text
    }

    /// Combined, stdout and stderr texts.
    pub fn render(&self) -> Rendered {
        Rendered {
            combined: self.text(None),
            stdout: self.text(Some(Stream::Stdout)),
            stderr: self.text(Some(Stream::Stderr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let mut t = OutputTail::new(100);
        t.push(Stream::Stdout, b"out1 ");
        t.push(Stream::Stderr, b"err ");
        t.push(Stream::Stdout, b"out2");
        let r = t.render();
        assert_eq!(r.combined, "out1 err out2");
        assert_eq!(r.stdout, "out1 out2");
        assert_eq!(r.stderr, "err ");
        assert_eq!(t.dropped(), 0);
        assert_eq!(t.total(), 13);
    }

    #[test]
    fn drops_the_head_and_marks_it() {
        let mut t = OutputTail::new(10);
        for i in 0..100u8 {
            t.push(Stream::Stdout, &[b'a' + i % 26]);
        }
        t.push(Stream::Stderr, b"END");
        assert_eq!(t.dropped(), 93);
        let bytes = t.bytes(None);
        assert_eq!(bytes.len(), 10);
        assert!(bytes.ends_with(b"END"));
        let r = t.render();
        assert!(
            r.combined.starts_with(&dropped_marker(93)),
            "{}",
            r.combined
        );
        assert!(r.combined.ends_with("END"));
        assert!(r.stdout.starts_with(&dropped_marker(93)), "{}", r.stdout);
        assert_eq!(r.stderr, "END");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = OutputTail::new(1000);
        let block = [b'x'; 700];
        for _ in 0..10_000 {
            t.push(Stream::Stdout, &block);
            t.push(Stream::Stderr, &block[..3]);
        }
        let held: usize = t.chunks.iter().map(|c| c.data.len()).sum();
        assert!(held <= 1000 + CHUNK_BYTES, "{held}");
        assert_eq!(t.bytes(None).len(), 1000);
    }

    #[test]
    fn followers_see_gaps_and_resume() {
        let mut t = OutputTail::new(8);
        t.push(Stream::Stdout, b"0123");
        let s = t.since(0);
        assert_eq!((s.missed, s.next), (0, 4));
        assert_eq!(s.chunks, vec![(Stream::Stdout, b"0123".to_vec())]);
        t.push(Stream::Stderr, b"4567");
        t.push(Stream::Stdout, b"89ab");
        let s = t.since(4);
        assert_eq!(s.missed, 0);
        assert_eq!(
            s.chunks,
            vec![
                (Stream::Stderr, b"4567".to_vec()),
                (Stream::Stdout, b"89ab".to_vec())
            ]
        );
        t.push(Stream::Stdout, b"cdefghij");
        let s = t.since(8);
        assert_eq!((s.missed, s.next), (4, 20));
        assert_eq!(s.chunks, vec![(Stream::Stdout, b"cdefghij".to_vec())]);
        assert!(t.since(20).chunks.is_empty());
    }

    #[test]
    fn a_cut_inside_a_character_starts_at_the_next_one() {
        let mut t = OutputTail::new(5);
        t.push(Stream::Stdout, "ééé".as_bytes());
        let text = t.text(None);
        assert_eq!(text, format!("{}éé", dropped_marker(2)));
    }
}
