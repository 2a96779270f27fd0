//! Checksummed framing shared by journal records and snapshots:
//! `[length u32 LE][crc32 u32 LE][payload]`.

/// Bytes before a payload: its length and its CRC-32.
pub const FRAME_HEADER: usize = 8;

/// Appends `payload` framed to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    // A record is far below 4 GiB: the request and frame limits keep it so.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What lies at an offset of a journal.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole, intact record and the offset after it.
    Record(&'a [u8], usize),
    /// The clean end.
    End,
    /// Only zeros to the end of the file: the journal's zeros written ahead.
    ZeroTail,
    /// An incomplete or damaged *last* record (only zeros after it): what a
    /// write interrupted by a crash looks like.
    Torn(&'static str),
    /// A damaged record with data after it: acknowledged writes are damaged.
    Corrupt(&'static str),
}

fn is_zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Reads the frame at `offset` of `buf`.
pub fn next(buf: &[u8], offset: usize) -> Next<'_> {
    let rest = &buf[offset.min(buf.len())..];
    if rest.is_empty() {
        return Next::End;
    }
    if is_zeros(rest) {
        return Next::ZeroTail;
    }
    if rest.len() < FRAME_HEADER {
        return Next::Torn("incomplete record header");
    }
    // unwrap: both slices are exactly 4 bytes, checked above.
    let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
    let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Next::Torn("record runs past the end of the file");
    };
    if len == 0 || crc32fast::hash(payload) != crc {
        let is_last = is_zeros(&rest[FRAME_HEADER + len..]);
        return if is_last { Next::Torn("checksum mismatch in the last record") } else { Next::Corrupt("checksum mismatch") };
    }
    Next::Record(payload, offset + FRAME_HEADER + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let mut buf = Vec::new();
        frame(b"first", &mut buf);
        frame(b"second", &mut buf);
        buf
    }

    #[test]
    fn intact_records_read_back_in_order() {
        let buf = two_records();
        let Next::Record(first, at) = next(&buf, 0) else { panic!() };
        assert_eq!(first, b"first");
        let Next::Record(second, end) = next(&buf, at) else { panic!() };
        assert_eq!(second, b"second");
        assert_eq!(next(&buf, end), Next::End);
    }

    #[test]
    fn a_cut_or_damaged_last_record_is_torn_but_damage_before_it_is_corruption() {
        let buf = two_records();
        let Next::Record(_, second_at) = next(&buf, 0) else { panic!() };
        for cut in second_at + 1..buf.len() {
            assert!(matches!(next(&buf[..cut], second_at), Next::Torn(_)), "cut at {cut}");
        }
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(next(&flipped, second_at), Next::Torn(_)));
        let mut early = buf.clone();
        early[FRAME_HEADER] ^= 1;
        assert!(matches!(next(&early, 0), Next::Corrupt(_)));
        let mut zeros = buf.clone();
        zeros.extend([0; 100]);
        assert_eq!(next(&zeros, buf.len()), Next::ZeroTail);
        // The journal writes zeros ahead: a record cut there has zeros after it.
        let mut cut_ahead = buf[..buf.len() - 2].to_vec();
        cut_ahead.extend([0; 100]);
        assert!(matches!(next(&cut_ahead, second_at), Next::Torn(_)));
        let mut damaged_ahead = flipped.clone();
        damaged_ahead.extend([0; 100]);
        assert!(matches!(next(&damaged_ahead, second_at), Next::Torn(_)));
    }
}
