//! Byte and rate formatting in the operator's units (binary: KiB, MiB, GiB), used in reasons and
//! check messages so "410 MiB" reads the same everywhere.

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// "512 MiB", "8.0 GiB", "900 KiB", "12 B": whole MiB below 4 GiB, because stall reasons compare
/// remaining data at MiB precision ("410 MiB remaining ≥ low mark 380 MiB").
pub fn format_bytes(bytes: u64) -> String {
    if bytes >= 4 * GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{} MiB", (bytes + MIB / 2) / MIB)
    } else if bytes >= KIB {
        format!("{} KiB", (bytes + KIB / 2) / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// "95 MiB/s".
pub fn format_rate(bytes_per_second: u64) -> String {
    format!("{}/s", format_bytes(bytes_per_second))
}

/// "3 s", "2 min 05 s", "1 h 02 min": durations an operator reads at a glance.
pub fn format_duration_ms(ms: u64) -> String {
    let seconds = ms / 1000;
    if seconds < 60 {
        if ms < 10_000 && !ms.is_multiple_of(1000) {
            format!("{:.1} s", ms as f64 / 1000.0)
        } else {
            format!("{seconds} s")
        }
    } else if seconds < 3600 {
        format!("{} min {:02} s", seconds / 60, seconds % 60)
    } else {
        format!("{} h {:02} min", seconds / 3600, (seconds % 3600) / 60)
    }
}

/// "1st", "2nd", "3rd", "11th", "22nd": a place in a queue, for people.
pub fn ordinal(place: usize) -> String {
    let suffix = match (place % 10, place % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{place}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_naturally() {
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(format_bytes(900 * KIB), "900 KiB");
        assert_eq!(format_bytes(512 * MIB), "512 MiB");
        assert_eq!(format_bytes(GIB), "1024 MiB");
        assert_eq!(format_bytes(8 * GIB), "8.0 GiB");
        assert_eq!(format_bytes(12 * GIB), "12.0 GiB");
        assert_eq!(format_rate(100 * MIB), "100 MiB/s");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration_ms(3_200), "3.2 s");
        assert_eq!(format_duration_ms(45_000), "45 s");
        assert_eq!(format_duration_ms(125_000), "2 min 05 s");
        assert_eq!(format_duration_ms(3_720_000), "1 h 02 min");
    }
}
