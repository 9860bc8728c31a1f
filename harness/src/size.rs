//! Byte sizes as users write them: `64KiB`, `8MiB`, `1GiB`, `4096`.

use crate::error::InputError;

/// The smallest ring buffer the kernel accepts is one page.
pub const MIN_RING_BYTES: u64 = 4096;
/// Far beyond any sensible ring; keeps typos from pinning gigabytes of kernel memory.
pub const MAX_RING_BYTES: u64 = 1 << 30;

/// Parses `N`, `NKiB`/`NK`/`NKB`, `NMiB`/`NM`/`NMB` or `NGiB`/`NG`/`NGB` (binary units).
pub fn parse_size(text: &str) -> Result<u64, InputError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => 0,
    };
    let value: Option<u64> = digits.parse().ok();
    match (value, unit_bytes) {
        (Some(value), unit_bytes) if unit_bytes > 0 => value
            .checked_mul(unit_bytes)
            .ok_or_else(|| InputError(format!("size '{text}' is too large"))),
        _ => Err(InputError(format!(
            "cannot read size '{text}': write a number with an optional unit, e.g. 64KiB or 8MiB"
        ))),
    }
}

/// Parses and checks a ring buffer size: a power of two between one page and 1 GiB.
pub fn parse_ring_size(text: &str) -> Result<u64, InputError> {
    let bytes = parse_size(text)?;
    if bytes < MIN_RING_BYTES {
        return Err(InputError(format!(
            "ring size {text} is too small: the kernel needs at least 4KiB (one page); use e.g. --ring-size 64KiB"
        )));
    }
    if bytes > MAX_RING_BYTES {
        return Err(InputError(format!(
            "ring size {text} is larger than 1GiB; use e.g. --ring-size 64MiB"
        )));
    }
    if !bytes.is_power_of_two() {
        let lower = 1u64 << (63 - bytes.leading_zeros());
        return Err(InputError(format!(
            "ring size {text} is not a power of two, which BPF ring buffers need; use {} or {}",
            format_size(lower),
            format_size(lower * 2)
        )));
    }
    Ok(bytes)
}

/// `65536` -> `64KiB`.
pub fn format_size(bytes: u64) -> String {
    for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= scale && bytes % scale == 0 {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("8m").unwrap(), 8 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
    }

    #[test]
    fn rejects_bad_sizes_with_the_fix() {
        assert!(parse_size("lots").unwrap_err().0.contains("e.g. 64KiB"));
        assert!(parse_size("12XB").is_err());
        assert!(parse_ring_size("1KiB").unwrap_err().0.contains("too small"));
        assert!(parse_ring_size("100KiB")
            .unwrap_err()
            .0
            .contains("64KiB or 128KiB"));
        assert!(parse_ring_size("2GiB").is_err());
        assert_eq!(parse_ring_size("64KiB").unwrap(), 65536);
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(65536), "64KiB");
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
