//! Fuzz input taken apart: a few leading bytes steer the case (which
//! request, how the bytes are split into reads), the rest is the payload.

/// The bytes of one case, read from the front.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes }
    }

    /// The next byte, or 0 once there are none.
    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    /// Everything not taken yet.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// Sizes of successive reads drawn from `seed`: `0` gives reads as large
/// as the socket's room; otherwise sizes from 1 to a bound the seed picks,
/// from a small generator, so one byte replays the same split.
pub fn read_sizes(seed: u8, total: usize, room: usize) -> Vec<usize> {
    if seed == 0 {
        return vec![room; total.div_ceil(room).max(1)];
    }
    let largest = [1, 2, 3, 7, 16, 64, 512, room][usize::from(seed % 8)];
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut sizes = Vec::new();
    let mut covered = 0;
    while covered < total {
        // xorshift32: enough to vary the splits, and the same every run.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = 1 + usize::try_from(state).unwrap_or(0) % largest;
        sizes.push(size);
        covered += size;
    }
    sizes
}
