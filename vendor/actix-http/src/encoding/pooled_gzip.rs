//! PATCH (pto-connect): gzip whose deflate state is reused from answer to answer.
//!
//! `flate2::write::GzEncoder` allocates a fresh deflate state for every answer (window,
//! hash chains and pending buffer: about 300 KiB with zlib-rs) and frees it after. An
//! allocation that size is mapped from the kernel and given back, so every compressed
//! answer paid for page faults and for zeroing those pages, more than the compression
//! itself (a profile of the member list showed ~20% of the server's CPU in `memset`, page
//! faults and their accounting, against ~9% in `deflate_quick`). Here each thread keeps a
//! few reset `flate2::Compress` (raw deflate) in a pool; the gzip header and trailer
//! (RFC 1952: CRC-32 and length) are written around the raw stream.

use std::{cell::RefCell, io};

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Compressors a thread keeps between answers (each ~300 KiB).
const POOL_PER_THREAD: usize = 4;

/// The output room reserved per call to the compressor.
const OUTPUT_STEP: usize = 8 * 1024;

/// A gzip member's fixed header: magic, deflate, no flags, no time, no extra flags,
/// unknown OS (RFC 1952 §2.3).
const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    static POOL: RefCell<Vec<Compress>> = const { RefCell::new(Vec::new()) };
}

fn take_compressor() -> Compress {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| Compress::new(Compression::fast(), false))
}

fn give_back(mut compress: Compress) {
    compress.reset();
    // A thread being torn down has no pool any more: the compressor is dropped.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_PER_THREAD {
            pool.push(compress);
        }
    });
}

/// A gzip stream being written: header, raw deflate, then CRC-32 and length.
pub(super) struct PooledGzip {
    compress: Option<Compress>,
    crc: Crc,
    out: BytesMut,
}

impl PooledGzip {
    pub(super) fn new() -> Self {
        let mut out = BytesMut::with_capacity(OUTPUT_STEP);
        out.extend_from_slice(&HEADER);
        Self {
            compress: Some(take_compressor()),
            crc: Crc::new(),
            out,
        }
    }

    /// What was compressed so far and not taken yet.
    pub(super) fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Compresses `data` (the output may stay buffered in the compressor).
    pub(super) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.run(data, FlushCompress::None)
    }

    /// Makes everything written so far decodable (a sync flush).
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.run(&[], FlushCompress::Sync)
    }

    /// Ends the stream: what is left, then the trailer.
    pub(super) fn finish(mut self) -> io::Result<Bytes> {
        self.run(&[], FlushCompress::Finish)?;
        self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.out.extend_from_slice(&self.crc.amount().to_le_bytes());
        Ok(self.out.split().freeze())
    }

    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        let compress = self
            .compress
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        loop {
            let start = self.out.len();
            let room = OUTPUT_STEP.max(input.len() / 2);
            self.out.resize(start + room, 0);
            let (in_before, out_before) = (compress.total_in(), compress.total_out());
            let status = compress
                .compress(input, &mut self.out[start..], flush)
                .map_err(io::Error::other);
            let consumed = (compress.total_in() - in_before) as usize;
            let produced = (compress.total_out() - out_before) as usize;
            self.out.truncate(start + produced);
            input = &input[consumed..];
            if status? == Status::StreamEnd {
                return Ok(());
            }
            // Room left over and nothing left to read: all that could be written is
            // (a finish goes on until the stream's end).
            if produced < room && input.is_empty() && !matches!(flush, FlushCompress::Finish) {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(io::Error::other("deflate made no progress"));
            }
        }
    }
}

impl Drop for PooledGzip {
    fn drop(&mut self) {
        if let Some(compress) = self.compress.take() {
            give_back(compress);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        let unit = b"{\"name\":\"Zo\xc3\xab\",\"id\":12}";
        (0..len)
            .map(|i| unit[i % unit.len()] ^ ((i / 4096) as u8 & 1))
            .collect()
    }

    #[test]
    fn what_is_written_reads_back_through_an_independent_decoder() {
        for len in [0, 1, 1023, 20_000, 300_000] {
            let data = sample(len);
            let mut gz = PooledGzip::new();
            let mut out = Vec::new();
            for chunk in data.chunks(7_000) {
                gz.write(chunk).unwrap();
                out.extend_from_slice(&gz.take());
            }
            out.extend_from_slice(&gz.finish().unwrap());
            assert_eq!(gunzip(&out), data, "length {len}");
        }
    }

    #[test]
    fn a_reused_compressor_starts_a_fresh_stream() {
        let first = sample(50_000);
        let second: Vec<u8> = sample(30_000).into_iter().rev().collect();
        let mut outs = Vec::new();
        for data in [&first, &second, &first] {
            let mut gz = PooledGzip::new();
            gz.write(data).unwrap();
            let mut out = gz.take().to_vec();
            out.extend_from_slice(&gz.finish().unwrap());
            outs.push(out);
        }
        assert!(POOL.with(|p| !p.borrow().is_empty()), "compressors go back to the pool");
        assert_eq!(gunzip(&outs[0]), first);
        assert_eq!(gunzip(&outs[1]), second);
        assert_eq!(outs[0], outs[2], "the same input gives the same stream after a reset");
    }

    #[test]
    fn a_flush_makes_the_written_part_decodable() {
        let data = sample(10_000);
        let mut gz = PooledGzip::new();
        gz.write(&data).unwrap();
        gz.flush().unwrap();
        let partial = gz.take();
        let mut out = Vec::new();
        // A stream cut after a sync flush decodes up to it (the decoder then reports the
        // missing end).
        let mut decoder = flate2::read::GzDecoder::new(&partial[..]);
        let _ = decoder.read_to_end(&mut out);
        assert_eq!(out, data);
        let mut whole = partial.to_vec();
        whole.extend_from_slice(&gz.finish().unwrap());
        assert_eq!(gunzip(&whole), data);
    }
}
